"""The sipline user agent: register, place and answer calls, media, DTMF, hold, transfer.

See ``docs/ua.md`` for runnable examples.  Entry point: :class:`UserAgent`.
"""

from __future__ import annotations

from .agent import UserAgent
from .call import Call, CallEvent, CallState, CallSummary
from .media import DEFAULT_CODECS, MediaLeg
from .registration import Registration, RegistrationError

__all__ = [
    "Call",
    "CallEvent",
    "CallState",
    "CallSummary",
    "DEFAULT_CODECS",
    "MediaLeg",
    "Registration",
    "RegistrationError",
    "UserAgent",
]
