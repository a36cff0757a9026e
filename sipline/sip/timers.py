"""Protocol timer values (RFC 3261 §17 and Table 4).

State machines read every interval from a :class:`TimerConfig` so that deployments can tune
T1 for high-latency links and tests can shrink them, instead of literals buried in code.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TimerConfig", "DEFAULT_TIMERS"]


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """Base timer values in seconds; the derived timers follow RFC 3261 Table 4."""

    #: RTT estimate (RFC 3261 §17.1.1.1); retransmit intervals start here.
    t1: float = 0.5
    #: Maximum retransmit interval for non-INVITE requests and INVITE responses.
    t2: float = 4.0
    #: Maximum duration a message remains in the network.
    t4: float = 5.0
    #: Proxy INVITE transaction timeout (Timer C, RFC 3261 §16.6 step 11), > 3 minutes.
    timer_c: float = 180.0
    #: Timer D for unreliable transports (at least 32 s).
    timer_d: float = 32.0

    @property
    def timer_b(self) -> float:
        """INVITE client transaction timeout (64*T1)."""
        return 64 * self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE client transaction timeout (64*T1)."""
        return 64 * self.t1

    @property
    def timer_h(self) -> float:
        """Wait time for ACK receipt at an INVITE server (64*T1)."""
        return 64 * self.t1

    @property
    def timer_j(self) -> float:
        """Wait time for non-INVITE request retransmits over unreliable transports (64*T1)."""
        return 64 * self.t1

    @property
    def timer_l(self) -> float:
        """RFC 6026 Timer L: wait for 2xx ACK retransmits in the Accepted state (64*T1)."""
        return 64 * self.t1

    @property
    def timer_m(self) -> float:
        """RFC 6026 Timer M: wait for 2xx retransmits in the Accepted client state (64*T1)."""
        return 64 * self.t1


DEFAULT_TIMERS = TimerConfig()
