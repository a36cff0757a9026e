"""RTCP: byte-exact packets, compound parsing, malformed datagrams, NTP helpers."""

from __future__ import annotations

import pytest

from sipline.media.errors import MediaParseError
from sipline.media.rtcp import (
    App,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpUnknown,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    ntp_middle32,
    parse_rtcp,
    serialize_rtcp,
)

BLOCK = ReportBlock(ssrc=0x22222222, fraction_lost=64, cumulative_lost=-2, highest_sequence=0x10005,
                    jitter=12, lsr=0xAABBCCDD, dlsr=0x00010000)
BLOCK_WIRE = bytes.fromhex("22222222 40 fffffe 00010005 0000000c aabbccdd 00010000")

SR = SenderReport(0x11111111, 0x0102030405060708, 160, 3, 480, (BLOCK,))
SR_WIRE = bytes.fromhex("81c8000c 11111111 0102030405060708 000000a0 00000003 000001e0") + BLOCK_WIRE
RR = ReceiverReport(0x11111111)
RR_WIRE = bytes.fromhex("80c90001 11111111")
SDES = SourceDescription((SdesChunk(0x11111111, (SdesItem(1, b"ab"),)),))
SDES_WIRE = bytes.fromhex("81ca0003 11111111 01026162 00000000")
BYE = Bye((0x11111111,), b"done")
BYE_WIRE = bytes.fromhex("81cb0003 11111111 04646f6e 65000000")
APP = App(3, 0x11111111, b"TEST", b"\x00\x00\x00\x01")
APP_WIRE = bytes.fromhex("83cc0003 11111111 54455354 00000001")


@pytest.mark.parametrize(
    ("packet", "wire"),
    [(SR, SR_WIRE), (RR, RR_WIRE), (SDES, SDES_WIRE), (BYE, BYE_WIRE), (APP, APP_WIRE),
     (Bye((1, 2)), bytes.fromhex("82cb0002 00000001 00000002")),
     (ReceiverReport(5, (BLOCK,), b"\x00" * 4), bytes.fromhex("81c90008 00000005") + BLOCK_WIRE + b"\x00" * 4),
     (RtcpUnknown(205, 1, b"\x00" * 8), bytes.fromhex("81cd0002") + b"\x00" * 8),
     (SourceDescription((SdesChunk(7, (SdesItem(1, b"abcdef"),)),)),
      bytes.fromhex("81ca0004 00000007 0106616263646566 00000000"))],
)
def test_byte_exact_roundtrip(packet: object, wire: bytes) -> None:
    assert bytes(packet) == wire  # type: ignore[call-overload]
    assert parse_rtcp(wire) == [packet]


def test_compound_parses_to_list_in_order() -> None:
    compound = serialize_rtcp([SR, SDES, BYE])
    assert compound == SR_WIRE + SDES_WIRE + BYE_WIRE
    assert parse_rtcp(compound) == [SR, SDES, BYE]


def test_sdes_with_several_chunks_and_items() -> None:
    sdes = SourceDescription((
        SdesChunk(1, (SdesItem(1, b"user@host"), SdesItem(2, b"User"))),
        SdesChunk(2, ()),
    ))
    assert parse_rtcp(bytes(sdes)) == [sdes]


def test_padding_on_last_packet_is_stripped() -> None:
    padded = bytes.fromhex("a0c90002 11111111 00000004")
    assert parse_rtcp(padded) == [RR]


@pytest.mark.parametrize(
    ("data", "fault"),
    [
        (b"", "empty"),
        (RR_WIRE + b"\x80\xc9", "header truncated"),
        (b"\x40" + RR_WIRE[1:], "version 1"),
        (bytes.fromhex("80c90005 11111111"), "overflows the datagram"),
        (bytes.fromhex("a0c90001 11111100"), "padding"),
        (bytes.fromhex("a0c90001 11111109"), "padding"),
        (bytes.fromhex("80c80001 11111111"), "SR truncated"),
        (bytes.fromhex("80c90000"), "RR truncated"),
        (bytes.fromhex("81c90001 11111111"), "report count 1 overflows"),
        (bytes.fromhex("81c80006 11111111 0000000000000000 00000000 00000000 00000000"), "SR report count"),
        (bytes.fromhex("81ca0000"), "SDES chunk truncated"),
        (bytes.fromhex("81ca0001 11111111"), "not terminated"),
        (bytes.fromhex("81ca0002 11111111 01056162"), "item overflows"),
        (bytes.fromhex("82ca0002 11111111 00000001"), "chunk truncated"),
        (bytes.fromhex("82cb0001 11111111"), "source count 2 overflows"),
        (bytes.fromhex("81cb0002 11111111 09616263"), "reason overflows"),
        (bytes.fromhex("80cc0001 11111111"), "APP truncated"),
    ],
)
def test_malformed_rtcp(data: bytes, fault: str) -> None:
    with pytest.raises(MediaParseError) as info:
        parse_rtcp(data)
    assert fault in info.value.reason


@pytest.mark.parametrize(
    ("factory", "args"),
    [
        (ReportBlock, (1, 256, 0, 0, 0)),
        (ReportBlock, (1, 0, 0x800000, 0, 0)),
        (SdesItem, (0, b"x")),
        (SdesItem, (1, b"x" * 256)),
        (App, (0, 1, b"abc")),
        (App, (0, 1, b"abcd", b"x")),
        (App, (32, 1, b"abcd")),
    ],
)
def test_invalid_values_rejected(factory: type, args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        factory(*args)


def test_ntp_conversion() -> None:
    ntp = ntp_from_unix(1.5)
    assert ntp >> 32 == 2_208_988_801
    assert ntp & 0xFFFFFFFF == 0x80000000
    assert ntp_middle32(ntp) == ((2_208_988_801 & 0xFFFF) << 16) | 0x8000
