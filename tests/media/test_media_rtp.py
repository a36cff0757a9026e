"""RTP packets: byte-exact encoding, strict parsing of malformed input, wrap arithmetic."""

from __future__ import annotations

import dataclasses

import pytest

from sipline.media.errors import MediaError, MediaParseError
from sipline.media.rtp import RtpExtension, RtpPacket, is_rtcp, seq_diff, ts_diff
from sipline.sip.errors import ParseError

BASIC = bytes.fromhex("80 00 1234 00000a00 deadbeef") + b"\xff" * 4


def test_basic_packet_byte_exact() -> None:
    packet = RtpPacket(payload_type=0, sequence=0x1234, timestamp=0xA00, ssrc=0xDEADBEEF, payload=b"\xff" * 4)
    assert bytes(packet) == BASIC
    assert RtpPacket.parse(BASIC) == packet
    assert packet.version == 2 and not packet.padding and not packet.has_extension


def test_all_header_features_roundtrip() -> None:
    packet = RtpPacket(
        payload_type=101,
        sequence=65535,
        timestamp=0xFFFFFFFF,
        ssrc=1,
        payload=b"abc",
        marker=True,
        csrc=(2, 3),
        extension=RtpExtension(0xBEDE, b"\x10\xaa\x00\x00"),
        padding_size=5,
    )
    wire = bytes(packet)
    expected = (
        bytes.fromhex("b2 e5 ffff ffffffff 00000001 00000002 00000003")
        + bytes.fromhex("bede 0001 10aa0000")
        + b"abc"
        + bytes.fromhex("00000000 05")
    )
    assert wire == expected
    parsed = RtpPacket.parse(wire)
    assert parsed == packet
    assert parsed.padding and parsed.has_extension and parsed.marker


@pytest.mark.parametrize(
    ("data", "fault"),
    [
        (b"", "truncated"),
        (BASIC[:11], "truncated"),
        (b"\x40" + BASIC[1:], "version 1"),
        (b"\xc0" + BASIC[1:], "version 3"),
        (b"\x8f" + BASIC[1:], "CSRC count 15 overflows"),
        (b"\x81" + BASIC[1:12] + b"\x00\x00", "CSRC count 1 overflows"),
        (b"\x90" + BASIC[1:12] + b"\xbe\xde", "extension header truncated"),
        (b"\x90" + BASIC[1:12] + bytes.fromhex("bede0002 00000000"), "extension length overflows"),
        (b"\xa0" + BASIC[1:12] + b"\x00\x00\x00\x00", "padding count is zero"),
        (b"\xa0" + BASIC[1:12] + b"\x00\x00\x00\x05", "padding longer"),
    ],
)
def test_malformed_packets_raise_parse_error(data: bytes, fault: str) -> None:
    with pytest.raises(MediaParseError) as info:
        RtpPacket.parse(data)
    assert fault in info.value.reason
    # The receive path may catch either family.
    assert isinstance(info.value, ParseError) and isinstance(info.value, MediaError)
    assert info.value.status == 400


def test_padding_exactly_filling_payload_is_valid() -> None:
    packet = RtpPacket.parse(b"\xa0" + BASIC[1:12] + b"\x00\x00\x00\x04")
    assert packet.payload == b"" and packet.padding_size == 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payload_type": 128},
        {"sequence": 65536},
        {"sequence": -1},
        {"timestamp": 1 << 32},
        {"ssrc": -1},
        {"csrc": tuple(range(16))},
        {"csrc": (1 << 32,)},
        {"padding_size": 256},
    ],
)
def test_invalid_fields_rejected(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0}
    base.update(kwargs)
    with pytest.raises(ValueError):
        RtpPacket(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("profile", "data"), [(0x10000, b""), (1, b"abc"), (1, b"\x00" * 4 * 0x10000)])
def test_invalid_extension_rejected(profile: int, data: bytes) -> None:
    with pytest.raises(ValueError):
        RtpExtension(profile, data)


@pytest.mark.parametrize(
    ("a", "b", "diff"),
    [(1, 0, 1), (0, 1, -1), (2, 65534, 4), (65534, 2, -4), (0x8000, 0, -0x8000), (0x7FFF, 0, 0x7FFF), (5, 5, 0)],
)
def test_seq_diff(a: int, b: int, diff: int) -> None:
    assert seq_diff(a, b) == diff


@pytest.mark.parametrize(
    ("a", "b", "diff"),
    [(160, 0, 160), (0, 0xFFFFFF60, 160), (0xFFFFFF60, 0, -160), (0x80000000, 0, -0x80000000)],
)
def test_ts_diff(a: int, b: int, diff: int) -> None:
    assert ts_diff(a, b) == diff


@pytest.mark.parametrize(
    ("data", "rtcp"),
    [(bytes([0x80, 200]), True), (bytes([0x81, 201]), True), (bytes([0x80, 0]), False),
     (bytes([0x80, 0xE5]), False), (b"\x80", False)],
)
def test_is_rtcp_demux(data: bytes, rtcp: bool) -> None:
    assert is_rtcp(data) is rtcp


def test_plain_packet_fast_path_is_the_same_value() -> None:
    data = bytes(RtpPacket(96, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\x01\x02", marker=True))
    packet = RtpPacket.parse(data)
    assert packet == RtpPacket(96, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\x01\x02", marker=True)
    assert (packet.csrc, packet.extension, packet.padding_size) == ((), None, 0)
    assert hash(packet) == hash(RtpPacket(96, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\x01\x02", marker=True))
    with pytest.raises(dataclasses.FrozenInstanceError):
        packet.sequence = 1  # type: ignore[misc]
    assert bytes(packet) == data
