"""RTCP packets (RFC 3550 §6.4-6.7) and compound datagrams.

RTCP always travels as a compound: the receiver of a datagram must walk a chain of
length-prefixed packets, and one lying length field would otherwise make us read the
next packet's bytes as this one's.  :func:`parse_rtcp` therefore checks every length
against the datagram before looking inside, and returns a list so the caller can pick the
SR/RR it needs and ignore what it does not understand (:class:`RtcpUnknown`, kept whole so
feedback messages can be forwarded by a relay).

Time helpers convert between wall-clock seconds and the 64-bit NTP format of sender
reports; they take the time as an argument like every other pure part of the package.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Union

from sipline.media.errors import MediaParseError

__all__ = [
    "RTCP_SR",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_BYE",
    "RTCP_APP",
    "SDES_CNAME",
    "ReportBlock",
    "SenderReport",
    "ReceiverReport",
    "SdesItem",
    "SdesChunk",
    "SourceDescription",
    "Bye",
    "App",
    "RtcpUnknown",
    "RtcpPacket",
    "parse_rtcp",
    "serialize_rtcp",
    "ntp_from_unix",
    "ntp_middle32",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204
SDES_CNAME = 1

_NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_COMMON = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IB3sIIII")
_SR_INFO = struct.Struct("!IQIII")


def ntp_from_unix(unix_seconds: float) -> int:
    """64-bit NTP timestamp (RFC 3550 §4) for a Unix time in seconds."""
    whole = int(unix_seconds) + _NTP_UNIX_OFFSET
    fraction = int((unix_seconds % 1.0) * (1 << 32))
    return ((whole & 0xFFFFFFFF) << 32) | (fraction & 0xFFFFFFFF)


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field of a report block."""
    return (ntp >> 16) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception report about one source (RFC 3550 §6.4.1).

    ``cumulative_lost`` is signed (duplicates can make it negative) and clamped to 24 bits
    on the wire; ``lsr``/``dlsr`` are in NTP middle-32 and 1/65536 s units respectively.
    """

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    lsr: int = 0
    dlsr: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.fraction_lost <= 0xFF:
            raise ValueError("fraction_lost must fit 8 bits")
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise ValueError("cumulative_lost must fit a signed 24-bit field")

    def __bytes__(self) -> bytes:
        lost = (self.cumulative_lost & 0xFFFFFF).to_bytes(3, "big")
        return _BLOCK.pack(
            self.ssrc, self.fraction_lost, lost, self.highest_sequence, self.jitter, self.lsr, self.dlsr
        )

    @classmethod
    def _parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = int.from_bytes(lost, "big", signed=True)
        return cls(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR: sender info plus reception reports (RFC 3550 §6.4.1)."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    profile_extension: bytes = b""

    def __bytes__(self) -> bytes:
        body = _SR_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        body += b"".join(bytes(block) for block in self.reports) + self.profile_extension
        return _frame(RTCP_SR, len(self.reports), body)


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR: reception reports from a participant that is not sending (RFC 3550 §6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    profile_extension: bytes = b""

    def __bytes__(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(bytes(b) for b in self.reports)
        return _frame(RTCP_RR, len(self.reports), body + self.profile_extension)


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item: ``kind`` 1 is CNAME, 2 NAME ... 8 PRIV (RFC 3550 §6.5)."""

    kind: int
    value: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.kind <= 0xFF:
            raise ValueError("SDES item type must be 1..255 (0 ends the list)")
        if len(self.value) > 0xFF:
            raise ValueError("SDES item longer than 255 octets")


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The items describing one source."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    def __bytes__(self) -> bytes:
        raw = struct.pack("!I", self.ssrc)
        raw += b"".join(bytes([item.kind, len(item.value)]) + item.value for item in self.items)
        # At least one null octet ends the item list, then pad to a 32-bit boundary.
        raw += b"\x00" * (4 - len(raw) % 4)
        return raw


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES packet: a list of chunks (RFC 3550 §6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    def __bytes__(self) -> bytes:
        return _frame(RTCP_SDES, len(self.chunks), b"".join(bytes(c) for c in self.chunks))


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE: the listed sources are leaving, optionally saying why (RFC 3550 §6.6)."""

    sources: tuple[int, ...] = ()
    reason: bytes = b""

    def __bytes__(self) -> bytes:
        body = b"".join(struct.pack("!I", source) for source in self.sources)
        if self.reason:
            text = bytes([len(self.reason)]) + self.reason
            body += text + b"\x00" * (-len(text) % 4)
        return _frame(RTCP_BYE, len(self.sources), body)


@dataclass(frozen=True, slots=True)
class App:
    """APP: application-defined data under a four-character name (RFC 3550 §6.7)."""

    subtype: int
    ssrc: int
    name: bytes
    data: bytes = b""

    def __post_init__(self) -> None:
        if len(self.name) != 4:
            raise ValueError("APP name must be exactly 4 octets")
        if len(self.data) % 4:
            raise ValueError("APP data must be a multiple of 4 octets")
        if not 0 <= self.subtype <= 31:
            raise ValueError("APP subtype must fit 5 bits")

    def __bytes__(self) -> bytes:
        return _frame(RTCP_APP, self.subtype, struct.pack("!I", self.ssrc) + self.name + self.data)


@dataclass(frozen=True, slots=True)
class RtcpUnknown:
    """A packet type we do not interpret (RTPFB, PSFB, XR ...), kept byte-for-byte."""

    packet_type: int
    count: int
    body: bytes = field(default=b"")

    def __bytes__(self) -> bytes:
        return _frame(self.packet_type, self.count, self.body)


RtcpPacket = Union[SenderReport, ReceiverReport, SourceDescription, Bye, App, RtcpUnknown]


def serialize_rtcp(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """Concatenate packets into one compound datagram."""
    return b"".join(bytes(packet) for packet in packets)


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Split a compound datagram into packets, raising :class:`MediaParseError` on faults."""
    if not data:
        raise MediaParseError("empty RTCP datagram")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise MediaParseError("RTCP header truncated")
        first, packet_type, words = _COMMON.unpack_from(data, offset)
        if first >> 6 != 2:
            raise MediaParseError(f"RTCP version {first >> 6} is not 2")
        end = offset + 4 * (words + 1)
        if end > len(data):
            raise MediaParseError("RTCP length field overflows the datagram")
        body = data[offset + 4 : end]
        if first & 0x20:
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise MediaParseError("RTCP padding count is invalid")
            body = body[: -body[-1]]
        packets.append(_parse_one(packet_type, first & 0x1F, bytes(body)))
        offset = end
    return packets


def _frame(packet_type: int, count: int, body: bytes) -> bytes:
    """Prefix ``body`` (a multiple of 4 octets) with the common header."""
    return _COMMON.pack(0x80 | count, packet_type, len(body) // 4) + body


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        return _parse_sr(count, body)
    if packet_type == RTCP_RR:
        return _parse_rr(count, body)
    if packet_type == RTCP_SDES:
        return _parse_sdes(count, body)
    if packet_type == RTCP_BYE:
        return _parse_bye(count, body)
    if packet_type == RTCP_APP:
        if len(body) < 8:
            raise MediaParseError("RTCP APP truncated")
        (ssrc,) = struct.unpack_from("!I", body)
        return App(count, ssrc, body[4:8], body[8:])
    return RtcpUnknown(packet_type, count, body)


def _parse_blocks(count: int, body: bytes, offset: int, kind: str) -> tuple[ReportBlock, ...]:
    if offset + count * _BLOCK.size > len(body):
        raise MediaParseError(f"RTCP {kind} report count {count} overflows the packet")
    return tuple(ReportBlock._parse(body, offset + i * _BLOCK.size) for i in range(count))


def _parse_sr(count: int, body: bytes) -> SenderReport:
    if len(body) < _SR_INFO.size:
        raise MediaParseError("RTCP SR truncated")
    ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
    blocks = _parse_blocks(count, body, _SR_INFO.size, "SR")
    extension = body[_SR_INFO.size + count * _BLOCK.size :]
    return SenderReport(ssrc, ntp, rtp_ts, packets, octets, blocks, extension)


def _parse_rr(count: int, body: bytes) -> ReceiverReport:
    if len(body) < 4:
        raise MediaParseError("RTCP RR truncated")
    (ssrc,) = struct.unpack_from("!I", body)
    blocks = _parse_blocks(count, body, 4, "RR")
    return ReceiverReport(ssrc, blocks, body[4 + count * _BLOCK.size :])


def _parse_sdes(count: int, body: bytes) -> SourceDescription:
    chunks: list[SdesChunk] = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise MediaParseError("RTCP SDES chunk truncated")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        items: list[SdesItem] = []
        while True:
            if offset >= len(body):
                raise MediaParseError("RTCP SDES item list not terminated")
            kind = body[offset]
            if kind == 0:
                # Skip the terminating null and the padding to the next 32-bit boundary.
                offset = (offset + 4) & ~3
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise MediaParseError("RTCP SDES item overflows the packet")
            length = body[offset + 1]
            items.append(SdesItem(kind, body[offset + 2 : offset + 2 + length]))
            offset += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_bye(count: int, body: bytes) -> Bye:
    if 4 * count > len(body):
        raise MediaParseError(f"RTCP BYE source count {count} overflows the packet")
    sources = struct.unpack_from(f"!{count}I", body)
    reason = b""
    rest = body[4 * count :]
    if rest:
        if 1 + rest[0] > len(rest):
            raise MediaParseError("RTCP BYE reason overflows the packet")
        reason = rest[1 : 1 + rest[0]]
    return Bye(tuple(sources), reason)
