"""RTP data packets (RFC 3550 §5.1) as immutable values, plus sequence arithmetic.

Why a value type: the jitter buffer, the DTMF receiver and the statistics all look at the
same packet, and none of them may change it behind the others' backs.  ``parse`` is strict
(it is the receive path, so it raises only :class:`MediaParseError`) and ``__bytes__``
writes exactly what the fields say, so ``parse(bytes(p)) == p`` for every valid packet.

Sequence numbers (16 bit) and timestamps (32 bit) wrap; comparing them with ``<`` is a bug
waiting for the 65 536th packet.  :func:`seq_diff` and :func:`ts_diff` give the signed
shortest distance modulo the field width, which is what every ordering decision needs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from sipline.media.errors import MediaParseError

__all__ = [
    "RTP_VERSION",
    "RTP_HEADER_SIZE",
    "RtpExtension",
    "RtpPacket",
    "seq_diff",
    "ts_diff",
    "is_rtcp",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two 16-bit sequence numbers, in [-32768, 32767].

    Positive means ``a`` is newer than ``b`` (across a wrap: ``seq_diff(2, 65534) == 4``).
    """
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two 32-bit RTP timestamps."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def is_rtcp(data: bytes) -> bool:
    """True when a datagram on a multiplexed port is RTCP (RFC 5761 §4: PT 64-95).

    The second byte of RTCP holds the packet type (200 SR ... 204 APP); with the marker
    bit masked off it falls in 72..76, a range no RTP payload type may use when muxing.
    """
    return len(data) >= 2 and 64 <= (data[1] & 0x7F) <= 95


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """The single header extension of RFC 3550 §5.3.1.

    ``profile`` is the 16-bit "defined by profile" field (0xBEDE for RFC 8285 one-byte
    elements); ``data`` must be a whole number of 32-bit words because the length field
    counts words.
    """

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        _check_range("extension profile", self.profile, 0xFFFF)
        if len(self.data) % 4:
            raise ValueError("extension data must be a multiple of 4 bytes")
        if len(self.data) // 4 > 0xFFFF:
            raise ValueError("extension data too long")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet; fields are named after RFC 3550 §5.1.

    ``padding_size`` is the number of padding octets including the final count octet
    (0 means the P bit is clear).  Version is always 2: anything else is rejected by
    :meth:`parse`, so it is a property rather than a field that could lie.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = field(default=())
    extension: RtpExtension | None = None
    padding_size: int = 0

    def __post_init__(self) -> None:
        # Hot path (two packets per call every 20 ms): one chained comparison for the
        # common case, the per-field checks only to name the culprit or for rare fields.
        if (0 <= self.payload_type <= 0x7F and 0 <= self.sequence <= 0xFFFF
                and 0 <= self.timestamp <= 0xFFFFFFFF and 0 <= self.ssrc <= 0xFFFFFFFF
                and not self.csrc and not self.padding_size):
            return
        _check_range("payload_type", self.payload_type, 0x7F)
        _check_range("sequence", self.sequence, 0xFFFF)
        _check_range("timestamp", self.timestamp, 0xFFFFFFFF)
        _check_range("ssrc", self.ssrc, 0xFFFFFFFF)
        if len(self.csrc) > 15:
            raise ValueError("at most 15 CSRC identifiers fit the CC field")
        for source in self.csrc:
            _check_range("csrc", source, 0xFFFFFFFF)
        _check_range("padding_size", self.padding_size, 0xFF)

    @property
    def version(self) -> int:
        """Always :data:`RTP_VERSION`; kept for readers who expect the header field."""
        return RTP_VERSION

    @property
    def padding(self) -> bool:
        """The P bit."""
        return self.padding_size > 0

    @property
    def has_extension(self) -> bool:
        """The X bit."""
        return self.extension is not None

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Decode one datagram; raise :class:`MediaParseError` naming the first fault."""
        if len(data) < RTP_HEADER_SIZE:
            raise MediaParseError(f"RTP packet truncated: {len(data)} < {RTP_HEADER_SIZE} bytes")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first == 0x80 and cls is RtpPacket:  # version 2, nothing optional: nearly every packet
            return _plain_packet(second & 0x7F, sequence, timestamp, ssrc, bytes(data[RTP_HEADER_SIZE:]), second > 0x7F)
        version = first >> 6
        if version != RTP_VERSION:
            raise MediaParseError(f"RTP version {version} is not 2")
        csrc_count = first & 0x0F
        offset = RTP_HEADER_SIZE + 4 * csrc_count
        if offset > len(data):
            raise MediaParseError(f"RTP CSRC count {csrc_count} overflows the packet")
        csrc = struct.unpack_from(f"!{csrc_count}I", data, RTP_HEADER_SIZE)
        extension = None
        if first & 0x10:
            if offset + 4 > len(data):
                raise MediaParseError("RTP extension header truncated")
            profile, words = _EXT_HEADER.unpack_from(data, offset)
            offset += 4
            if offset + 4 * words > len(data):
                raise MediaParseError("RTP extension length overflows the packet")
            extension = RtpExtension(profile, bytes(data[offset : offset + 4 * words]))
            offset += 4 * words
        end = len(data)
        padding_size = 0
        if first & 0x20:
            padding_size = data[-1]
            if padding_size == 0:
                raise MediaParseError("RTP padding count is zero")
            if padding_size > end - offset:
                raise MediaParseError("RTP padding longer than the payload")
            end -= padding_size
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding_size=padding_size,
        )

    def __bytes__(self) -> bytes:
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding_size:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = self.payload_type | (0x80 if self.marker else 0)
        parts = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        parts.extend(struct.pack("!I", source) for source in self.csrc)
        if self.extension is not None:
            parts.append(_EXT_HEADER.pack(self.extension.profile, len(self.extension.data) // 4))
            parts.append(self.extension.data)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes([self.padding_size]))
        return b"".join(parts)


# The frozen dataclass's __init__ sets each of the nine slots through object.__setattr__
# and then validates; on the receive path (one packet per call every 20 ms) that was most
# of the cost of parsing.  Header fields unpacked from 12 bytes are in range by
# construction, so the plain packet is assembled through the slot descriptors directly.
_SLOT_SETTERS = tuple(getattr(RtpPacket, name).__set__ for name in (
    "payload_type", "sequence", "timestamp", "ssrc", "payload", "marker", "csrc", "extension", "padding_size"))
assert len(_SLOT_SETTERS) == len(RtpPacket.__slots__)  # a new field must be set here too


def _plain_packet(payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes,
                  marker: bool) -> RtpPacket:
    """An RtpPacket without CSRC, extension or padding, fields known to be in range."""
    packet: RtpPacket = object.__new__(RtpPacket)
    set_pt, set_seq, set_ts, set_ssrc, set_payload, set_marker, set_csrc, set_ext, set_pad = _SLOT_SETTERS
    set_pt(packet, payload_type)
    set_seq(packet, sequence)
    set_ts(packet, timestamp)
    set_ssrc(packet, ssrc)
    set_payload(packet, payload)
    set_marker(packet, marker)
    set_csrc(packet, ())
    set_ext(packet, None)
    set_pad(packet, 0)
    return packet


def _check_range(name: str, value: int, maximum: int) -> None:
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} {value} out of range 0..{maximum}")
