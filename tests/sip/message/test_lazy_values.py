"""Values kept as text until read (``_lazy``) behave exactly like the parsed dataclasses.

When a header matches its accept expression, the parser builds the ``Via`` or ``NameAddr`` at
once but hands out lazy subclasses of ``SipURI`` and ``Params`` for the URI and the
parameters inside it.  These tests pin the two promises that makes:

- the accept expressions only take values the complete grammar accepts, and the lazy value
  equals what the complete grammar builds (checked over every Via/From/To/Route/Contact
  value of the wire fixtures, and over mutations of them);
- a lazy value is indistinguishable from the parsed one: equality both ways, hashing,
  repr, str, frozen fields, ``dataclasses.replace``, copy and pickle.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from pathlib import Path

import pytest

from sipline.sip.errors import ParseError
from sipline.sip.message import parse_message
from sipline.sip.message.address import ACCEPT_NAME_ADDR, NameAddr, parse_name_addr
from sipline.sip.message.fields import Via, parse_cseq, parse_via
from sipline.sip.message.model import fast_name_addr
from sipline.sip.message.params import Params, lazy_params
from sipline.sip.message.uri import SIP_URI_ACCEPT, SipURI, lazy_sip_uri, parse_uri

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sip"


def _values(*names: str) -> list[str]:
    """Every value of the named headers in the wire fixtures (raw, one per field)."""
    out: list[str] = []
    for path in sorted(FIXTURES.rglob("*.sip")):
        head = path.read_bytes().split(b"\r\n\r\n", 1)[0].decode("utf-8", "surrogateescape")
        for line in head.split("\r\n")[1:]:
            name, colon, value = line.partition(":")
            if colon and name.strip().lower() in names:
                out.append(value.strip(" \t"))
    return out


_ADDRESSES = sorted(set(_values("from", "f", "to", "t", "route", "record-route", "contact", "m")))
_VIAS = sorted(set(_values("via", "v")))


def _mutations(value: str) -> list[str]:
    """Small edits that move a value across the border of the accept expressions."""
    out = [value, value + ";", value + ";q=2", value + ";branch", value + ";expires=x", value + " ",
           value.replace("sip:", "SIP:"), value.replace(":5060", ":65536"), value.replace(":5060", ":0"),
           value.replace(">", ";ttl=300>"), value.replace(">", ";maddr=a..b>"), value.replace(".", ".."),
           value.replace("<", "< "), value.replace("branch=", "branch=;"), value.replace(";", ";;")]
    out += [value[:i] for i in range(1, len(value), max(1, len(value) // 12))]
    return out


def _outcome(parse, value: str) -> object:  # type: ignore[no-untyped-def]
    try:
        parsed = parse(value)
    except ParseError as exc:
        return ("error", exc.reason)
    return (repr(parsed), str(parsed), hash(parsed))


@pytest.mark.parametrize("value", _ADDRESSES)
def test_lazy_name_addr_equals_complete_parser(value: str) -> None:
    for text in _mutations(value):
        if "," in text:
            continue
        assert _outcome(fast_name_addr, text) == _outcome(parse_name_addr, text), text


@pytest.mark.parametrize("value", _VIAS)
def test_lazy_via_equals_complete_parser(value: str) -> None:
    for text in _mutations(value):
        if "," in text:
            continue
        assert _outcome(parse_via, text) == _outcome(_general_via, text), text


def _general_via(text: str) -> Via:
    """parse_via through the general grammar alone (both fast expressions disabled)."""
    from sipline.sip.message import fields

    class _NoMatch:
        @staticmethod
        def fullmatch(_: str) -> None:
            return None

    saved = fields._ACCEPT_VIA, fields._FAST_VIA_RE
    try:
        fields._ACCEPT_VIA = _NoMatch.fullmatch  # type: ignore[assignment]
        fields._FAST_VIA_RE = _NoMatch  # type: ignore[assignment]
        return fields.parse_via(text)
    finally:
        fields._ACCEPT_VIA, fields._FAST_VIA_RE = saved


def _lazy_via_count() -> int:
    count = 0
    for value in _VIAS:
        try:
            count += type(parse_via(value).params) is not Params
        except ParseError:
            pass
    return count


def test_fixtures_exercise_the_lazy_paths() -> None:
    lazy = [v for v in _ADDRESSES if ACCEPT_NAME_ADDR.fullmatch(v)]
    assert len(lazy) >= 10
    assert _lazy_via_count() >= 5


_FROM = '"Alice" <sip:alice@example.com:5060;transport=udp>;tag=1928301774;x'
_VIA = "SIP/2.0/UDP 198.51.100.7:5062;received=198.51.100.7;rport=5062;branch=z9hG4bK776"


def _lazies() -> list[tuple[object, object]]:
    """(lazy value, the same value from the complete parser) pairs, freshly made."""
    m = ACCEPT_NAME_ADDR.fullmatch(_FROM)
    assert m is not None
    return [
        (fast_name_addr(_FROM).uri, parse_name_addr(_FROM).uri),
        (parse_via(_VIA).params, _general_via(_VIA).params),
        (lazy_sip_uri("sip:alice@example.com:5060;lr"), parse_uri("sip:alice@example.com:5060;lr")),
        (lazy_params(";a=1;B;tag=x"), Params.parse(";a=1;B;tag=x")),
    ]


@pytest.mark.parametrize("index", range(4))
def test_lazy_value_is_indistinguishable(index: int) -> None:
    def fresh() -> tuple[object, object]:
        return _lazies()[index]

    lazy, real = fresh()
    assert type(lazy) is not type(real) and isinstance(lazy, type(real))
    assert lazy == real
    lazy, real = fresh()
    assert real == lazy and not (real != lazy)
    lazy, real = fresh()
    assert hash(lazy) == hash(real) and {lazy: 1}[real] == 1
    assert type(lazy) is type(real)  # parsed by now: the base class itself
    assert repr(fresh()[0]) == repr(real)
    assert str(fresh()[0]) == str(real)
    assert copy.copy(fresh()[0]) == real and copy.deepcopy(fresh()[0]) == real
    unpickled = pickle.loads(pickle.dumps(fresh()[0]))
    assert unpickled == real and type(unpickled) is type(real)
    field = dataclasses.fields(real)[0].name  # type: ignore[arg-type]
    replaced = dataclasses.replace(fresh()[0], **{field: getattr(real, field)})  # type: ignore[type-var]
    assert replaced == real and type(replaced) is type(real)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(fresh()[0], field, None)


def test_lazy_fields_read_without_loading_everything() -> None:
    addr = fast_name_addr(_FROM)
    assert addr.tag == "1928301774"
    assert isinstance(addr, NameAddr) and type(addr) is NameAddr
    uri = addr.uri
    assert isinstance(uri, SipURI) and type(uri) is not SipURI  # the URI waits for a read
    assert uri.port == 5060 and uri.transport == "udp" and type(uri) is SipURI
    assert addr.params.get("X", "d") is None and addr.params.get("y", "d") == "d"


@pytest.mark.parametrize("text, name, expected", [
    (";tag=1", "TAG", "1"),
    (";a=b;TAG=x;tag=y", "tag", "x"),
    (";tag;tag=3", "tag", None),
    (";tagx=1;tag=2", "tag", "2"),
    (";tagx=1", "tag", "absent"),
    (";rport;branch=z9", "rport", None),
])
def test_lazy_params_get_matches_params_get(text: str, name: str, expected: str | None) -> None:
    assert lazy_params(text).get(name, "absent") == expected == Params.parse(text).get(name, "absent")


@pytest.mark.parametrize("text", ["sip:a@b.com:65536", "sip:1.2.3.256", "sip:h.com;ttl=300", "sip:h.com;maddr=a..b",
                                  "sip:h.com;transport=(x)", "SIP:a@b.com", "sip:a@-b.com"])
def test_uri_accept_leaves_doubtful_uris_to_parse_uri(text: str) -> None:
    import re

    assert re.fullmatch(SIP_URI_ACCEPT, text) is None


def test_cseq_fast_path_equals_general_parser() -> None:
    for text in ("314159 INVITE", "0001 ACK", "999999999 BYE"):
        fast = parse_cseq(text)
        general = parse_cseq(text.replace(" ", "  "))
        assert fast == general and hash(fast) == hash(general) and repr(fast) == repr(general)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse_cseq("1 INVITE").seq = 2  # type: ignore[misc]


def test_parsed_message_edits_after_lazy_reads() -> None:
    data = (b"INVITE sip:bob@example.net SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK.1\r\n"
            b"Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.net>\r\n"
            b"Call-ID: x@y\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    msg = parse_message(data)
    assert msg.via.branch == "z9hG4bK.1" and msg.to.tag is None
    msg.headers.prepend("Via", "SIP/2.0/TCP 192.0.2.9;branch=z9hG4bK.2")
    assert msg.via.branch == "z9hG4bK.2" and msg.via.transport == "TCP"
    msg.max_forwards = 69
    out = bytes(msg)
    assert out.startswith(b"INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.9;branch=z9hG4bK.2\r\n"
                          b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK.1\r\nMax-Forwards: 69\r\n")
    assert parse_message(out).max_forwards == 69


def test_lazy_class_attributes_are_the_dataclass_fields() -> None:
    from sipline.sip.message.params import _LazyParams

    assert _LazyParams.items is Params.__dict__["items"]
