"""Header policy between legs, identity rebuilding, SDP scrubbing and limit rejections."""

from __future__ import annotations

import pytest

from sipline.sip.b2bua.topology import (
    ANONYMOUS,
    DEFAULT_RELAYED,
    NEVER_RELAYED,
    HeaderPolicy,
    caller_identity,
    limit_rejection,
    number_of,
    privacy_requested,
    relay_headers,
    relay_status,
    rewrite_diversion,
    scrub_sdp,
)
from sipline.sip.errors import UsageError
from sipline.sip.message import parse_message, parse_name_addr

INVITE = (
    b"INVITE sip:+4930123@sbc.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKpbx1\r\n"
    b"Record-Route: <sip:10.0.0.1;lr>\r\n"
    b"Route: <sip:sbc.example.net;lr>\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: \"Alice\" <sip:201@10.0.0.5>;tag=a1\r\n"
    b"To: <sip:+4930123@sbc.example.net>\r\n"
    b"Call-ID: secret-call-id@10.0.0.5\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:201@10.0.0.5:5060>\r\n"
    b"User-Agent: FancyPBX 1.2\r\n"
    b"X-Internal-Queue: sales\r\n"
    b"X-Account: 42\r\n"
    b"P-Asserted-Identity: <sip:+4930777@10.0.0.5>\r\n"
    b"Privacy: id\r\n"
    b"Subject: hello\r\n"
    b"Supported: 100rel, timer, replaces, norefersub\r\n"
    b"Allow: INVITE, ACK, BYE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_default_policy_relays_only_end_to_end_headers() -> None:
    msg = parse_message(INVITE)
    assert relay_headers(msg, HeaderPolicy()) == [
        ("Subject", "hello"),
        ("Supported", "norefersub"),
        ("Allow", "INVITE, ACK, BYE"),
    ]


def test_trunk_policy_strips_passes_and_adds() -> None:
    msg = parse_message(INVITE)
    policy = HeaderPolicy(strip=("subject",), passed=("X-Account",), add=(("X-Trunk", "pbx1"),))
    assert relay_headers(msg, policy) == [
        ("X-Account", "42"),
        ("Supported", "norefersub"),
        ("Allow", "INVITE, ACK, BYE"),
        ("X-Trunk", "pbx1"),
    ]
    only_hop = parse_message(INVITE.replace(b"100rel, timer, replaces, norefersub", b"100rel"))
    assert ("Supported", "") not in relay_headers(only_hop, HeaderPolicy())
    assert not DEFAULT_RELAYED & NEVER_RELAYED
    with pytest.raises(UsageError):
        HeaderPolicy(passed=("Record-Route",))
    assert HeaderPolicy.from_toml({"add": {"A": 1}}) == HeaderPolicy(add=(("A", "1"),))


@pytest.mark.parametrize(("status", "relayed"), [(302, 480), (401, 503), (407, 503), (486, 486), (200, 200)])
def test_relay_status(status: int, relayed: int) -> None:
    assert relay_status(status) == relayed


def test_identity_plain_and_anonymous() -> None:
    plain = caller_identity("+4930777", "Alice", domain="sbc.example.net", anonymous=False, send_pai=True)
    assert str(plain.from_) == "Alice <sip:+4930777@sbc.example.net>"
    assert plain.headers == (("P-Asserted-Identity", "<sip:+4930777@sbc.example.net>"),)
    hidden = caller_identity("+4930777", "Alice", domain="sbc.example.net", anonymous=True, send_pai=True)
    assert hidden.from_ == ANONYMOUS
    assert hidden.headers == (("P-Asserted-Identity", "<sip:+4930777@sbc.example.net>"), ("Privacy", "id"))
    none = caller_identity(None, None, domain="d", anonymous=False, send_pai=True)
    assert none.from_ == ANONYMOUS and none.headers == ()
    no_pai = caller_identity("+1", None, domain="d", anonymous=False, send_pai=False)
    assert no_pai.headers == () and str(no_pai.from_) == "<sip:+1@d>"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [(b"Privacy: id\r\n", True), (b"Privacy: user;id\r\n", True), (b"Privacy: none\r\n", False),
     (b"Privacy: header;none\r\n", False), (b"", False), (b"Privacy: session\r\n", False)],
)
def test_privacy_requested(headers: bytes, expected: bool) -> None:
    data = INVITE.replace(b"Privacy: id\r\n", headers)
    assert privacy_requested(parse_message(data)) is expected


def test_numbers_and_diversion() -> None:
    assert number_of(parse_name_addr("<tel:+4930123>")) == "+4930123"
    assert number_of(parse_name_addr("<sip:0301%32@h>")) == "03012"
    assert number_of(parse_name_addr("<sip:h>")) is None
    out = rewrite_diversion(
        ["<sip:0301234@10.0.0.5>;reason=unconditional;counter=1", "<sip:alice@10.0.0.5>", "<<bad"],
        lambda n: "+49301234" if n.startswith("0") else None,
        "sbc.example.net",
    )
    assert out == ["<sip:+49301234@sbc.example.net>;reason=unconditional;counter=1"]


SDP = (
    b"v=0\r\n"
    b"o=FancyPBX 1234 5 IN IP4 10.0.0.5\r\n"
    b"s=FancyPBX call\r\n"
    b"c=IN IP4 10.0.0.5\r\n"
    b"t=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)


def test_scrub_sdp_rewrites_origin_and_name_only() -> None:
    out = scrub_sdp(SDP, "192.0.2.1")
    assert b"o=- 1234 5 IN IP4 192.0.2.1\r\n" in out
    assert b"s=-\r\n" in out and b"FancyPBX" not in out
    assert b"m=audio 4000 RTP/AVP 0" in out
    assert b"IP6 2001:db8::1" in scrub_sdp(SDP, "2001:db8::1")
    assert scrub_sdp(b"not sdp", "192.0.2.1") == b"not sdp"


def test_limit_rejection() -> None:
    status, phrase, headers = limit_rejection("channel", "pbx1", 0)
    assert (status, phrase) == (503, "Service Unavailable")
    assert headers == (("Retry-After", "1"), ("Reason", 'SIP;cause=503;text="channel limit reached on trunk pbx1"'))
