"""The values around an RTP session: its configuration and its statistics summary.

Kept apart from :mod:`sipline.media.rtp_session` (which re-exports them) because callers
that only configure sessions or report on them (the UA, CDRs, the CLI) need no sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sipline.media.jitter import JitterConfig
from sipline.media.rtp import RtpPacket

__all__ = ["RtpSessionConfig", "SendFilter", "SessionStats"]

SendFilter = Callable[[RtpPacket], Iterable[RtpPacket]]
"""Hook between the session and the socket: returns the packets to send now (drop,
duplicate or hold back for reordering).  Used by tests to simulate a bad network."""


@dataclass(frozen=True, slots=True)
class RtpSessionConfig:
    """Everything that shapes one session; times in seconds."""

    codec: str = "PCMU"
    clock_rate: int = 8000
    payload_type: int = 0
    ptime: float = 0.02
    dtmf_payload_type: int | None = 101
    dtmf_duration: float = 0.1
    dtmf_gap: float = 0.05
    dtmf_update_interval: float = 0.05
    symmetric: bool = True
    rtcp_mux: bool = False
    rtcp_interval: float = 5.0
    cname: str = "sipline@localhost"
    jitter: JitterConfig = field(default_factory=JitterConfig)
    send_queue: int = 8
    receive_queue: int = 100
    max_lag: float = 0.2


@dataclass(frozen=True, slots=True)
class SessionStats:
    """Summary for logs and CDRs; loss and jitter follow RFC 3550 (A.3, A.8)."""

    packets_sent: int
    octets_sent: int
    packets_received: int
    packets_lost: int
    fraction_lost: float
    late: int
    duplicates: int
    reordered: int
    concealed: int
    jitter_ms: float
    rtt_ms: float | None
    mos: float
    malformed: int
    dtmf_sent: int
    dtmf_received: int
