"""StreamFramer: message boundaries, RFC 5626 keep-alives, limits, hostile streams."""

from __future__ import annotations

import pytest

from sipline.sip.errors import MessageTooLarge, ParseError
from sipline.sip.limits import Limits
from sipline.sip.message import KeepAlivePing, KeepAlivePong, StreamFramer

MSG = (
    b"OPTIONS sip:a@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"hello"
)
COMPACT = b"OPTIONS sip:a@example.com SIP/2.0\r\nl:0\r\n\r\n"


def frames(framer: StreamFramer) -> list[object]:
    out: list[object] = []
    while (frame := framer.next_frame()) is not None:
        out.append(frame)
    return out


def test_empty_buffer() -> None:
    framer = StreamFramer()
    assert framer.next_frame() is None and framer.buffered == 0


def test_whole_messages_back_to_back() -> None:
    framer = StreamFramer()
    framer.feed(MSG + COMPACT + MSG)
    assert frames(framer) == [MSG, COMPACT, MSG]
    assert framer.buffered == 0


def test_partial_head_then_partial_body() -> None:
    framer = StreamFramer()
    framer.feed(MSG[:20])
    assert framer.next_frame() is None
    framer.feed(MSG[20:-3])
    assert framer.next_frame() is None and framer.buffered == len(MSG) - 3
    framer.feed(MSG[-3:])
    assert framer.next_frame() == MSG


def test_ping_and_pongs() -> None:
    framer = StreamFramer()
    framer.feed(b"\r\n\r\n")
    assert framer.next_frame() == KeepAlivePing()
    framer.feed(b"\r\n")
    assert framer.next_frame() == KeepAlivePong()
    framer.feed(b"\r\nOPTIONS")
    assert framer.next_frame() == KeepAlivePong()
    assert framer.next_frame() is None and framer.buffered == 7
    framer = StreamFramer()
    framer.feed(b"\n" + COMPACT)
    assert frames(framer) == [KeepAlivePong(), COMPACT]


def test_split_ping_waits_for_its_second_half() -> None:
    framer = StreamFramer()
    framer.feed(b"\r\n\r")
    assert framer.next_frame() is None
    framer.feed(b"\n")
    assert framer.next_frame() == KeepAlivePing()
    framer.feed(b"\r")
    assert framer.next_frame() is None
    framer.feed(b"\n")
    assert framer.next_frame() == KeepAlivePong()


@pytest.mark.parametrize("junk", [b"\rX", b"\r\n\rX"])
def test_stray_cr(junk: bytes) -> None:
    framer = StreamFramer()
    framer.feed(junk)
    with pytest.raises(ParseError, match="stray CR"):
        framer.next_frame()


def test_missing_and_bad_content_length() -> None:
    framer = StreamFramer()
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n")
    with pytest.raises(ParseError, match="missing Content-Length") as info:
        framer.next_frame()
    assert info.value.status == 400
    for bad in (b"", b"12345678901"):
        framer = StreamFramer()
        framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: " + bad + b"\r\n\r\n")
        with pytest.raises(ParseError, match="malformed Content-Length"):
            framer.next_frame()


def test_limits() -> None:
    limits = Limits(max_message_size=200, max_header_size=100, max_body_size=50)
    framer = StreamFramer(limits)
    framer.feed(b"A" * 101)
    with pytest.raises(MessageTooLarge, match="header section"):
        framer.next_frame()
    framer = StreamFramer(limits)
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nX: " + b"y" * 90 + b"\r\n\r\n")
    with pytest.raises(MessageTooLarge, match="header section"):
        framer.next_frame()
    framer = StreamFramer(limits)
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nl: 51\r\n\r\n")
    with pytest.raises(MessageTooLarge, match="Content-Length 51") as info:
        framer.next_frame()
    assert info.value.status == 413


def test_flood_refused_at_feed() -> None:
    limits = Limits(max_message_size=200, max_header_size=100, max_body_size=50)
    framer = StreamFramer(limits)
    with pytest.raises(MessageTooLarge, match="stream buffer limit"):
        framer.feed(b"B" * 300)
    # A long buffer whose head ended in time is fine: it is framed message by message.
    framer = StreamFramer(limits)
    framer.feed(COMPACT * 6)
    assert frames(framer) == [COMPACT] * 6
    framer = StreamFramer(limits)
    with pytest.raises(MessageTooLarge):
        framer.feed(b"X" * 150 + b"\r\n\r\n" + b"Y" * 100)


def test_crlf_flood_is_consumed_as_keepalives() -> None:
    framer = StreamFramer()
    framer.feed(b"\r\n\r\n" * 100)
    assert frames(framer) == [KeepAlivePing()] * 100
