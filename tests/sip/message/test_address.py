"""Tests for sipline.sip.message.address: name-addr / addr-spec (RFC 3261 §20.10, §25.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipline.sip.errors import ParseError
from sipline.sip.message.address import NameAddr, parse_name_addr, parse_name_addr_list
from sipline.sip.message.params import Params
from sipline.sip.message.uri import AbsoluteURI, SipURI, TelURI, parse_uri

# Canonical spellings render back byte for byte.
ROUND_TRIP = [
    "sip:user@example.com",
    "sip:caller@example.net;tag=39291",
    "<sip:caller@host5.example.net>",
    "<sip:user@example.com>;tag=902jndnke3",
    '"Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423',
    "A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe",
    "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=_token~1'+`*%!-.",
    '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>',
    '"" <sip:anonymous@anonymous.invalid>;tag=1',
    "Caller <sip:caller@[2001:db8::1]>",
    "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
    "<sip:+19725552222@gw1.example.net;unknownparam>",
    "sip:+19725552222@gw1.example.net;unknownparam",
    "<sip:p1.example.com;lr>",
    "<sip:u@h>;expires=3600;q=0.7;+sip.instance=\"<urn:uuid:x>\"",
    "isbn:2983792873",
    "<http://www.example.com>;tag=3234233",
    "<name:John_Smith>",
    "<tel:+1-201-555-0123>",
    '"\u00c9milie \u00e0 la plage" <sip:emilie@example.fr>',
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip_is_byte_exact(text: str) -> None:
    assert str(parse_name_addr(text)) == text


@pytest.mark.parametrize(
    ("text", "display", "uri", "params"),
    [
        # RFC 4475 lwsdisp: LWS between display name and "<" is optional.
        ("caller<sip:caller@example.com>;tag=323", "caller", "sip:caller@example.com",
         ";tag=323"),
        # RFC 4475 wsinv: escaped quotes and backslashes, LWS around ";" and "=", folding.
        ('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>', 'J Rosenberg \\"',
         "sip:jdrosen@example.com", ""),
        ('"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;'
         "\r\n  secondparam ; q = 0.33", 'Quoted string ""', "sip:jdrosen@example.com",
         ";newparam=newvalue;secondparam;q=0.33"),
        # RFC 4475 intmeth: control characters as quoted-pairs.
        ('"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:u@example.com>', "BEL:\x07 NUL:\x00 DEL:\x7f",
         "sip:u@example.com", ""),
        # Display-name tokens separated by any LWS collapse to one space.
        ("  Alice \t  Smith   <sip:alice@example.com>  ;tag=a ", "Alice Smith",
         "sip:alice@example.com", ";tag=a"),
        # RFC 4475 esc02: "%Z%45" is just text in a display name.
        ('"%Z%45" <sip:resource@example.com>', "%Z%45", "sip:resource@example.com", ""),
        ('"tab\there"<sip:x@y>', "tab\there", "sip:x@y", ""),
        # addr-spec: the first ";" ends the URI; what follows are header parameters.
        ("sip:a@b;tag=1;lr", None, "sip:a@b", ";tag=1;lr"),
        ("sip:a@b ;tag=1", None, "sip:a@b", ";tag=1"),
        ("tel:+1234;tag=x", None, "tel:+1234", ";tag=x"),
        ("<sip:a@b;lr>;tag=1", None, "sip:a@b;lr", ";tag=1"),
        ("<sip:a@b>;x=\"a;b,c\"", None, "sip:a@b", ';x="a;b,c"'),
    ],
)
def test_parsed_parts(text: str, display: str | None, uri: str, params: str) -> None:
    addr = parse_name_addr(text)
    assert addr.display_name == display
    assert str(addr.uri) == uri
    assert str(addr.params) == params


def test_angle_flag_and_uri_types() -> None:
    assert parse_name_addr("sip:a@b").angle is False
    assert parse_name_addr("<sip:a@b>").angle is True
    assert isinstance(parse_name_addr("<sip:a@b>").uri, SipURI)
    assert isinstance(parse_name_addr("<tel:+1>").uri, TelURI)
    assert isinstance(parse_name_addr("<urn:x:y>").uri, AbsoluteURI)


INVALID = [
    ("", "empty address"),
    ("  \t ", "empty address"),
    # RFC 4475 baddn: unquoted display names with separators.
    ("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", "must be quoted"),
    ("Watson, Thomas <sip:t.watson@example.org>", "must be quoted"),
    ("Dr. Who (the) <sip:who@example.org>", "must be quoted"),
    # RFC 4475 quotbal: unterminated quoted display name.
    ('"Mr. J. User <sip:j.user@example.com>', "unbalanced quote in display name"),
    ('Mr "J <sip:j.user@example.com>', "unbalanced quote in display name"),
    ('"ends in backslash\\', "unbalanced quote in display name"),
    ('Mr "J" <sip:j.user@example.com>', "mixes tokens and a quoted string"),
    ('"bad pair \\\u00e9" <sip:a@b>', "bad quoted-pair"),
    ('"ctl \x01" <sip:a@b>', "control character in display name"),
    ('"no angle" sip:a@b', "must be followed by '<'"),
    ('"no uri"', "must be followed by '<'"),
    # RFC 4475 badaspec: spaces inside the angle brackets.
    ('"Watson, Thomas" < sip:t.watson@example.org >', "whitespace inside angle brackets"),
    ("<sip:a@b", "unterminated '<'"),
    ("<>", "empty URI"),
    ("<sip:a@b> junk", "after '>'"),
    ("<sip:a@b>;", "parameter"),
    ('"Joe" <sip:joe@example.org>;;;;', "parameter"),  # RFC 4475 badinv01
    ("<sip:a@b>;q=2", "bad q"),
    ("<sip:a@b>;q=0.1234", "bad q"),
    ("<sip:a@b>;expires=soon", "bad expires"),
    ("<sip:a@b>;expires=" + "9" * 30, "bad expires"),
    # addr-spec restrictions (§20).
    ("Alice sip:alice@example.com", "display name not allowed without angle brackets"),
    ("sip:a@b c", "whitespace in URI"),
    # RFC 4475 regbadct: headers in a URI without angle brackets.
    ("sip:user@example.com?Route=%3Csip:sip.example.com%3E",
     "headers ('?') must be in angle brackets"),
    ("sip:a,b@example.com", "',' must be in angle brackets"),
    ("sip:a@b>", "misplaced angle bracket"),
    ("sip:a@b<x>", "misplaced angle bracket"),
    ("alan@jasomi.com", "no scheme"),  # RFC 4475 test.dat
    ("<sip:a@b:99999>", "bad port"),
    ("sip:a@b\r\nc", "line break in address"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid_addresses(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_name_addr(text)
    assert reason in info.value.reason


def test_contact_parameters() -> None:
    addr = parse_name_addr("<sip:u@h>;Expires=3600;Q=0.5")
    assert addr.expires == 3600
    assert addr.q == 0.5
    bare = parse_name_addr("<sip:u@h>")
    assert bare.expires is None and bare.q is None and bare.tag is None
    # RFC 4475 scalar02: a huge expires is syntactically fine; clamping is registrar policy.
    big = parse_name_addr("<sip:user@host129.example.com>\r\n  ;expires=280297596632815")
    assert big.expires == 280297596632815
    assert parse_name_addr("<sip:u@h>;q=1.000").q == 1.0
    assert parse_name_addr("<sip:u@h>;q=0").q == 0.0


def test_builders() -> None:
    addr = parse_name_addr("Bob <sip:bob@biloxi.com>")
    tagged = addr.with_tag("a6c85cf")
    assert tagged.tag == "a6c85cf"
    assert str(tagged) == "Bob <sip:bob@biloxi.com>;tag=a6c85cf"
    assert str(tagged.with_tag("other")) == "Bob <sip:bob@biloxi.com>;tag=other"
    more = tagged.with_params([("+sip.instance", '"<urn:uuid:1>"')], expires="60", lr=None)
    assert str(more) == ('Bob <sip:bob@biloxi.com>;tag=a6c85cf;+sip.instance="<urn:uuid:1>"'
                         ";expires=60;lr")
    assert str(more.without_param("TAG").without_param("lr")) == (
        'Bob <sip:bob@biloxi.com>;+sip.instance="<urn:uuid:1>";expires=60')


@pytest.mark.parametrize(
    ("addr", "text"),
    [
        (NameAddr(parse_uri("sip:a@b"), angle=False), "sip:a@b"),
        (NameAddr(parse_uri("sip:a@b;lr"), angle=False), "<sip:a@b;lr>"),
        (NameAddr(parse_uri("sip:a@b?x=y"), angle=False), "<sip:a@b?x=y>"),
        (NameAddr(parse_uri("sip:a,b@c"), angle=False), "<sip:a,b@c>"),
        (NameAddr(parse_uri("sip:a@b"), "Al", angle=False), "Al <sip:a@b>"),
        (NameAddr(parse_uri("sip:a@b"), "Al  B"), '"Al  B" <sip:a@b>'),
        (NameAddr(parse_uri("sip:a@b"), 'say "hi"\\'), '"say \\"hi\\"\\\\" <sip:a@b>'),
        (NameAddr(parse_uri("sip:a@b"), params=Params((("tag", "1"),))), "<sip:a@b>;tag=1"),
    ],
)
def test_rendering_adds_brackets_and_quotes_when_needed(addr: NameAddr, text: str) -> None:
    assert str(addr) == text


def test_list_parsing() -> None:
    addrs = parse_name_addr_list(
        '"Bell, Alexander" <sip:a@example.com>;q=0.5, sip:b@example.com;expires=60 ,'
        "<sip:c@example.com;lr>"
    )
    assert [str(a.uri) for a in addrs] == [
        "sip:a@example.com", "sip:b@example.com", "sip:c@example.com;lr"]
    assert addrs[0].display_name == "Bell, Alexander"
    assert addrs[1].expires == 60
    with pytest.raises(ParseError):
        parse_name_addr_list("Bell, Alexander <sip:a@example.com>")  # RFC 4475 baddn
    with pytest.raises(ParseError):
        parse_name_addr_list("<sip:a@b>,,<sip:c@d>")


# --------------------------------------------------------------------------------------------
# Properties.
# --------------------------------------------------------------------------------------------
_display = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
    st.from_regex(r"[A-Za-z0-9.!%*_+`'~-]+( [A-Za-z0-9.!%*_+`'~-]+)*", fullmatch=True),
)
_uris = st.sampled_from([
    "sip:alice@atlanta.com", "sips:bob@[2001:db8::1]:5061;transport=tcp", "tel:+1-201-555-0123",
    "sip:u@h?subject=x%20y", "urn:service:sos", "sip:a,b;c@example.com",
])
_hparams = st.lists(
    st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,6}", fullmatch=True).filter(
                  lambda n: n.lower() not in ("q", "expires")),
              st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9.]{1,6}", fullmatch=True))),
    max_size=3,
).map(lambda items: Params(tuple(items)))


@given(_uris, _display, _hparams, st.booleans())
@settings(max_examples=300)
def test_render_then_parse_round_trips(uri: str, display: str | None, params: Params,
                                       angle: bool) -> None:
    addr = NameAddr(parse_uri(uri), display, params, angle)
    again = parse_name_addr(str(addr))
    assert again.display_name == display
    assert again.uri == addr.uri
    assert again.params == params
    assert str(again) == str(addr)


@given(st.text(max_size=60))
@settings(max_examples=500)
def test_arbitrary_text_raises_only_parse_error(text: str) -> None:
    try:
        parse_name_addr(text)
    except ParseError:
        pass


@given(st.text(alphabet='ab "\\<>;=,:@?\t\r\n%', max_size=40))
@settings(max_examples=1000)
def test_address_shaped_noise_raises_only_parse_error(body: str) -> None:
    for text in (body, "sip:" + body, '"' + body, "<sip:a@b>" + body):
        try:
            parse_name_addr_list(text)
        except ParseError:
            pass
