"""Parser and serialiser: byte-exact round trips, lazy typed access, strict errors."""

from __future__ import annotations

import pytest

from sipline.sip.errors import MessageTooLarge, ParseError, ProtocolError, VersionNotSupported
from sipline.sip.limits import Limits
from sipline.sip.message import Request, Response, parse_message
from sipline.sip.message.parser import safe_parse, validate

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: \"Alice A.\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"X-Weird-Header :   kept   as is  \r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)

OK200 = (
    b"SIP/2.0 200 OK\r\n"
    b"v: SIP/2.0/UDP server10.biloxi.example.com;branch=z9hG4bK4b43c2ff8.1,\r\n"
    b"  SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    b"t: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"i: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"m: <sip:bob@192.0.2.4>\r\n"
    b"l: 0\r\n"
    b"\r\n"
)


def test_invite_roundtrip_and_typed_access() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    assert bytes(msg) == INVITE
    assert msg.method == "INVITE"
    assert msg.uri_text == "sip:bob@biloxi.example.com"
    assert msg.via.branch == "z9hG4bK776asdhds" and msg.via.has_rport and msg.via.rport is None
    assert msg.via.host == "pc33.atlanta.example.com" and msg.via.port == 5060 and msg.via.transport == "UDP"
    assert msg.max_forwards == 70
    assert msg.from_.tag == "1928301774" and msg.from_.display_name == "Alice A."
    assert msg.to.tag is None
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert (msg.cseq.seq, msg.cseq.method) == (314159, "INVITE")
    assert [str(r.uri) for r in msg.routes] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert msg.headers.get("x-weird-header") == "kept   as is"
    assert msg.body == b"v=0\n" and msg.content_length == 4 and msg.content_type == "application/sdp"
    assert msg.is_request and repr(msg).startswith("<Request INVITE")


def test_proxy_fast_path_edits_only_what_it_touches() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    msg.max_forwards = msg.max_forwards - 1  # type: ignore[operator]
    msg.headers.prepend("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1")
    out = bytes(msg)
    expected = INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 69").replace(
        b"Via: SIP/2.0/UDP pc33", b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\r\nVia: SIP/2.0/UDP pc33"
    )
    assert out == expected
    again = parse_message(out)
    assert [v.branch for v in again.vias] == ["z9hG4bKp1", "z9hG4bK776asdhds"]
    assert msg.via.branch == "z9hG4bKp1"


def test_response_compact_and_folded_roundtrip() -> None:
    msg = parse_message(OK200)
    assert isinstance(msg, Response)
    assert bytes(msg) == OK200
    assert (msg.status, msg.reason) == (200, "OK") and msg.is_success and not msg.is_provisional
    assert [v.host for v in msg.vias] == ["server10.biloxi.example.com", "pc33.atlanta.example.com"]
    assert msg.vias[1].received == "192.0.2.1"
    assert msg.to.tag == "a6c85cf"
    assert str(msg.contacts[0].uri) == "sip:bob@192.0.2.4"
    # A proxy removes its own Via: the remaining value keeps its folded text.
    assert msg.headers.pop_first("Via") is not None
    assert msg.via.host == "pc33.atlanta.example.com"
    assert b"\r\nv: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n" in bytes(msg)


def test_body_setter_updates_content_length() -> None:
    msg = parse_message(INVITE)
    msg.body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    assert msg.content_length == len(msg.body)
    assert parse_message(bytes(msg)).body == msg.body
    msg.set_body(b"x", "text/plain")
    assert msg.content_type == "text/plain"
    msg.set_body(b"", None)
    assert msg.content_type is None and msg.content_length == 0


def test_request_uri_change_rewrites_start_line() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    msg.uri = "sip:bob@192.0.2.4:5062"
    assert bytes(msg).startswith(b"INVITE sip:bob@192.0.2.4:5062 SIP/2.0\r\n")
    assert msg.uri.port == 5062  # type: ignore[union-attr]
    msg.uri = msg.uri  # URI object
    assert msg.uri_text == "sip:bob@192.0.2.4:5062"


def test_copy_is_independent() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    clone = msg.copy()
    clone.headers.prepend("Via", "SIP/2.0/UDP x;branch=z9hG4bKc")
    clone.uri = "sip:other@example.com"
    assert bytes(msg) == INVITE
    assert bytes(clone) != INVITE
    resp = parse_message(OK200)
    assert isinstance(resp, Response)
    rc = resp.copy()
    rc.status, rc.reason = 180, "Ringing"
    assert bytes(rc).startswith(b"SIP/2.0 180 Ringing\r\n") and bytes(resp) == OK200


def test_leading_crlf_and_bare_lf_tolerated() -> None:
    msg = parse_message(b"\r\n\r\n" + INVITE)
    assert msg.call_id.startswith("a84b")
    lf = INVITE.replace(b"\r\n", b"\n")
    assert parse_message(lf).cseq.seq == 314159


def test_datagram_extra_body_truncated_stream_refused() -> None:
    assert parse_message(INVITE + b"garbage").body == b"v=0\n"
    with pytest.raises(ParseError):
        parse_message(INVITE + b"garbage", datagram=False)


@pytest.mark.parametrize(
    ("data", "exc", "fragment"),
    [
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: 40"), ParseError, "Content-Length 40"),
        (INVITE.replace(b"SIP/2.0\r\nVia", b"SIP/7.0\r\nVia"), VersionNotSupported, "SIP/7.0"),
        (INVITE.replace(b"SIP/2.0\r\nVia", b"SIP/x\r\nVia"), ParseError, "bad SIP version"),
        (INVITE.replace(b"INVITE sip", b"INVITE  sip"), ParseError, "single spaces"),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"), ParseError, "does not match"),
        (INVITE.replace(b"CSeq: 314159", b"CSeq: 99999999999"), ParseError, "2**31"),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: x"), ParseError, "Max-Forwards"),
        (INVITE.replace(b"Call-ID: a84b", b"Call-ID: a84 b"), ParseError, "Call-ID"),
        (INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards 70\r\n"), ParseError, "colon"),
        (INVITE.replace(b"Max-Forwards: 70\r\n", b"Max Forwards: 70\r\n"), ParseError, "header name"),
        (INVITE.replace(b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b""), ParseError, "missing Call-ID"),
        (INVITE.replace(b"INVITE sip:bob", b"INV@TE sip:bob"), ParseError, "method"),
        (INVITE.replace(b"sip:bob@biloxi.example.com SIP", b"bob SIP"), ParseError, "Request-URI"),
        (INVITE.replace(b"\r\n\r\n", b"\r\n"), ParseError, "empty line"),
        (b"\r\n\r\n", ParseError, "empty message"),
        (b" INVITE x\r\n\r\n", ParseError, "request line"),
        (OK200.replace(b"200 OK", b"2000 OK"), ParseError, "status code"),
        (OK200.replace(b"SIP/2.0 200", b"SIP/3.0 200"), VersionNotSupported, "SIP/3.0"),
        (OK200.replace(b"SIP/2.0 200", b"SIP/2.x 200"), ParseError, "status line"),
        (b"SIP/2.0\r\nVia: x\r\n\r\n", ParseError, "status line"),
        (OK200.replace(b"v: SIP", b" v: SIP"), ParseError, "continuation"),
        (INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nMax-Forwards: 69\r\n"), ParseError, "more than one"),
        (INVITE.replace(b"To: Bob", b"To: Bob\r\nTo: <sip:x@y>\r\nX-A: Bob"), ParseError, "more than one To"),
    ],
)
def test_errors_name_the_fault(data: bytes, exc: type[ProtocolError], fragment: str) -> None:
    with pytest.raises(exc) as info:
        parse_message(data)
    assert fragment in info.value.reason
    assert isinstance(safe_parse(data), ProtocolError)


def test_limits() -> None:
    with pytest.raises(MessageTooLarge):
        parse_message(INVITE, Limits(max_message_size=100))
    with pytest.raises(MessageTooLarge):
        parse_message(INVITE, Limits(max_header_size=100))
    with pytest.raises(MessageTooLarge):
        parse_message(INVITE, Limits(max_headers=5))
    with pytest.raises(MessageTooLarge):
        parse_message(INVITE, Limits(max_body_size=2))
    many = INVITE.replace(b"Max-Forwards", b"Via: SIP/2.0/UDP h;branch=z9hG4bKa, SIP/2.0/UDP h;branch=z9hG4bKb\r\nMax-Forwards")
    with pytest.raises(MessageTooLarge):
        parse_message(many, Limits(max_vias=2))
    assert len(parse_message(many, Limits(max_vias=3)).vias) == 3


def test_header_text_and_validate_without_body() -> None:
    msg = parse_message(INVITE, validate=False)
    validate(msg)
    assert msg.header_text().startswith("INVITE ") and "v=0" not in msg.header_text()
    r = parse_message(OK200)
    assert r.header_text().endswith("\r\n\r\n")
    assert repr(r) == "<Response 200 OK>"


def test_non_utf8_bytes_preserved() -> None:
    data = INVITE.replace(b"kept   as is", b"caf\xe9 \xff")
    msg = parse_message(data)
    assert bytes(msg) == data


def test_new_messages_render_canonically() -> None:
    r = Response(486, "Busy Here")
    r.headers.add("Via", "SIP/2.0/UDP a;branch=z9hG4bK1")
    r.body = b""
    assert bytes(r) == b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n"
    q = Request("OPTIONS", "sip:x@example.com")
    assert bytes(q) == b"OPTIONS sip:x@example.com SIP/2.0\r\n\r\n"
    assert q.max_forwards is None and q.expires is None and q.content_length is None and q.content_type is None
    with pytest.raises(ParseError, match="missing Via"):
        q.via
