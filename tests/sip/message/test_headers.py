"""Headers: ordering, compact forms, list splitting, lossless edits."""

from __future__ import annotations

import pytest

from sipline.sip.errors import ParseError
from sipline.sip.message._scan import first_comma, quote, split_commas, split_params, unquote
from sipline.sip.message.headers import HeaderField, Headers, canonical_key
from sipline.sip.message.params import Params


@pytest.mark.parametrize(
    ("name", "key"),
    [("Via", "via"), ("v", "via"), ("V", "via"), ("i", "call-id"), ("CALL-ID", "call-id"), ("m", "contact"),
     ("l", "content-length"), ("c", "content-type"), ("f", "from"), ("t", "to"), ("k", "supported"),
     ("o", "event"), ("r", "refer-to"), ("b", "referred-by"), ("x", "session-expires"), ("y", "identity"),
     ("X-Custom", "x-custom")],
)
def test_canonical_key(name: str, key: str) -> None:
    assert canonical_key(name) == key


def make() -> Headers:
    return Headers.from_pairs(
        [("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"), ("v", "SIP/2.0/TCP c;branch=z9hG4bK3"),
         ("From", "<sip:a@x>;tag=1"), ("X-Foo", "1"), ("Route", "<sip:p1;lr>,<sip:p2;lr>")]
    )


def test_get_and_get_all() -> None:
    h = make()
    assert h.get("via") == "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"
    assert h.get_all("V") == ["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/UDP b;branch=z9hG4bK2", "SIP/2.0/TCP c;branch=z9hG4bK3"]
    assert h.get_fields("via")[1] == "SIP/2.0/TCP c;branch=z9hG4bK3"
    assert h.count("Via") == 2
    assert "x-foo" in h and "X-Bar" not in h and 3 not in h
    assert h.get("nope") is None and h.get("nope", "d") == "d"
    assert h.get_all("x-foo") == ["1"]
    assert len(h) == 5
    assert list(h)[3] == ("X-Foo", "1")


def test_prepend_inserts_before_first_same_name() -> None:
    h = make()
    h.prepend("Via", "SIP/2.0/UDP new;branch=z9hG4bK0")
    assert [n for n, _ in h] == ["Via", "Via", "v", "From", "X-Foo", "Route"]
    assert h.get_all("via")[0].endswith("z9hG4bK0")
    h.prepend("Record-Route", "<sip:me;lr>")
    assert list(h)[0] == ("Record-Route", "<sip:me;lr>")


def test_pop_first_keeps_rest_of_field_text() -> None:
    h = make()
    assert h.pop_first("via") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert h.get_fields("via") == ["SIP/2.0/UDP b;branch=z9hG4bK2", "SIP/2.0/TCP c;branch=z9hG4bK3"]
    assert h.pop_first("via") == "SIP/2.0/UDP b;branch=z9hG4bK2"
    assert h.pop_first("via") == "SIP/2.0/TCP c;branch=z9hG4bK3"
    assert h.pop_first("via") is None
    assert h.pop_first("Route") == "<sip:p1;lr>"
    assert h.get("route") == "<sip:p2;lr>"


def test_set_replaces_all_at_first_position_and_remove() -> None:
    h = make()
    h.set("Via", "SIP/2.0/UDP only;branch=z9hG4bKx")
    assert [n for n, _ in h] == ["Via", "From", "X-Foo", "Route"]
    h.set("New", "1")
    assert list(h)[-1] == ("New", "1")
    assert h.remove("x-foo") == 1 and h.remove("x-foo") == 0
    h.set_default("New", "2")
    h.set_default("Other", "3")
    assert h.get("new") == "1" and h.get("other") == "3"


def test_typed_cache_invalidated_on_change() -> None:
    h = make()
    calls = []

    def parse(headers: Headers) -> str:
        calls.append(1)
        return headers.get("x-foo") or ""

    assert h.typed("x-foo", parse) == "1"
    assert h.typed("x-foo", parse) == "1"
    assert len(calls) == 1
    h.set("X-Foo", "2")
    assert h.typed("x-foo", parse) == "2"
    assert len(calls) == 2


def test_copy_is_independent_and_eq() -> None:
    h = make()
    c = h.copy()
    assert c == h
    c.add("X-New", "y")
    assert "x-new" not in h and c != h
    assert (h == 3) is False
    assert "Headers(" in repr(h)


def test_field_line_raw_and_repr() -> None:
    f = HeaderField("Subject", "hi", raw="Subject :  hi")
    assert f.line() == "Subject :  hi"
    assert HeaderField("Subject", "hi").line() == "Subject: hi"
    assert f == HeaderField("subject", "hi") and (f == 1) is False
    assert "Subject" in repr(f)


@pytest.mark.parametrize(
    ("value", "parts"),
    [("a,b", ["a", "b"]), (' "x,y" <sip:a>, <sip:b,c> ', ['"x,y" <sip:a>', "<sip:b,c>"]),
     ('"a\\",b" <sip:x>', ['"a\\",b" <sip:x>']), ("a , b", ["a", "b"])],
)
def test_split_commas(value: str, parts: list[str]) -> None:
    assert split_commas(value) == parts


@pytest.mark.parametrize("value", ["a,,b", '"open', "<sip:x", ","])
def test_split_commas_errors(value: str) -> None:
    with pytest.raises(ParseError):
        split_commas(value)


def test_first_comma() -> None:
    assert first_comma("a,b") == 1
    assert first_comma('"a,b" <x>, c') == 9
    assert first_comma('"a,b" <x>') == -1


def test_params() -> None:
    p = Params.parse(";Branch=z9hG4bK1 ; rport;received=192.0.2.1;x=\"a;b\\\"c\"")
    assert p.get("branch") == "z9hG4bK1"
    assert p.get("RPORT") is None and "rport" in p
    assert p.get_unquoted("x") == 'a;b"c'
    assert p.get("missing", "d") == "d" and p.get_unquoted("missing") is None
    assert str(p.with_("rport", "5060")) == ';Branch=z9hG4bK1;rport=5060;received=192.0.2.1;x="a;b\\"c"'
    assert str(p.without("x").without("received")) == ";Branch=z9hG4bK1;rport"
    assert p.without("nope") is p
    assert p.with_("new", None).names()[-1] == "new"
    assert len(p) == 4 and bool(p) and not Params() and list(Params())== []
    assert Params.parse("") == Params() and 5 not in p


@pytest.mark.parametrize("text", [";", ";=a", ";a=", ";a b=c", ";a=\"unterminated", ";a=b c", ";a=\""])
def test_params_errors(text: str) -> None:
    with pytest.raises(ParseError):
        split_params(text)


def test_quote_roundtrip() -> None:
    for text in ["plain", 'with "quotes"', "back\\slash", ""]:
        assert unquote(quote(text)) == text
    assert unquote("token") == "token"
    assert unquote('"a\\') == '"a\\'
