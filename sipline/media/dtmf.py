"""DTMF as RFC 4733 telephone events: payload codec, sender plan and receiver.

Why events instead of tones: G.711 carries DTMF tones fine, but compressed codecs and
packet loss mangle them, so SIP trunks signal digits out-of-band in RTP.  An event is a
series of packets that share one RTP timestamp (the instant the key went down) and report
a growing duration; the last three repeat the final duration with the E bit set, so one
lost end packet does not leave the digit "held".

The sender is a pure *plan*: for a digit, the packets to send and when, relative to the
first.  The session turns the plan into datagrams with its own sequence numbers, so the
same plan is byte-exact in tests and on the wire.

The receiver must report each digit exactly once although it sees duplicates (the end
packets, by design), reordering, and events whose first packets were lost.  The event's
timestamp identifies it, so the receiver remembers recent timestamps instead of trying
to track start/update/end states that loss can skip.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from sipline.media.errors import MediaParseError, MediaUsageError
from sipline.media.rtp import RtpPacket, ts_diff

__all__ = [
    "DTMF_EVENTS",
    "digit_to_event",
    "event_to_digit",
    "TelephoneEvent",
    "DtmfPacket",
    "DtmfSender",
    "DtmfDigit",
    "DtmfReceiver",
]

DTMF_EVENTS = "0123456789*#ABCD"
"""Event codes 0-15 (RFC 4733 §3.2) in code order."""

_PAYLOAD = struct.Struct("!BBH")
_MAX_DURATION = 0xFFFF


def digit_to_event(digit: str) -> int:
    """Event code for a DTMF character (case-insensitive A-D)."""
    index = DTMF_EVENTS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise MediaUsageError(f"{digit!r} is not a DTMF digit")
    return index


def event_to_digit(event: int) -> str | None:
    """DTMF character for an event code, or ``None`` for non-DTMF events (flash, ...)."""
    return DTMF_EVENTS[event] if 0 <= event < len(DTMF_EVENTS) else None


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The 4-octet telephone-event payload (RFC 4733 §2.3).

    ``volume`` is the power level in -dBm0 (0..63); ``duration`` is in timestamp units
    since the event's RTP timestamp.
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 0xFF:
            raise ValueError("event code must fit 8 bits")
        if not 0 <= self.volume <= 63:
            raise ValueError("volume must be 0..63")
        if not 0 <= self.duration <= _MAX_DURATION:
            raise ValueError("duration must fit 16 bits")

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Decode a payload; extra blocks (RFC 4733 §2.5.1.5 redundancy) use the first."""
        if len(payload) < 4:
            raise MediaParseError(f"telephone-event payload truncated: {len(payload)} bytes")
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        # The R bit (0x40) is reserved: ignored on receipt.
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


@dataclass(frozen=True, slots=True)
class DtmfPacket:
    """One planned packet: send ``offset`` seconds after the first, with these fields."""

    offset: float
    marker: bool
    timestamp: int
    payload: TelephoneEvent

    def to_rtp(self, payload_type: int, sequence: int, ssrc: int) -> RtpPacket:
        """The RTP packet for this plan entry once the session assigns a sequence number."""
        return RtpPacket(
            payload_type=payload_type,
            sequence=sequence & 0xFFFF,
            timestamp=self.timestamp,
            ssrc=ssrc,
            payload=bytes(self.payload),
            marker=self.marker,
        )


@dataclass(frozen=True, slots=True)
class DtmfSender:
    """Plans the packet sequence of one digit (RFC 4733 §2.5.1).

    ``update_interval`` spaces the interim packets (50 ms is the RFC's suggestion);
    ``end_interval`` spaces the three redundant end packets.  A packet sent at offset
    ``t`` reports the duration covered up to ``t + update_interval``, i.e. the segment it
    announces, so the first packet already carries one interval.
    """

    clock_rate: int = 8000
    update_interval: float = 0.05
    end_interval: float = 0.02
    end_repeats: int = 3
    volume: int = 10

    def __post_init__(self) -> None:
        if self.update_interval <= 0 or self.end_interval < 0 or self.end_repeats < 1:
            raise MediaUsageError("DTMF intervals must be positive and end_repeats >= 1")

    def plan(self, digit: str, timestamp: int, duration: float = 0.1) -> tuple[DtmfPacket, ...]:
        """Packets for ``digit`` pressed at RTP ``timestamp`` and held ``duration`` seconds."""
        event = digit_to_event(digit)
        total = min(round(duration * self.clock_rate), _MAX_DURATION)
        step = round(self.update_interval * self.clock_rate)
        if total <= 0 or step <= 0:
            raise MediaUsageError("DTMF duration and update interval must be at least one sample")
        packets: list[DtmfPacket] = []
        covered = step
        offset = 0.0
        while covered < total:
            payload = TelephoneEvent(event, False, self.volume, covered)
            packets.append(DtmfPacket(offset, not packets, timestamp, payload))
            covered += step
            offset += self.update_interval
        final = TelephoneEvent(event, True, self.volume, total)
        for repeat in range(self.end_repeats):
            marker = not packets  # a digit shorter than one interval starts with its end
            packets.append(DtmfPacket(offset + repeat * self.end_interval, marker, timestamp, final))
        return tuple(packets)


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A digit reported by :class:`DtmfReceiver`, once per event.

    ``duration`` is the longest duration seen so far (samples); ``ended`` tells whether an
    end packet had already arrived when the digit was reported (the start was lost).
    """

    digit: str
    event: int
    timestamp: int
    duration: int
    volume: int
    ended: bool


class DtmfReceiver:
    """Turns telephone-event packets into one :class:`DtmfDigit` per event.

    ``memory`` bounds how many recent event timestamps are remembered; it must cover the
    reordering window, and 32 events is far beyond what a phone keypad produces.  A
    packet whose timestamp is older than every remembered one by more than ``stale``
    samples is ignored rather than reported as a new digit.
    """

    def __init__(self, payload_type: int = 101, *, memory: int = 32, stale: int = 8000 * 60) -> None:
        self.payload_type = payload_type
        self._seen: deque[int] = deque(maxlen=memory)
        self._seen_set: set[int] = set()
        self._stale = stale
        self.duplicates = 0
        self.ignored = 0

    def feed(self, packet: RtpPacket) -> DtmfDigit | None:
        """Account one packet; return a digit the first time its event is seen."""
        if packet.payload_type != self.payload_type:
            return None
        payload = TelephoneEvent.parse(packet.payload)
        digit = event_to_digit(payload.event)
        if digit is None:
            self.ignored += 1
            return None
        if packet.timestamp in self._seen_set:
            self.duplicates += 1
            return None
        if self._seen and all(ts_diff(packet.timestamp, seen) < -self._stale for seen in self._seen):
            self.ignored += 1
            return None
        self._remember(packet.timestamp)
        return DtmfDigit(digit, payload.event, packet.timestamp, payload.duration, payload.volume, payload.end)

    def _remember(self, timestamp: int) -> None:
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(timestamp)
        self._seen_set.add(timestamp)
