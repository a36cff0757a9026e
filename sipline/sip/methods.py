"""Request method names and the groups the rest of the stack reasons about.

Methods are case-sensitive tokens (RFC 3261 §7.1), so comparing against these constants is
exact.  The groups exist because behaviour depends on them in several layers at once: which
requests create dialogs (Record-Route copying, §12.1.1), which refresh the remote target
(§12.2), and which must never get a response (ACK, §17).
"""

from __future__ import annotations

__all__ = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
    "KNOWN_METHODS",
    "DIALOG_CREATING",
    "TARGET_REFRESH",
    "NO_RESPONSE",
]

INVITE = "INVITE"  # RFC 3261
ACK = "ACK"  # RFC 3261
BYE = "BYE"  # RFC 3261
CANCEL = "CANCEL"  # RFC 3261
OPTIONS = "OPTIONS"  # RFC 3261
REGISTER = "REGISTER"  # RFC 3261
PRACK = "PRACK"  # RFC 3262
SUBSCRIBE = "SUBSCRIBE"  # RFC 6665
NOTIFY = "NOTIFY"  # RFC 6665
PUBLISH = "PUBLISH"  # RFC 3903
INFO = "INFO"  # RFC 6086
REFER = "REFER"  # RFC 3515
MESSAGE = "MESSAGE"  # RFC 3428
UPDATE = "UPDATE"  # RFC 3311

#: Every method this stack implements; a UAS answers others with 405 or 501.
KNOWN_METHODS = frozenset(
    {INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, PRACK, SUBSCRIBE, NOTIFY, PUBLISH, INFO, REFER, MESSAGE, UPDATE}
)

#: Requests whose responses may establish a dialog (RFC 3261 §12.1, RFC 6665 §4.1, RFC 3515).
DIALOG_CREATING = frozenset({INVITE, SUBSCRIBE, REFER, NOTIFY})

#: Target refresh requests: they update the remote target of a dialog (RFC 3261 §12.2,
#: RFC 3311, RFC 6665).
TARGET_REFRESH = frozenset({INVITE, UPDATE, SUBSCRIBE, NOTIFY, REFER})

#: Requests that are never answered (RFC 3261 §17.1.1.3).
NO_RESPONSE = frozenset({ACK})
