"""RFC 3262 bookkeeping of the B2BUA legs: RSeq/RAck parsing, which reliable provisionals
the UAC side PRACKs, and what the UAS side owes."""

from __future__ import annotations

import pytest

from sipline.sip.b2bua.reliable import (
    RAck,
    ReliableReceiver,
    ReliableSender,
    parse_rack,
    parse_rseq,
    requires_100rel,
    supports_100rel,
)
from sipline.sip.errors import ParseError
from sipline.sip.message import Request, parse_message


def invite(extra: str = "") -> Request:
    msg = parse_message((
        "INVITE sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
        "Call-ID: c1\r\nCSeq: 5 INVITE\r\nMax-Forwards: 70\r\n"
        f"{extra}Content-Length: 0\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


@pytest.mark.parametrize("extra, supported, required", [
    ("", False, False),
    ("Supported: timer, 100rel\r\n", True, False),
    ("Supported: timer\r\nSupported: 100REL\r\n", True, False),
    ("Require: 100rel\r\n", True, True),
    ("Supported: timer\r\n", False, False),
])
def test_option_tags(extra: str, supported: bool, required: bool) -> None:
    request = invite(extra)
    assert supports_100rel(request) is supported
    assert requires_100rel(request) is required


def test_rseq_and_rack_parse_and_refuse_garbage() -> None:
    assert parse_rseq(" 42 ") == 42
    assert parse_rack("42 5 INVITE") == RAck(42, 5, "INVITE")
    assert str(RAck(1, 2, "INVITE")) == "1 2 INVITE"
    for bad in ("", "0", "-1", "x", str(2**31)):
        with pytest.raises(ParseError):
            parse_rseq(bad)
    for bad in ("1 2", "1 x INVITE", "a 2 INVITE", "1 2 INVITE extra"):
        with pytest.raises(ParseError) as info:
            parse_rack(bad)
        assert info.value.status == 400


def test_receiver_acks_each_number_once_and_in_order_per_dialog() -> None:
    rx = ReliableReceiver()
    assert rx.accept("t1", 10)          # the first sets the space
    assert not rx.accept("t1", 10)      # retransmission
    assert not rx.accept("t1", 12)      # out of order
    assert rx.accept("t1", 11)
    assert rx.accept("t2", 500)         # another early dialog numbers on its own


def test_sender_reliability_rules() -> None:
    required = ReliableSender(required=True, supported=True, invite_cseq=5, first_rseq=100)
    supported = ReliableSender(required=False, supported=True, invite_cseq=5, first_rseq=100)
    assert required.wants_reliable(180, False) and required.wants_reliable(183, True)
    assert not required.wants_reliable(100, False) and not required.wants_reliable(200, True)
    assert supported.wants_reliable(183, True) and not supported.wants_reliable(180, False)


def test_sender_tracks_pracks_and_blocks_the_answer_on_sdp() -> None:
    tx = ReliableSender(required=True, supported=True, invite_cseq=5, first_rseq=100)
    ringing = dict(tx.send(False))
    assert ringing == {"Require": "100rel", "RSeq": "100"}
    assert not tx.answer_blocked
    early = dict(tx.send(True))
    assert early["RSeq"] == "101" and tx.answer_blocked
    assert not tx.acknowledge(RAck(101, 4, "INVITE"))    # another INVITE's CSeq
    assert not tx.acknowledge(RAck(101, 5, "UPDATE"))
    assert not tx.acknowledge(RAck(99, 5, "INVITE"))     # never sent
    assert tx.acknowledge(RAck(101, 5, "INVITE"))
    assert not tx.answer_blocked and tx.unacknowledged(100)
    assert not tx.acknowledge(RAck(101, 5, "INVITE"))    # once only
