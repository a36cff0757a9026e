"""Tests for sipline.sip.message.uri: parsing, rendering and RFC 3261 §19.1.4 comparison."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipline.sip.errors import ParseError, UsageError
from sipline.sip.message.params import Params
from sipline.sip.message.uri import (
    AbsoluteURI,
    SipURI,
    TelURI,
    escape_user,
    parse_uri,
)

# --------------------------------------------------------------------------------------------
# Byte-exact round trips: every canonical URI renders exactly as written.
# --------------------------------------------------------------------------------------------
ROUND_TRIP = [
    "sip:alice@atlanta.com",
    "sips:alice@atlanta.com:5061;transport=tcp",
    "sip:alice:secretword@atlanta.com;transport=tcp",
    "sip:+1-212-555-1212:1234@gateway.com;user=phone",
    "sip:alice@192.0.2.4",
    "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
    "sip:alice;day=tuesday@atlanta.com",
    "sip:user@[2001:db8::10]:5070;lr",
    "sip:[2001:db8::10]",
    "sip:[2001:db8::10:5070]",  # RFC 5118 §4.9: legal, the port is part of the address
    "sip:user@[2001:db8:::192.0.2.1]",  # RFC 5118 §4.10: 3-colon form tolerated
    "sip:user@[2001:db8::192.0.2.1]",
    "sip:ted@[::ffff:192.0.2.2]",
    "sip:sips%3Auser%40example.com@example.net",  # RFC 4475 esc01
    "sip:%75se%72@example.com",
    "sip:I%20have%20spaces@example.net",
    "sip:null-%00-null@example.com",  # RFC 4475 escnull
    "sip:user;par=u%40example.net@example.com",  # RFC 4475 semiuri
    "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com",  # RFC 4475 intmeth
    "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # RFC 4475 regescrt
    "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
    "sip:p1.example.com;lr;maddr=192.0.2.1;ttl=15",
    "sip:host.example.com.;x=[::1]/a:b&c+d$",
    "sip:u@h;maddr=[2001:db8::1]",
    "sip:u:@h",  # empty password is legal
    "sip:h?empty=",
    "tel:+1-201-555-0123",
    "tel:7042;phone-context=example.com",
    "tel:863-1234;phone-context=+1-914-555",
    "tel:+1-201-555-0123;ext=1234;isub=%41",
    "nobodyKnowsThisScheme:totallyopaquecontent",  # RFC 4475 unkscm
    "soap.beep://192.0.2.103:3002",  # RFC 4475 novelsc
    "http://www.example.com",
    "isbn:2983792873",
    "name:John_Smith",
    "urn:service:sos",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip_is_byte_exact(text: str) -> None:
    assert str(parse_uri(text)) == text


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("sip:alice@atlanta.com",
         dict(scheme="sip", user="alice", password=None, host="atlanta.com", port=None)),
        ("SIP:ALICE@AtLanTa.CoM:5060",
         dict(scheme="sip", user="ALICE", host="AtLanTa.CoM", port=5060)),
        ("sips:bob:pw@[2001:DB8::1]:0",
         dict(scheme="sips", user="bob", password="pw", host="2001:DB8::1", port=0)),
        ("sip:host:05060", dict(user=None, host="host", port=5060)),
        ("sip:host:" + "0" * 5000 + "1", dict(port=1)),  # 1*DIGIT: leading zeros are legal
        ("sip:a@h?x=1&y=%20", dict(headers=(("x", "1"), ("y", "%20")))),
        ("sip:a@h;lr;Transport=TLS", dict(params=Params((("lr", None), ("Transport", "TLS"))))),
    ],
)
def test_parsed_fields(text: str, fields: dict[str, object]) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    for name, value in fields.items():
        assert getattr(uri, name) == value


def test_properties() -> None:
    uri = parse_uri("sips:%61lice@[::1]:5061;transport=TCP;lr;maddr=239.255.255.1;ttl=15;"
                    "method=INVITE;user=phone")
    assert isinstance(uri, SipURI)
    assert uri.transport == "tcp"
    assert uri.lr
    assert uri.maddr == "239.255.255.1"
    assert uri.ttl == 15
    assert uri.method == "INVITE"
    assert uri.user_param == "phone"
    assert uri.is_ipv6 and uri.is_ip_host
    assert uri.host_port == "[::1]:5061"
    assert uri.secure
    assert uri.user_unescaped == "alice"
    plain = parse_uri("sip:example.com")
    assert isinstance(plain, SipURI)
    assert plain.transport is None and not plain.lr and plain.maddr is None
    assert plain.ttl is None and plain.method is None and plain.user_param is None
    assert not plain.is_ip_host and not plain.is_ipv6 and not plain.secure
    assert plain.host_port == "example.com"
    assert plain.user_unescaped is None
    v4 = parse_uri("sip:192.0.2.1:5060")
    assert isinstance(v4, SipURI) and v4.is_ip_host and v4.host_port == "192.0.2.1:5060"


def test_replace_and_rendering_escapes_only_what_is_needed() -> None:
    uri = parse_uri("sip:alice@atlanta.com")
    assert isinstance(uri, SipURI)
    assert str(uri.replace(port=5070)) == "sip:alice@atlanta.com:5070"
    # Unescaped text put in by hand is escaped on output; valid escapes are kept as they are.
    odd = uri.replace(user="a b%41@", password="p w", headers=(("Sub ject", "x y"),),
                      params=Params((("k k", "v\u00e9"),)))
    assert str(odd) == "sip:a%20b%41%40:p%20w@atlanta.com;k%20k=v%C3%A9?Sub%20ject=x%20y"
    assert isinstance(parse_uri(str(odd)), SipURI)
    assert escape_user("50% off;now") == "50%25%20off;now"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(scheme="tel", user=None, password=None, host="h", port=None),
        dict(scheme="sip", user=None, password=None, host="", port=None),
        dict(scheme="sip", user=None, password=None, host="h", port=70000),
    ],
)
def test_constructor_invariants(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        SipURI(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Invalid URIs: each reason names the fault.
# --------------------------------------------------------------------------------------------
INVALID = [
    ("", "no scheme"),
    ("alan@jasomi.com", "no scheme"),
    ("<sip:user@example.com>", "invalid URI scheme"),  # RFC 4475 ltgtruri
    ("1sip:a@b", "invalid URI scheme"),
    ("sip:", "nothing after the scheme"),
    ("sip:2001:db8::10", "IPv6 address without brackets"),  # RFC 5118 §4.8 ipv6-bad
    ("sip:user@[2001:db8::9:255.255.255", "no closing ']'"),
    ("sip:user@[2001:db8::9:255.255.255]", "bad IPv6 reference"),
    ("sip:user@[2001:db8::1::2]", "bad IPv6 reference"),
    ("sip:user@[fe80::1%25eth0]", "bad IPv6 reference"),
    ("sip:user@[]", "bad IPv6 reference"),
    ("sip:user@[::1]x", "after host"),
    ("sip:user@[::1]:", "bad port"),
    ("sip:user@example.com:", "bad port"),
    ("sip:user@example.com:65536", "bad port"),
    ("sip:user@example.com:5o60", "bad port"),
    ("sip:user@example.com:" + "9" * 5000, "bad port"),
    ("sip:user@example.com:\u0665", "bad port"),
    ("sip:user@", "empty host"),
    ("sip:user@;lr", "empty host"),
    ("sip:@example.com", "empty user"),
    ("sip:a@256.1.1.1", "bad IPv4 address"),
    ("sip:a@1.2.3", "invalid host"),
    ("sip:a@-bad.example.com", "invalid host"),
    ("sip:a@host_name.example.com", "invalid host"),
    ("sip:a b@example.com", "invalid character ' ' in user part"),
    ("sip:a%4@example.com", "bad %-escape in user part"),
    ("sip:a:p@ss@example.com", "invalid host"),
    ("sip:a:p w@example.com", "invalid character ' ' in password"),
    ("sip:user@example.com; lr", "invalid character ' ' in parameter name"),
    ("sip:user@example.com;;lr", "empty URI parameter"),
    ("sip:user@example.com;", "empty URI parameter"),
    ("sip:user@example.com;transport=", "empty value"),
    ("sip:user@example.com;x=a\"b", "invalid character"),
    ("sip:user@example.com;ttl=256", "bad ttl"),
    ("sip:user@example.com;ttl=ab", "bad ttl"),
    ("sip:user@example.com;maddr=bad_host", "invalid host"),
    ("sip:user@example.com;maddr=[::1", "bad maddr"),
    ("sip:user@example.com;transport=a:b", "bad transport"),
    ("sip:user@example.com?", "bad URI header"),
    ("sip:user@example.com?novalue", "bad URI header"),
    ("sip:user@example.com?=x", "bad URI header"),
    ("sip:user@example.com?a=b&", "bad URI header"),
    ("sip:user@example.com?a=<b>", "invalid character '<' in header 'a'"),
    ("sip:user@example.com?a b=c", "invalid character ' ' in header name"),
    ("sip:user@example.com>", "invalid host"),
    ("tel:1234", "without phone-context"),
    ("tel:+", "bad telephone number"),
    ("tel:", "nothing after the scheme"),
    ("tel:+1;", "bad tel URI parameter"),
    ("tel:+1;a_b=c", "bad tel URI parameter"),
    ("tel:+1;ext=", "empty value"),
    ("tel:+1;ext=1 2", "invalid character ' '"),
    ("tel:12g4;phone-context=x", "bad telephone number"),
    ("foo:bar baz", "invalid character ' ' in body"),
    ("foo:%zz", "bad %-escape in body"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID, ids=[t[:50] for t, _ in INVALID])
def test_invalid_uris_raise_parse_error_naming_the_fault(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_uri(text)
    assert reason in info.value.reason
    assert info.value.status == 400


# --------------------------------------------------------------------------------------------
# RFC 3261 §19.1.4 comparison, with the RFC's own examples.
# --------------------------------------------------------------------------------------------
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=on;lr"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ("sip:user@example.com", "sip:%75se%72@example.com"),  # RFC 4475 esc01 To
    ("sip:alice:p%41ss@h", "sip:alice:pAss@h"),
    ("sip:a%3ab@h", "sip:a%3Ab@h"),  # escaped reserved characters: hex case is irrelevant
    ("sip:u@[2001:db8::1]", "sip:u@[2001:DB8:0::1]"),  # RFC 5954: IP literals by value
    ("sip:u@[2001:db8:::192.0.2.1]", "sip:u@[2001:db8::c000:201]"),
    ("sip:u@192.0.2.1", "sip:u@192.0.2.001"),
    ("sip:u@h;maddr=H.example.com", "sip:u@h;MADDR=h.EXAMPLE.com"),
]

NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com", "sip:atlanta.com"),
    ("sip:alice:a@atlanta.com", "sip:alice@atlanta.com"),
    ("sip:alice:a@atlanta.com", "sip:alice:b@atlanta.com"),
    ("sip:a%3Ab@h", "sip:a:b@h"),  # an escaped reserved character is data, not a delimiter
    ("sip:u@h;user=phone", "sip:u@h"),
    ("sip:u@h", "sip:u@h;ttl=1"),
    ("sip:u@h;method=INVITE", "sip:u@h"),
    ("sip:u@h", "sip:u@h;maddr=x.example.com"),
    ("sip:u@h;flag", "sip:u@h;flag=1"),
    ("sip:u@h?a=1", "sip:u@h?a=1&a=1"),
    ("sip:u@[::1]", "sip:u@h"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_equivalent_examples(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert isinstance(ua, SipURI)
    assert ua.equivalent(ub) and ub.equivalent(ua)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_not_equivalent_examples(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert isinstance(ua, SipURI)
    assert not ua.equivalent(ub) and not ub.equivalent(ua)


def test_equivalence_against_other_uri_kinds() -> None:
    sip = parse_uri("sip:+1234@example.com;user=phone")
    tel = parse_uri("tel:+1234")
    other = parse_uri("urn:x:+1234")
    assert not sip.equivalent(tel) and not sip.equivalent("sip:+1234@example.com")
    assert not tel.equivalent(sip) and not other.equivalent(sip)


def test_duplicate_parameters_first_one_counts() -> None:
    a = parse_uri("sip:u@h;x=1;x=2")
    assert a.equivalent(parse_uri("sip:u@h;x=1"))
    assert not a.equivalent(parse_uri("sip:u@h;x=2"))


# --------------------------------------------------------------------------------------------
# tel URIs (RFC 3966) and other schemes.
# --------------------------------------------------------------------------------------------
def test_tel_uri_fields() -> None:
    glob = parse_uri("TEL:+1-201-555-0123;ext=22")
    assert glob == TelURI("+1-201-555-0123", Params((("ext", "22"),)))
    assert glob.is_global and glob.phone_context is None
    assert str(glob) == "tel:+1-201-555-0123;ext=22"
    local = parse_uri("tel:*86#;phone-context=example.com")
    assert isinstance(local, TelURI)
    assert not local.is_global and local.phone_context == "example.com"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("tel:+1-201-555-0123", "tel:+12015550123", True),
        ("tel:+1(201)555.0123", "tel:+12015550123", True),
        ("tel:+1201;ext=1-2", "tel:+1201;EXT=12", True),
        ("tel:7042;phone-context=Example.COM", "tel:7042;phone-context=example.com", True),
        ("tel:7042;phone-context=+1-914", "tel:70-42;phone-context=+1914", True),
        ("tel:abc;phone-context=x.example", "tel:ABC;phone-context=x.example", True),
        ("tel:+1;isub=%41", "tel:+1;isub=A", True),
        ("tel:+1201", "tel:1201;phone-context=+1", False),
        ("tel:+1201", "tel:+1202", False),
        ("tel:+1201", "tel:+1201;ext=1", False),
        ("tel:+1201;ext=1", "tel:+1201;ext=2", False),
        ("tel:+1201;a", "tel:+1201;b", False),
    ],
)
def test_tel_equivalence(a: str, b: str, same: bool) -> None:
    assert parse_uri(a).equivalent(parse_uri(b)) is same
    assert parse_uri(b).equivalent(parse_uri(a)) is same


def test_absolute_uri() -> None:
    uri = parse_uri("nobodyKnowsThisScheme:totallyopaquecontent")
    assert uri == AbsoluteURI("nobodyKnowsThisScheme", "totallyopaquecontent")
    assert uri.equivalent(parse_uri("NOBODYKNOWSTHISSCHEME:totally%6Fpaquecontent"))
    assert not uri.equivalent(parse_uri("nobodyKnowsThisScheme:TotallyOpaqueContent"))
    assert not uri.equivalent(parse_uri("other:totallyopaquecontent"))


# --------------------------------------------------------------------------------------------
# Properties.
# --------------------------------------------------------------------------------------------
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_UNRESERVED = _ALNUM + "-_.!~*'()"
_escape_seq = st.sampled_from(["%20", "%41", "%3a", "%3B", "%00", "%C3%A9", "%25"])


def _uri_text(chars: str, min_size: int) -> st.SearchStrategy[str]:
    piece = st.one_of(st.text(alphabet=chars, min_size=1, max_size=4), _escape_seq)
    return st.lists(piece, min_size=min_size, max_size=5).map("".join)


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_top = st.from_regex(r"[A-Za-z]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", fullmatch=True)
_hostname = st.builds(lambda ls, t, dot: ".".join([*ls, t]) + dot,
                      st.lists(_label, max_size=3), _top, st.sampled_from(["", "."]))
_ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
_ipv6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
_hosts = st.one_of(_hostname, _ipv4, _ipv6)
_pname = _uri_text(_UNRESERVED + "[]/:&+$", 1).filter(
    lambda n: n.lower() not in {"ttl", "maddr", "transport", "method", "user"})
_params = st.lists(st.tuples(_pname, st.one_of(st.none(), _uri_text(_UNRESERVED + "[]/:&+$", 1))),
                   max_size=3).map(lambda items: Params(tuple(items)))
_headers = st.lists(st.tuples(_uri_text(_UNRESERVED + "[]/?:+$", 1),
                              _uri_text(_UNRESERVED + "[]/?:+$", 0)), max_size=3).map(tuple)

sip_uris = st.builds(
    SipURI,
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.one_of(st.none(), _uri_text(_UNRESERVED + "&=+$,;?/", 1)),
    password=st.none(),
    host=_hosts,
    port=st.one_of(st.none(), st.integers(0, 65535)),
    params=_params,
    headers=_headers,
).flatmap(lambda u: st.builds(
    lambda pw: u.replace(password=pw) if u.user is not None else u,
    st.one_of(st.none(), _uri_text(_UNRESERVED + "&=+$,", 0)),
))


@given(sip_uris)
@settings(max_examples=300)
def test_render_then_parse_gives_back_the_same_uri(uri: SipURI) -> None:
    text = str(uri)
    again = parse_uri(text)
    assert again == uri
    assert again.equivalent(uri) and uri.equivalent(again)
    assert str(again) == text


@given(st.text(max_size=60))
@settings(max_examples=500)
def test_arbitrary_text_raises_only_parse_error(text: str) -> None:
    try:
        uri = parse_uri(text)
    except ParseError:
        return
    assert str(parse_uri(str(uri))) == str(uri)


@given(st.sampled_from(["sip:", "sips:", "tel:", "SIP:", "x:"]),
       st.text(alphabet="ab0129:@;?=&[]%.<>\" ,+-#*fF", max_size=40))
@settings(max_examples=1500)
def test_uri_shaped_noise_raises_only_parse_error(prefix: str, body: str) -> None:
    try:
        uri = parse_uri(prefix + body)
    except ParseError:
        return
    again = parse_uri(str(uri))
    assert again.equivalent(uri)
