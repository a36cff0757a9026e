"""RFC 3550 receiver statistics and an E-model (ITU-T G.107) MOS estimate.

The reception counters follow RFC 3550 Appendix A.1/A.3/A.8 literally because their
values go into RTCP report blocks that the peer's monitoring will compare with its own
send counters: "expected" is derived from the extended highest sequence number, so loss
survives sequence wrap; duplicates make cumulative loss go down (even negative), exactly
as the RFC specifies.  Times are arguments (seconds, any origin), never clock reads.

The MOS estimate is the simplified E-model used by most VoIP monitors: start from the
G.711 default R of 93.2, subtract the delay impairment ``Id`` (Cole & Rosenbluth's
piecewise-linear fit) and the effective equipment impairment ``Ie-eff`` of G.107 §3.6
from the loss rate, then map R to MOS with the G.107 Annex B polynomial.  Jitter counts
as delay because a jitter buffer must absorb it: effective delay = delay + 2 x jitter.
"""

from __future__ import annotations

from dataclasses import dataclass

from sipline.media.rtcp import ReportBlock

__all__ = [
    "ReceiverStatistics",
    "IntervalReport",
    "r_factor",
    "mos_from_r",
    "estimate_mos",
    "G711_BPL_PLC",
    "G711_BPL_NO_PLC",
]

_SEQ_MOD = 1 << 16
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100

G711_BPL_PLC = 25.1
"""Packet-loss robustness factor of G.711 with concealment (ITU-T G.113 Appendix I)."""
G711_BPL_NO_PLC = 4.3
"""Packet-loss robustness factor of G.711 without concealment."""


@dataclass(frozen=True, slots=True)
class IntervalReport:
    """Loss over the interval since the previous report (RFC 3550 A.3)."""

    fraction_lost: int
    cumulative_lost: int
    extended_highest: int
    jitter: int


class ReceiverStatistics:
    """Per-source reception state of RFC 3550 A.1 (sequence validation) and A.3/A.8.

    ``probation`` is the number of in-order packets required before a source is
    believed (``MIN_SEQUENTIAL`` in the RFC is 2); 0 accepts the first packet, which is
    what a SIP session wants since signalling already validated the peer.
    """

    def __init__(self, clock_rate: int = 8000, *, probation: int = 0) -> None:
        self.clock_rate = clock_rate
        self._probation = probation
        self._min_sequential = probation
        self._initialised = False
        self.base_seq = 0
        self.max_seq = 0
        self.cycles = 0
        self.received = 0
        self._bad_seq = _SEQ_MOD + 1
        self._expected_prior = 0
        self._received_prior = 0
        self._transit: float | None = None
        self._jitter = 0.0

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self._bad_seq = _SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def update(self, sequence: int, timestamp: int, arrival: float, *, timing: bool = True) -> bool:
        """Account one packet; return False if A.1 validation rejected it.

        ``timing=False`` counts the packet without feeding the jitter estimate: RFC 4733
        events repeat one timestamp over their whole duration, which A.8 would misread
        as jitter.
        """
        if not self._initialised:
            self._initialised = True
            self._init_seq(sequence)
            self.max_seq = (sequence - 1) % _SEQ_MOD
            if self._probation == 0:
                self.max_seq = sequence
                self.received = 1
                if timing:
                    self._update_jitter(timestamp, arrival)
                return True
        if not self._update_seq(sequence):
            return False
        if timing:
            self._update_jitter(timestamp, arrival)
        return True

    def _update_seq(self, seq: int) -> bool:
        udelta = (seq - self.max_seq) % _SEQ_MOD
        if self._probation:
            if seq == (self.max_seq + 1) % _SEQ_MOD:
                self._probation -= 1
                self.max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self._probation = self._min_sequential - 1
                self.max_seq = seq
            return False
        if udelta < _MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += _SEQ_MOD  # sequence number wrapped
            self.max_seq = seq
        elif udelta <= _SEQ_MOD - _MAX_MISORDER:
            # A very large jump: believe it only if the next packet continues from it.
            if seq == self._bad_seq:
                self._init_seq(seq)
            else:
                self._bad_seq = (seq + 1) % _SEQ_MOD
                return False
        # Otherwise: a duplicate or reordered packet, counted but not moving max_seq.
        self.received += 1
        return True

    def _update_jitter(self, timestamp: int, arrival: float) -> None:
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            delta = transit - self._transit
            # Undo 32-bit timestamp wrap so the difference is the short way round.
            delta = (delta + 2**31) % 2**32 - 2**31
            self._jitter += (abs(delta) - self._jitter) / 16.0
        self._transit = transit

    @property
    def extended_max(self) -> int:
        """Highest sequence number with wrap cycles added."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected from ``base_seq`` to the extended maximum."""
        return self.extended_max - self.base_seq + 1 if self._initialised else 0

    @property
    def lost(self) -> int:
        """Cumulative packets lost, clamped to the signed 24-bit report field."""
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    @property
    def jitter(self) -> float:
        """Interarrival jitter in timestamp units."""
        return self._jitter

    @property
    def jitter_seconds(self) -> float:
        """Interarrival jitter in seconds."""
        return self._jitter / self.clock_rate

    def interval_report(self) -> IntervalReport:
        """Close the current reporting interval and return its figures (RFC 3550 A.3)."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self.received - self._received_prior
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = (lost_interval << 8) // expected_interval
        return IntervalReport(min(fraction, 255), self.lost, self.extended_max & 0xFFFFFFFF, int(self._jitter))

    def report_block(self, ssrc: int, lsr: int = 0, dlsr: int = 0) -> ReportBlock:
        """A report block about source ``ssrc`` that also closes the interval."""
        report = self.interval_report()
        return ReportBlock(
            ssrc, report.fraction_lost, report.cumulative_lost, report.extended_highest, report.jitter, lsr, dlsr
        )


def r_factor(
    loss: float,
    jitter_ms: float = 0.0,
    delay_ms: float = 0.0,
    *,
    ie: float = 0.0,
    bpl: float = G711_BPL_PLC,
    burst_ratio: float = 1.0,
) -> float:
    """Transmission rating R for ``loss`` (fraction 0..1), jitter and one-way delay.

    ``ie``/``bpl`` default to G.711 with packet loss concealment; ``burst_ratio`` 1 means
    random loss.
    """
    ppl = max(0.0, min(loss, 1.0)) * 100.0
    delay = max(0.0, delay_ms) + 2.0 * max(0.0, jitter_ms)
    id_ = 0.024 * delay + (0.11 * (delay - 177.3) if delay > 177.3 else 0.0)
    ie_eff = ie + (95.0 - ie) * ppl / (ppl / burst_ratio + bpl)
    return 93.2 - id_ - ie_eff


def mos_from_r(r: float) -> float:
    """G.107 Annex B mapping from R to the conversational MOS (1.0-4.5)."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6


def estimate_mos(loss: float, jitter_ms: float = 0.0, delay_ms: float = 0.0, **kwargs: float) -> float:
    """MOS for a G.711 call: :func:`mos_from_r` of :func:`r_factor`."""
    return mos_from_r(r_factor(loss, jitter_ms, delay_ms, **kwargs))
