"""A pure jitter buffer: packets in with their arrival time, one frame out per tick.

Why pure: playout decisions depend only on arrival times and the tick clock, so tests
can replay loss, reordering and delay spikes with made-up times and check every counter,
and the asyncio session only has to call :meth:`JitterBuffer.pop` from its 20 ms timer.

Theory of operation.  Packets are filed by *extended* sequence number (the 16-bit field
unwrapped against the highest seen), so a wrap from 65535 to 0 is just +1.  Playout starts
``target_delay`` after the first arrival and then consumes one sequence number per tick:

- the expected packet is here: play it;
- it is missing but a later one is here: it is lost, conceal and move on;
- nothing is buffered at all (underrun): conceal but keep waiting for the same packet,
  which stretches the delay by one frame, the cheapest way to adapt to a slower path.

Because underruns stretch the delay, the buffer also shrinks it: when more frames are
queued than the target allows (plus a little slack), the oldest one is discarded.  In
adaptive mode the target follows the RFC 3550 interarrival jitter estimate.

A packet that arrives after its slot was played or concealed is *late*; one already
played or queued is a *duplicate*; one older than the newest seen is *reordered*.  Lost
counts packets that never arrived in time and were not late, so a late arrival moves one
count from ``lost`` to ``late``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from sipline.media.errors import MediaUsageError
from sipline.media.rtp import RtpPacket, ts_diff

__all__ = ["JitterConfig", "Concealment", "JitterStats", "JitterBuffer", "PlayoutItem"]

_RESYNC_GAP = 3000  # RFC 3550 A.1 MAX_DROPOUT: a bigger jump means the sender restarted


@dataclass(frozen=True, slots=True)
class JitterConfig:
    """Tuning of a :class:`JitterBuffer`; delays are in seconds.

    In fixed mode ``target_delay`` is the playout delay; in adaptive mode it is the
    starting value, later recomputed from the jitter and clamped to
    ``[min_delay, max_delay]``.  ``capacity`` bounds memory whatever the peer sends.
    """

    clock_rate: int = 8000
    frame_duration: float = 0.02
    target_delay: float = 0.06
    adaptive: bool = True
    min_delay: float = 0.04
    max_delay: float = 0.3
    capacity: int = 64
    trim_slack: int = 2

    def __post_init__(self) -> None:
        if self.frame_duration <= 0 or self.clock_rate <= 0 or self.capacity < 1:
            raise MediaUsageError("jitter buffer needs a positive frame, clock rate and capacity")
        if not 0 <= self.min_delay <= self.max_delay:
            raise MediaUsageError("jitter buffer needs 0 <= min_delay <= max_delay")


@dataclass(frozen=True, slots=True)
class Concealment:
    """Returned by :meth:`JitterBuffer.pop` when there is no packet to play.

    ``lost`` is true for a gap (a later packet is already here) and false for an underrun
    (nothing buffered; the same sequence number is expected again on the next tick).
    """

    sequence: int
    lost: bool


PlayoutItem = RtpPacket | Concealment


@dataclass(frozen=True, slots=True)
class JitterStats:
    """Counters since creation; ``jitter`` is the RFC 3550 A.8 estimate in seconds."""

    received: int
    played: int
    lost: int
    late: int
    duplicates: int
    reordered: int
    discarded: int
    concealed: int
    underruns: int
    resyncs: int
    jitter: float
    target_delay: float
    depth: int


class _Recent:
    """A bounded set that forgets its oldest members first."""

    def __init__(self, size: int) -> None:
        self._order: deque[int] = deque()
        self._members: set[int] = set()
        self._size = size

    def add(self, value: int) -> None:
        if value in self._members:
            return
        self._order.append(value)
        self._members.add(value)
        if len(self._order) > self._size:
            self._members.discard(self._order.popleft())

    def discard(self, value: int) -> bool:
        """Remove ``value``; report whether it was present (the deque keeps a stale entry)."""
        if value in self._members:
            self._members.remove(value)
            return True
        return False

    def __contains__(self, value: int) -> bool:
        return value in self._members


class JitterBuffer:
    """Reorders packets of one stream and releases one per :meth:`pop` tick."""

    def __init__(self, config: JitterConfig | None = None) -> None:
        self.config = config or JitterConfig()
        cfg = self.config
        self._target = cfg.target_delay
        # push() runs for every packet: the config fields it needs, as plain attributes.
        self._rate = cfg.clock_rate
        self._capacity = cfg.capacity
        self._adaptive = cfg.adaptive
        self._timed = False  # a packet fed the jitter estimate: the adaptive target applies
        self._jitter = 0.0  # timestamp units, RFC 3550 A.8
        self._counts = dict.fromkeys(
            ("received", "played", "lost", "late", "duplicates", "reordered", "discarded",
             "concealed", "underruns", "resyncs"), 0
        )
        self._ssrc: int | None = None
        self._last_arrival: tuple[float, int] | None = None
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._buffer: dict[int, RtpPacket] = {}
        self._highest: tuple[int, int] | None = None  # (extended, 16-bit) sequence
        self._next = 0
        self._started = False
        self._first_arrival = 0.0
        self._played = _Recent(4 * self.config.capacity)
        self._skipped = _Recent(4 * self.config.capacity)

    @property
    def target_delay(self) -> float:
        """Current playout delay target in seconds."""
        return self._refresh_target()

    def _refresh_target(self) -> float:
        # Adaptive mode: the target follows the jitter estimate.  Computed when read (once
        # per tick) rather than on every packet; the value is the same.
        if self._adaptive and self._timed:
            cfg = self.config
            wanted = 2 * cfg.frame_duration + 4 * self._jitter / self._rate
            self._target = min(max(wanted, cfg.min_delay), cfg.max_delay)
        return self._target

    @property
    def stats(self) -> JitterStats:
        """A snapshot of the counters."""
        return JitterStats(
            **self._counts,
            jitter=self._jitter / self.config.clock_rate,
            target_delay=self._refresh_target(),
            depth=len(self._buffer),
        )

    def push(self, packet: RtpPacket, arrival_time: float, *, timing: bool = True) -> str:
        """File ``packet``; return ``"queued"``, ``"duplicate"`` or ``"late"``.

        ``timing=False`` keeps the packet out of the jitter estimate (telephone events
        repeat one timestamp, which would read as jitter).
        """
        ssrc, sequence = packet.ssrc, packet.sequence
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                self._resync()
            self._ssrc = ssrc
        highest = self._highest
        if highest is None:
            extended = sequence
        else:
            delta = ((sequence - highest[1] + 0x8000) & 0xFFFF) - 0x8000  # seq_diff, inlined
            if -_RESYNC_GAP <= delta <= _RESYNC_GAP:
                extended = highest[0] + delta
            else:
                self._resync()
                highest = None
                extended = sequence
        counts = self._counts
        counts["received"] += 1
        buffer = self._buffer
        if extended in buffer or (self._started and extended < self._next):
            return self._classify(extended)
        if timing:
            self._update_jitter(packet, arrival_time)
        if highest is None:
            self._first_arrival = arrival_time
            self._highest = (extended, sequence)
        elif extended < highest[0]:
            counts["reordered"] += 1
        else:
            self._highest = (extended, sequence)
        buffer[extended] = packet
        if len(buffer) > self._capacity:
            self._discard_oldest()
        return "queued"

    def _classify(self, extended: int) -> str:
        if extended in self._buffer:
            self._counts["duplicates"] += 1
            return "duplicate"
        if self._started and extended < self._next:
            if self._skipped.discard(extended):
                self._counts["lost"] -= 1
                self._counts["late"] += 1
                return "late"
            if extended in self._played:
                self._counts["duplicates"] += 1
                return "duplicate"
            self._counts["late"] += 1
            return "late"
        return "queued"

    def _update_jitter(self, packet: RtpPacket, arrival_time: float) -> None:
        last = self._last_arrival
        if last is not None:
            delta = (arrival_time - last[0]) * self._rate - ts_diff(packet.timestamp, last[1])
            self._jitter += (abs(delta) - self._jitter) / 16.0
        self._last_arrival = (arrival_time, packet.timestamp)
        self._timed = True

    def _discard_oldest(self) -> None:
        oldest = min(self._buffer)
        del self._buffer[oldest]
        self._counts["discarded"] += 1
        if self._started and oldest >= self._next:
            self._next = oldest + 1

    def _resync(self) -> None:
        """The stream restarted (new SSRC or a huge jump): forget its sequence state."""
        self._counts["resyncs"] += 1
        self._last_arrival = None
        self._reset_stream()

    def pop(self, now: float) -> PlayoutItem | None:
        """The item to play at tick time ``now``; ``None`` while still filling."""
        target = self._refresh_target()
        if not self._started:
            if not self._buffer or now < self._first_arrival + target:
                return None
            self._started = True
            self._next = min(self._buffer)
        self._trim(target)
        packet = self._buffer.pop(self._next, None)
        if packet is not None:
            self._played.add(self._next)
            self._next += 1
            self._counts["played"] += 1
            return packet
        self._counts["concealed"] += 1
        sequence = self._next & 0xFFFF
        if self._buffer:
            self._skipped.add(self._next)
            self._counts["lost"] += 1
            self._next += 1
            return Concealment(sequence, lost=True)
        self._counts["underruns"] += 1
        return Concealment(sequence, lost=False)

    def _trim(self, target: float) -> None:
        """Drop one queued frame when the queue holds more than the target delay."""
        if not self._buffer or self._highest is None:
            return
        # The newest queued packet is always the highest seen (only the oldest ones leave
        # the buffer), so the depth needs no scan of the buffer.
        depth = self._highest[0] - self._next + 1
        allowed = math.ceil(target / self.config.frame_duration - 1e-9) + self.config.trim_slack
        if depth > allowed and self._next in self._buffer:
            del self._buffer[self._next]
            self._played.add(self._next)
            self._next += 1
            self._counts["discarded"] += 1
