"""Via, CSeq and numeric header parsing (fields.py), every branch."""

from __future__ import annotations

import pytest

from sipline.sip.errors import ParseError
from sipline.sip.message.fields import CSeq, Via, parse_cseq, parse_token_list, parse_uint, parse_via
from sipline.sip.message.params import Params


@pytest.mark.parametrize(
    ("text", "transport", "host", "port", "branch"),
    [
        ("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport", "UDP", "192.0.2.1", 5060, "z9hG4bK1"),
        ("SIP/2.0/tcp host.example.com", "TCP", "host.example.com", None, None),
        ("SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKx", "UDP", "2001:db8::1", 5070, "z9hG4bKx"),
        ("SIP / 2.0 / UDP  host.example.com : 5062 ; branch = z9hG4bKy", "UDP", "host.example.com", 5062, "z9hG4bKy"),
        ('SIP/2.0/UDP h.example.com;branch=z9hG4bKq;x="a b"', "UDP", "h.example.com", None, "z9hG4bKq"),
        ("sip/2.0/WSS abc.invalid;branch=z9hG4bKw", "WSS", "abc.invalid", None, "z9hG4bKw"),
        ("SIP/2.0/UDP  192.0.2.7 ;branch=z9hG4bKs", "UDP", "192.0.2.7", None, "z9hG4bKs"),
    ],
)
def test_parse_via_values(text: str, transport: str, host: str, port: int | None, branch: str | None) -> None:
    via = parse_via(text)
    assert (via.transport, via.host, via.port, via.branch) == (transport, host, port, branch)
    assert via.protocol == "SIP/2.0"


def test_via_properties_and_rendering() -> None:
    via = parse_via("SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKabc;received=192.0.2.9;rport=4000;maddr=224.0.0.1;ttl=16")
    assert via.received == "192.0.2.9" and via.rport == 4000 and via.has_rport
    assert via.maddr == "224.0.0.1" and via.ttl == 16 and via.is_rfc3261
    assert via.sent_by == "[2001:db8::1]:5070"
    assert str(via) == "SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKabc;received=192.0.2.9;rport=4000;maddr=224.0.0.1;ttl=16"
    bare = parse_via("SIP/2.0/UDP host.example.com;rport")
    assert bare.rport is None and bare.has_rport and bare.ttl is None and bare.maddr is None
    assert bare.branch is None and not bare.is_rfc3261 and bare.sent_by == "host.example.com"
    assert not parse_via("SIP/2.0/UDP h.example.com;branch=z9hG4bK").is_rfc3261
    assert not parse_via("SIP/2.0/UDP h.example.com;branch=abc").is_rfc3261
    updated = bare.with_param("rport", "5060")
    assert updated.rport == 5060 and bare.rport is None
    assert str(Via("TCP", "a.example.com", 5061, Params(), "SIP/2.0")) == "SIP/2.0/TCP a.example.com:5061"


def test_via_other_protocol_is_kept() -> None:
    via = parse_via("SIP/3.0/UDP host.example.com")
    assert via.protocol == "SIP/3.0"
    assert str(via) == "SIP/3.0/UDP host.example.com"


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("SIP/2.0/UDP", "malformed Via"),
        ("SIP/2.0 UDP host", "malformed Via"),
        ("SIP/2.0/UDP [1::2::3]", "bad IPv6 reference"),
        ("SIP/2.0/UDP 300.1.1.1", "bad IPv4 address"),
        ("SIP/2.0/UDP -bad-.example.com", "bad host"),
        ("SIP/2.0/UDP host.example.com:0", "out of range"),
        ("SIP/2.0/UDP host.example.com:70000", "out of range"),
        ("SIP/2.0/UDP host.example.com;branch", "branch parameter without a value"),
        ("SIP/2.0/UDP host.example.com;;", "Via: "),
        ("SIP/2.0/UDP host.example.com;branch=a b", "bad value for parameter"),
    ],
)
def test_parse_via_errors(text: str, fault: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_via(text)
    assert fault in info.value.reason and info.value.header == "Via" and info.value.status == 400


def test_cseq() -> None:
    cseq = parse_cseq("  0009 \r\n INVITE ")
    assert cseq == CSeq(9, "INVITE") and str(cseq) == "9 INVITE"
    assert parse_cseq("2147483647 ACK").seq == 2**31 - 1
    for bad, fault in [
        ("INVITE", "malformed CSeq"),
        ("1 2 INVITE", "malformed CSeq"),
        ("x INVITE", "malformed CSeq"),
        ("١ INVITE", "malformed CSeq"),
        ("2147483648 INVITE", "exceeds"),
        ("9" * 5000 + " INVITE", "exceeds"),
        ("1 INV/ITE", "not a token"),
    ]:
        with pytest.raises(ParseError, match=fault):
            parse_cseq(bad)


def test_parse_uint() -> None:
    assert parse_uint(" 70 ", "Max-Forwards", maximum=255) == 70
    assert parse_uint("7" * 19, "X") == int("7" * 19)
    assert parse_uint("9" * 30, "Expires", maximum=100, clamp=True) == 100
    assert parse_uint("101", "Expires", maximum=100, clamp=True) == 100
    for bad in ("", "-1", "1.5", "²", "0x10"):
        with pytest.raises(ParseError, match="not a number"):
            parse_uint(bad, "Max-Forwards")
    with pytest.raises(ParseError, match="Max-Forwards value 256 too large"):
        parse_uint("256", "Max-Forwards", maximum=255)
    with pytest.raises(ParseError, match="too large"):
        parse_uint("9" * 5000, "Content-Length")


def test_parse_token_list() -> None:
    assert parse_token_list(["100rel", "timer"], "Supported") == ("100rel", "timer")
    assert parse_token_list([], "Require") == ()
    with pytest.raises(ParseError, match="Require: 'a b' is not a token") as info:
        parse_token_list(["a b"], "Require")
    assert info.value.header == "Require"
