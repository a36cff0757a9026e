"""Write SDP in the one order RFC 8866 §5 allows.

The parser rejects out-of-order lines, so writing the fields back in canonical order is what
makes ``parse`` followed by ``serialize`` byte-exact: there is no other order to remember.
Every value renders itself (``str(origin)``, ``str(attribute)`` ...); this module only knows
the line letters and their sequence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only; the model imports this module
    from .model import MediaDescription, SessionDescription

__all__ = ["serialize", "render_session", "render_media"]


def render_media(media: MediaDescription) -> list[str]:
    """Lines (without CRLF) of one media section: m, i, c*, b*, k, a*."""
    port = str(media.port) if media.port_count is None else f"{media.port}/{media.port_count}"
    lines = [f"m={media.media} {port} {media.proto} {' '.join(media.formats)}"]
    if media.information is not None:
        lines.append(f"i={media.information}")
    lines.extend(f"c={c}" for c in media.connections)
    lines.extend(f"b={b}" for b in media.bandwidths)
    if media.key is not None:
        lines.append(f"k={media.key}")
    lines.extend(f"a={a}" for a in media.attributes)
    return lines


def render_session(sdp: SessionDescription) -> list[str]:
    """Lines (without CRLF) of a whole description: v o s i u e* p* c b* (t r*)* z k a* m*."""
    lines = [f"v={sdp.version}", f"o={sdp.origin}", f"s={sdp.session_name}"]
    if sdp.information is not None:
        lines.append(f"i={sdp.information}")
    if sdp.uri is not None:
        lines.append(f"u={sdp.uri}")
    lines.extend(f"e={e}" for e in sdp.emails)
    lines.extend(f"p={p}" for p in sdp.phones)
    if sdp.connection is not None:
        lines.append(f"c={sdp.connection}")
    lines.extend(f"b={b}" for b in sdp.bandwidths)
    for timing in sdp.times:
        lines.append(f"t={timing}")
        lines.extend(f"r={r}" for r in timing.repeats)
    if sdp.time_zones is not None:
        lines.append(f"z={sdp.time_zones}")
    if sdp.key is not None:
        lines.append(f"k={sdp.key}")
    lines.extend(f"a={a}" for a in sdp.attributes)
    for media in sdp.media:
        lines.extend(render_media(media))
    return lines


def serialize(sdp: SessionDescription) -> bytes:
    """The wire form: CRLF after every line, text fields back to their original bytes."""
    return bytes(sdp)
