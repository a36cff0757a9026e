"""SDP (RFC 8866) model, parser and serializer, and RFC 3264 offer/answer.

``parse_sdp(body)`` gives an immutable :class:`SessionDescription`; ``bytes(sdp)`` writes it
back, byte for byte for well-formed CRLF input.  Typed views (``media.rtpmaps``,
``media.fmtp(pt)``, ``media.ptime``, ``sdp.effective_direction(media)``,
``sdp.effective_connection(media)``) are computed from the kept lines; ``with_*`` helpers
return modified copies for hold/resume and media relay.  The offer/answer functions build
our side of a negotiation and :func:`negotiate` tells the media layer what was agreed.
"""

from __future__ import annotations

from .model import (
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
    Timing,
)
from .offer_answer import (
    TELEPHONE_EVENT,
    Codec,
    CodecOrder,
    LocalSession,
    MediaCapabilities,
    NegotiatedStream,
    build_answer,
    build_offer,
    hold,
    is_hold,
    negotiate,
    next_version,
    resume,
)
from .parser import DEFAULT_MAX_LINES, DEFAULT_MAX_SIZE, parse_sdp
from .serializer import serialize

__all__ = [
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "Codec",
    "CodecOrder",
    "LocalSession",
    "MediaCapabilities",
    "NegotiatedStream",
    "build_answer",
    "build_offer",
    "hold",
    "is_hold",
    "negotiate",
    "next_version",
    "resume",
    "Attribute",
    "Bandwidth",
    "Connection",
    "DEFAULT_MAX_LINES",
    "DEFAULT_MAX_SIZE",
    "Direction",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "SessionDescription",
    "Timing",
    "parse_sdp",
    "serialize",
]
