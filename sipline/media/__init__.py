"""Media plane: RTP/RTCP packets, G.711, RFC 4733 DTMF, jitter buffer, statistics, WAV.

Everything except :mod:`sipline.media.rtp_session` is pure: time is an argument and no
module opens a socket, so loss, reordering and wrap can be replayed in tests with made-up
arrival times.  The session is the thin asyncio shell that feeds the pure parts from a UDP
socket and one paced timer.  Errors subclass :class:`sipline.media.errors.MediaError`
(and ``ParseError`` on the receive path), inside the one sipline hierarchy.
"""

from __future__ import annotations

from sipline.media.errors import CodecNotFound, MediaError, MediaParseError, MediaUsageError, PortsExhausted
from sipline.media.rtp import RtpExtension, RtpPacket, seq_diff, ts_diff

__all__ = [
    "CodecNotFound",
    "MediaError",
    "MediaParseError",
    "MediaUsageError",
    "PortsExhausted",
    "RtpExtension",
    "RtpPacket",
    "seq_diff",
    "ts_diff",
]
