"""The parser's fast paths build exactly what the general grammar builds, and reject the same.

``parse_uri`` takes a regex fast path for plain sip/sips URIs and builds the ``SipURI``
without the dataclass ``__init__``; ``fast_name_addr`` does the same for ``NameAddr``; the
header splitter has a C-level path.  Each test pins one shortcut against the slow route.
"""

from __future__ import annotations

import dataclasses

import pytest

from sipline.sip.errors import ParseError
from sipline.sip.message import parse_message
from sipline.sip.message.address import NameAddr, parse_name_addr
from sipline.sip.message.fields import Via, parse_via
from sipline.sip.message.model import fast_name_addr
from sipline.sip.message.params import Params
from sipline.sip.message.uri import SipURI, _check_host, _parse_sip, parse_uri


@pytest.mark.parametrize("text", [
    "sip:alice@example.com",
    "sip:192.0.2.1;lr",
    "sips:bob@203.0.113.20:5061;transport=tcp;lr",
    "sip:edge.example.net;lr;transport=udp",
    "sip:001.02.3.4",
    "sip:ex.com.",
    "sip:0.0.0.255:00080",
    "sip:h.example.com;TTL=25;maddr=192.0.2.9;user=phone;method=INVITE",
])
def test_fast_uri_equals_general_parser_and_constructor(text: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    general = _parse_sip(text[: text.index(":")], text[text.index(":") + 1:], text)
    built = SipURI(uri.scheme, uri.user, uri.password, uri.host, uri.port, uri.params, uri.headers)
    assert uri == general == built
    assert hash(uri) == hash(general) == hash(built)
    assert repr(uri) == repr(built)
    with pytest.raises(dataclasses.FrozenInstanceError):
        uri.host = "x"  # type: ignore[misc]


@pytest.mark.parametrize("host", [
    "256.1.1.1", "300.2.2.2", "1.2.3", "1.2.3.4.5", "a-.b", "-a.com", "9a.9", "a..b",
])
def test_fast_host_rejects_what_check_host_rejects(host: str) -> None:
    with pytest.raises(ParseError) as slow:
        _check_host(host, f"sip:{host}")
    with pytest.raises(ParseError) as fast:
        parse_uri(f"sip:{host}")
    assert fast.value.reason == slow.value.reason


@pytest.mark.parametrize("host", ["199.249.250.251", "255.255.255.255", "a.b-c.d", "x", "9a.com"])
def test_fast_host_accepts_what_check_host_accepts(host: str) -> None:
    _check_host(host, f"sip:{host}")
    assert parse_uri(f"sip:{host}").host == host  # type: ignore[union-attr]


@pytest.mark.parametrize("text, reason", [
    ("sip:a@b.com:65536", "bad port"),
    ("sip:a@b.com:99999", "bad port"),
    ("sip:h.com;ttl=300", "bad ttl"),
    ("sip:h.com;TTL=999", "bad ttl"),
    ("sip:h.com;maddr=a..b", "invalid host"),
    ("sip:h.com;lr;maddr=1.2.3", "invalid host"),
])
def test_fast_uri_still_checks_port_and_known_params(text: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_uri(text)


def test_fast_uri_keeps_parameter_spelling_and_order() -> None:
    uri = parse_uri("sip:h.com;transport=UDP;lr;X=1")
    assert isinstance(uri, SipURI)
    assert uri.params == Params((("transport", "UDP"), ("lr", None), ("X", "1")))
    assert uri.transport == "udp" and uri.lr


@pytest.mark.parametrize("value", [
    '"Alice" <sip:alice@example.com>;tag=1928301774',
    "Bob <sip:bob@example.net>",
    "<sip:192.0.2.1;lr>",
    "<sip:alice@198.51.100.7:5062;transport=udp>;q=0.5;expires=60",
    "<sip:a@b.com>;Q=1;EXPIRES=3600",
])
def test_fast_name_addr_equals_general_parser(value: str) -> None:
    fast = fast_name_addr(value)
    slow = parse_name_addr(value)
    built = NameAddr(slow.uri, slow.display_name, slow.params, slow.angle)
    assert fast == slow == built
    assert hash(fast) == hash(slow) == hash(built)
    assert str(fast) == str(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.display_name = "x"  # type: ignore[misc]


@pytest.mark.parametrize("value", [
    "<sip:a@b.com>;Q=2",
    "<sip:a@b.com>;q=0.5;EXPIRES=x",
    "<sip:a@b.com>;tag=1;expires=-1",
])
def test_fast_name_addr_still_validates_q_and_expires(value: str) -> None:
    with pytest.raises(ParseError):
        fast_name_addr(value)


def test_header_line_without_colon_is_named_by_the_slow_path() -> None:
    data = (
        b"OPTIONS sip:h.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"no colon here\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    with pytest.raises(ParseError, match="without a name and colon"):
        parse_message(data, validate=False)


@pytest.mark.parametrize("value", [
    "SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK.e2b71c0a.1;rport",
    "SIP/2.0/tcp pc33.example.com;received=192.0.2.1;branch=z9hG4bK776",
])
def test_fast_via_equals_constructed_via(value: str) -> None:
    via = parse_via(value)
    built = Via(via.transport, via.host, via.port, via.params, via.protocol)
    assert via == built and hash(via) == hash(built) and repr(via) == repr(built)
    assert str(via) == str(built)
    with pytest.raises(dataclasses.FrozenInstanceError):
        via.host = "x"  # type: ignore[misc]
