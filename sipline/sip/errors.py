"""One exception hierarchy for the whole SIP core.

Every error raised on the receive path is a :class:`ProtocolError`: it carries the status a
server should answer with and a reason that names the fault, so the runtime can turn any
failure into a well-formed response (or a silent drop for responses and ACKs) without
guessing.  A fuzz test asserts that nothing else escapes the parser.

:class:`UsageError` is for the opposite direction: the application asked the core to do
something impossible (build a response to a response, send on a terminated transaction).
"""

from __future__ import annotations

__all__ = [
    "SiplineError",
    "ProtocolError",
    "ParseError",
    "MessageTooLarge",
    "UnsupportedURIScheme",
    "BadExtension",
    "VersionNotSupported",
    "LoopDetected",
    "TooManyHops",
    "UsageError",
    "TransactionError",
]


class SiplineError(Exception):
    """Base of every exception sipline raises on purpose."""


class ProtocolError(SiplineError):
    """The peer sent something we cannot accept.

    ``status`` is the response a UAS or proxy should send back (RFC 3261 §21), ``reason`` a
    human-readable explanation that names the faulty element; it is safe to put in a
    Warning header or a reason phrase.  ``header`` names the header at fault, if any.
    """

    status: int = 400

    def __init__(self, reason: str, *, status: int | None = None, header: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status
        self.header = header

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, status={self.status})"


class ParseError(ProtocolError):
    """Malformed message, header or URI (400 Bad Request)."""

    status = 400


class MessageTooLarge(ProtocolError):
    """A configured size limit was exceeded (413 Request Entity Too Large)."""

    status = 413


class UnsupportedURIScheme(ProtocolError):
    """Request-URI scheme we cannot handle (416)."""

    status = 416


class BadExtension(ProtocolError):
    """A Require/Proxy-Require option tag we do not support (420).

    ``unsupported`` lists the tags, to be copied into the Unsupported header.
    """

    status = 420

    def __init__(self, reason: str, *, unsupported: tuple[str, ...] = (), header: str | None = None) -> None:
        super().__init__(reason, header=header)
        self.unsupported = unsupported


class VersionNotSupported(ProtocolError):
    """SIP version other than SIP/2.0 (505)."""

    status = 505


class LoopDetected(ProtocolError):
    """A proxy found its own branch in the Via stack (482)."""

    status = 482


class TooManyHops(ProtocolError):
    """Max-Forwards reached zero (483)."""

    status = 483


class UsageError(SiplineError):
    """The local application misused the API; never caused by a peer."""


class TransactionError(UsageError):
    """An operation that the transaction's current state does not allow."""
