"""Codec policy of a trunk: trim an SDP offer to the codecs the far side allows.

Carriers bill, transcode or reject by codec, so a trunk may list the encodings it accepts
(``codecs = ["PCMA", "PCMU"]``).  The offer going to that trunk keeps only those formats,
in the caller's order.  ``telephone-event`` (RFC 4733) and comfort noise ``CN`` are not
codecs of their own: they stay while at least one real codec is left, and a stream with
no real codec left is rejected (port 0, RFC 3264 §6).  If no stream keeps a codec the
call cannot be placed on that trunk: :func:`filter_codecs` returns None and the SBC answers
488 Not Acceptable Here when no other trunk can take the call.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ProtocolError
from ..sdp import STATIC_PAYLOAD_TYPES, MediaDescription, parse_sdp

__all__ = ["filter_codecs", "encoding_of", "AUXILIARY"]

#: Formats that ride along with a codec but do not carry the voice.
AUXILIARY = frozenset({"TELEPHONE-EVENT", "CN"})


def encoding_of(media: MediaDescription, fmt: str) -> str:
    """Encoding name of format ``fmt`` (rtpmap, else the static RFC 3551 table), upper case."""
    if fmt.isdigit():
        rtpmap = media.rtpmap(int(fmt))
        if rtpmap is not None:
            return rtpmap.encoding.upper()
        static = STATIC_PAYLOAD_TYPES.get(int(fmt))
        if static is not None:
            return static.encoding.upper()
    return fmt.upper()


def _trim(media: MediaDescription, allowed: frozenset[str]) -> MediaDescription | None:
    kept = [f for f in media.formats if encoding_of(media, f) in allowed or encoding_of(media, f) in AUXILIARY]
    if not any(encoding_of(media, f) not in AUXILIARY for f in kept):
        return None
    if kept == list(media.formats):
        return media
    pts = set(kept)
    attributes = tuple(
        a for a in media.attributes
        if a.name not in ("rtpmap", "fmtp") or (a.value or "").split(" ", 1)[0] in pts
    )
    return media.replace(formats=tuple(kept), attributes=attributes)


def filter_codecs(body: bytes, codecs: Iterable[str]) -> bytes | None:
    """``body`` with every audio/video stream trimmed to ``codecs``; None when nothing is left.

    An empty ``codecs`` allows everything (``body`` unchanged); so does a body that is not
    SDP (the carrier will judge it).
    """
    allowed = frozenset(c.upper() for c in codecs)
    if not allowed or not body:
        return body
    try:
        sdp = parse_sdp(body)
    except ProtocolError:
        return body
    media = []
    usable = False
    for stream in sdp.media:
        if stream.is_rejected or not stream.proto.upper().startswith("RTP/"):
            media.append(stream)
            continue
        trimmed = _trim(stream, allowed)
        if trimmed is None:
            media.append(stream.with_port(0))
        else:
            usable = True
            media.append(trimmed)
    if not usable:
        return None
    return bytes(sdp.replace(media=tuple(media)))
