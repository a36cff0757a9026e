"""REFER usage (RFC 3515) and Replaces (RFC 3891)."""

from __future__ import annotations

import pytest

from sipline.sip.dialog import (
    SIPFRAG_TYPE,
    Dialog,
    DialogId,
    Replaces,
    find_replaced,
    notify_for,
    parse_notify,
    parse_refer,
    parse_replaces,
    parse_sipfrag,
    refer_headers,
    refer_target,
    sipfrag,
)
from sipline.sip.errors import ParseError
from sipline.sip.message import NameAddr, parse_name_addr, parse_uri
from sipline.sip.message.builders import make_request, response_to


def request(method: str, headers: list[tuple[str, str]], body: bytes = b"", ctype: str | None = None):  # type: ignore[no-untyped-def]
    return make_request(method, "sip:bob@10.0.0.2", from_="<sip:a@x>;tag=1", to="<sip:b@x>;tag=2",
                        call_id="c", cseq=3, via="SIP/2.0/UDP h;branch=z9hG4bKr", headers=headers,
                        body=body, content_type=ctype)


def test_replaces_round_trip_and_matching() -> None:
    r = parse_replaces("abc@h ; to-tag = t1 ;from-tag=f1;early-only")
    assert r == Replaces("abc@h", "t1", "f1", True)
    assert str(r) == "abc@h;to-tag=t1;from-tag=f1;early-only"
    assert str(Replaces("a", "b", "c")) == "a;to-tag=b;from-tag=c"
    assert r.matches(DialogId("abc@h", "t1", "f1"))
    assert not r.matches(DialogId("abc@h", "f1", "t1"))
    # Built from the transferor's dialog with the target: tags swap sides.
    assert Replaces.for_dialog(DialogId("c", "mine", "theirs")) == Replaces("c", "theirs", "mine")


@pytest.mark.parametrize("value", ["", "a b;to-tag=1;from-tag=2", "a;to-tag=1", "a;from-tag=2", "a;to-tag;from-tag=2"])
def test_bad_replaces(value: str) -> None:
    with pytest.raises(ParseError):
        parse_replaces(value)


def test_blind_refer_headers_and_parse() -> None:
    by = parse_name_addr("<sip:alice@example.com>")
    headers = refer_headers("sip:carol@example.com", referred_by=by)
    assert headers == [("Refer-To", "<sip:carol@example.com>"), ("Referred-By", "<sip:alice@example.com>")]
    parsed = parse_refer(request("REFER", headers))
    assert str(parsed.target) == "sip:carol@example.com"
    assert parsed.replaces is None and parsed.referred_by == by


def test_attended_refer_embeds_replaces() -> None:
    rep = Replaces("call@h", "tt", "ff")
    headers = refer_headers(parse_uri("sip:carol@example.com"), replaces=rep)
    value = headers[0][1]
    assert value == "<sip:carol@example.com?Replaces=call%40h%3Bto-tag%3Dtt%3Bfrom-tag%3Dff>"
    parsed = parse_refer(request("REFER", headers))
    assert parsed.replaces == rep
    assert str(parsed.target) == "sip:carol@example.com"
    # An existing Replaces is overwritten, other URI headers kept.
    na = refer_target("sip:carol@example.com?X=1&Replaces=old", rep)
    assert str(na).startswith("<sip:carol@example.com?X=1&Replaces=call")
    with pytest.raises(ParseError):
        refer_target("tel:+1234", rep)
    assert str(refer_target("tel:+1234")) == "<tel:+1234>"


def test_refer_uri_headers_without_replaces() -> None:
    parsed = parse_refer(request("REFER", [("Refer-To", "<sip:c@x?Subject=hi>")]))
    assert parsed.replaces is None and str(parsed.target) == "sip:c@x"


def test_refer_needs_one_refer_to() -> None:
    with pytest.raises(ParseError):
        parse_refer(request("REFER", []))
    with pytest.raises(ParseError):
        parse_refer(request("REFER", [("Refer-To", "<sip:a@x>"), ("Refer-To", "<sip:b@x>")]))


def test_sipfrag() -> None:
    assert sipfrag(100) == b"SIP/2.0 100 Trying\r\n"
    assert sipfrag(200) == b"SIP/2.0 200 OK\r\n"
    assert sipfrag(503, "Nope") == b"SIP/2.0 503 Nope\r\n"
    assert parse_sipfrag(b"SIP/2.0 180 Ringing\r\nContact: x\r\n") == (180, "Ringing")
    assert parse_sipfrag(b"SIP/2.0 200") == (200, "")
    with pytest.raises(ParseError):
        parse_sipfrag(b"hello")


def test_notify_progress() -> None:
    headers, body, ctype = notify_for(100)
    assert headers == [("Event", "refer"), ("Subscription-State", "active;expires=60")]
    assert body == b"SIP/2.0 100 Trying\r\n" and ctype == SIPFRAG_TYPE
    headers, body, _ = notify_for(200, event_id=7, reason="OK")
    assert headers == [("Event", "refer;id=7"), ("Subscription-State", "terminated;reason=noresource")]
    progress = parse_notify(request("NOTIFY", headers, body, ctype))
    assert progress.status == 200 and progress.terminated and progress.succeeded
    h, b, c = notify_for(180)
    early = parse_notify(request("NOTIFY", h, b, c))
    assert not early.terminated and not early.succeeded
    with pytest.raises(ParseError) as err:
        parse_notify(request("NOTIFY", [("Event", "presence")], b"SIP/2.0 200 OK"))
    assert err.value.status == 489


def test_find_replaced() -> None:
    inv = make_request("INVITE", "sip:bob@x", from_="<sip:a@x>;tag=a1", to="<sip:b@x>",
                       call_id="c1", cseq=1, via="SIP/2.0/UDP h;branch=z9hG4bK1", contact="<sip:a@h>")
    resp = response_to(inv, 200, to_tag="b1")
    resp.headers.add("Contact", "<sip:b@h>")
    uas = Dialog.uas(inv, resp)  # our local tag b1, remote a1
    rep = Replaces("c1", "b1", "a1")
    assert find_replaced(rep, [uas]) is uas
    assert find_replaced(Replaces("c1", "a1", "b1"), [uas]) is None
    uas.terminate()
    assert find_replaced(rep, [uas]) is None
    assert isinstance(NameAddr(parse_uri("sip:x@y")), NameAddr)
