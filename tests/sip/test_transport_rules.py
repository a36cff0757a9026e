"""RFC 3261 §18 / RFC 3581 rules: received/rport stamping, response routing, UDP size limit."""

from __future__ import annotations

import pytest

from sipline.sip.errors import ParseError
from sipline.sip.message import Request, Response, parse_message, parse_via
from sipline.sip.message.rejection import reason_phrase_for, rejection_for
from sipline.sip.transport import (
    Peer,
    default_port,
    is_reliable,
    must_use_congestion_controlled,
    response_destination,
    stamp_received,
)


def request(via: str) -> Request:
    msg = parse_message(
        (f"OPTIONS sip:x@example.com SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP other;branch=z9hG4bK0\r\n"
         "From: <sip:a@b>;tag=1\r\nTo: <sip:x@example.com>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
         "Content-Length: 0\r\n\r\n").encode()
    )
    assert isinstance(msg, Request)
    return msg


@pytest.mark.parametrize(
    ("via", "source", "expected"),
    [
        ("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1", ("192.0.2.1", 5060), None),
        ("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1", ("198.51.100.7", 5060),
         "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;received=198.51.100.7"),
        ("SIP/2.0/UDP pc.example.com;branch=z9hG4bK1", ("192.0.2.9", 5060),
         "SIP/2.0/UDP pc.example.com;branch=z9hG4bK1;received=192.0.2.9"),
        ("SIP/2.0/UDP 10.0.0.2:5060;rport;branch=z9hG4bK1", ("203.0.113.4", 40000),
         "SIP/2.0/UDP 10.0.0.2:5060;rport=40000;branch=z9hG4bK1;received=203.0.113.4"),
        ("SIP/2.0/UDP 10.0.0.2:5060;rport=1;branch=z9hG4bK1", ("10.0.0.2", 5060), None),
        ("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1", ("2001:db8:0::1", 5060), None),
        ("SIP/2.0/UDP 192.0.2.1:5060;received=::1;branch=z9hG4bK1", ("192.0.2.1", 5060),
         "SIP/2.0/UDP 192.0.2.1:5060;received=192.0.2.1;branch=z9hG4bK1"),
        ("SIP/2.0/UDP 192.0.2.1:5060;received=192.0.2.1;branch=z9hG4bK1", ("192.0.2.1", 5060), None),
    ],
)
def test_stamp_received(via: str, source: tuple[str, int], expected: str | None) -> None:
    req = request(via)
    changed = stamp_received(req, *source)
    assert changed is (expected is not None)
    assert req.headers.get_all("Via")[0] == (expected or via)
    assert req.headers.get_all("Via")[1] == "SIP/2.0/UDP other;branch=z9hG4bK0"


@pytest.mark.parametrize(
    ("via", "transport", "peer"),
    [
        ("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", None, Peer("udp", "192.0.2.1", 5060)),
        ("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1;received=203.0.113.1", None, Peer("udp", "203.0.113.1", 5070)),
        ("SIP/2.0/UDP 10.0.0.1:5060;received=203.0.113.1;rport=4000;branch=z9hG4bK1", None,
         Peer("udp", "203.0.113.1", 4000)),
        ("SIP/2.0/UDP 10.0.0.1;maddr=239.1.1.1;ttl=1;branch=z9hG4bK1", None, Peer("udp", "239.1.1.1", 5060)),
        ("SIP/2.0/TLS example.com;branch=z9hG4bK1", None, Peer("tls", "example.com", 5061)),
        ("SIP/2.0/TCP example.com;maddr=1.2.3.4;branch=z9hG4bK1", None, Peer("tcp", "example.com", 5060)),
        ("SIP/2.0/UDP example.com;branch=z9hG4bK1", "tcp", Peer("tcp", "example.com", 5060)),
    ],
)
def test_response_destination(via: str, transport: str | None, peer: Peer) -> None:
    assert response_destination(parse_via(via), transport) == peer


def test_small_helpers() -> None:
    assert [default_port(t) for t in ("udp", "TCP", "tls", "ws", "wss")] == [5060, 5060, 5061, 80, 443]
    assert is_reliable("TCP") and not is_reliable("udp")
    assert Peer("udp", "::1", 5060).reliable is False and Peer("tls", "a", 1).reliable
    assert str(Peer("udp", "::1", 5060)) == "udp:[::1]:5060" and str(Peer("tcp", "h", 1)) == "tcp:h:1"
    assert must_use_congestion_controlled(1301, "udp") and not must_use_congestion_controlled(1300, "udp")
    assert not must_use_congestion_controlled(5000, "tcp")


BAD = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
    b"v: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2\r\n"
    b"From: <sip:a@example.com>;tag=9\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: abc\r\n"
    b"CSeq: x INVITE\r\n"
    b" continued\r\n"
    b"NoColonLine\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_rejection_copies_matching_headers() -> None:
    err = ParseError("malformed CSeq 'x INVITE'", header="CSeq")
    resp = rejection_for(BAD, err, "t1")
    assert isinstance(resp, Response) and resp.status == 400
    assert resp.reason == "Bad Request (malformed CSeq 'x INVITE')"
    assert resp.headers.get_all("Via") == ["SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2"]
    assert resp.headers.get("To") == "<sip:bob@example.com>;tag=t1"
    assert resp.headers.get("CSeq") == "x INVITE" and resp.headers.get("Content-Length") == "0"
    tagged = rejection_for(BAD.replace(b"<sip:bob@example.com>\r\n", b"<sip:bob@example.com>;tag=z\r\n"), err, "t1")
    assert tagged is not None and tagged.headers.get("To") == "<sip:bob@example.com>;tag=z"
    assert rejection_for(BAD, err, None).headers.get("To") == "<sip:bob@example.com>"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "data",
    [BAD.replace(b"INVITE sip", b"ACK sip"), b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", b"garbage\r\n\r\n",
     b"INVITE sip:a@b SIP/2.0\r\nFrom: x\r\n\r\n"],
)
def test_rejection_refuses_unanswerable(data: bytes) -> None:
    assert rejection_for(data, ParseError("x"), "t") is None


def test_reason_phrase_sanitised() -> None:
    from sipline.sip.errors import MessageTooLarge, VersionNotSupported

    assert reason_phrase_for(ParseError("bad\r\nline\x00")) == "Bad Request (bad??line?)"
    assert reason_phrase_for(MessageTooLarge("big")).startswith("Request Entity Too Large")
    assert reason_phrase_for(VersionNotSupported("")) == "Version Not Supported"
    assert reason_phrase_for(ParseError("x", status=499)) == "Bad Request (x)"
