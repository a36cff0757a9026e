"""Dialog state (RFC 3261 §12): creation on both sides, routing, CSeq rules, refresh."""

from __future__ import annotations

import pytest

from sipline.sip.dialog import Dialog, DialogId, DialogState, incoming_request_id, response_id
from sipline.sip.errors import ProtocolError, UsageError
from sipline.sip.message import NameAddr, Request, Response, parse_message, parse_uri
from sipline.sip.message.builders import make_request, response_to

VIA = "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnew"


def invite(*, record_route: tuple[str, ...] = (), uri: str = "sip:bob@example.com",
           transport: str = "UDP", contact: str | None = "<sip:alice@10.0.0.1:5060>") -> Request:
    headers = [("Record-Route", rr) for rr in record_route]
    return make_request(
        "INVITE", uri,
        from_="Alice <sip:alice@example.com>;tag=a1",
        to="<sip:bob@example.com>",
        call_id="c1@x",
        cseq=7,
        via=f"SIP/2.0/{transport} 10.0.0.1:5060;branch=z9hG4bK1",
        contact=contact,
        headers=headers,
    )


def answer(req: Request, status: int = 200, *, contact: str | None = "<sip:bob@10.0.0.2:5070>",
           tag: str = "b1") -> Response:
    resp = response_to(req, status, to_tag=tag)
    if contact is not None:
        resp.headers.add("Contact", contact)
    return resp


def incoming(method: str, cseq: int, *, contact: str | None = None, call_id: str = "c1@x",
             to_tag: str = "a1", from_tag: str = "b1") -> Request:
    """A request from Bob to Alice inside the dialog."""
    return make_request(
        method, "sip:alice@10.0.0.1:5060",
        from_=f"<sip:bob@example.com>;tag={from_tag}",
        to=f"<sip:alice@example.com>;tag={to_tag}",
        call_id=call_id, cseq=cseq, via="SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKx",
        contact=contact,
    )


def test_uac_dialog_from_2xx() -> None:
    req = invite(record_route=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    resp = answer(req)
    d = Dialog.uac(req, resp)
    assert d.id == DialogId("c1@x", "a1", "b1") == response_id(resp)
    assert str(d.id) == "c1@x;local=a1;remote=b1"
    assert d.state is DialogState.CONFIRMED and d.confirmed and not d.terminated
    assert [str(r.uri) for r in d.route_set] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert str(d.remote_target) == "sip:bob@10.0.0.2:5070"
    assert d.local_seq == 7 and d.remote_seq is None and d.is_uac and not d.secure
    assert str(d.local_contact) == "<sip:alice@10.0.0.1:5060>"
    assert "confirmed" in repr(d)


def test_uac_early_dialog_then_confirmed_recomputes_routes() -> None:
    req = invite()
    ringing = answer(req, 180, contact=None)
    ringing.headers.add("Record-Route", "<sip:early.example.com;lr>")
    d = Dialog.uac(req, ringing)
    assert d.state is DialogState.EARLY
    assert d.remote_target == req.uri  # no Contact in the 1xx: Request-URI stands in
    ok = answer(req)
    ok.headers.add("Record-Route", "<sip:p1.example.com;lr>")
    d.receive_response(ok)
    assert d.confirmed
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example.com;lr"]
    assert str(d.remote_target) == "sip:bob@10.0.0.2:5070"


def test_uac_rejects_non_dialog_responses() -> None:
    req = invite()
    with pytest.raises(UsageError):
        Dialog.uac(req, answer(req, 100))
    with pytest.raises(UsageError):
        Dialog.uac(req, answer(req, 486))
    with pytest.raises(ProtocolError):
        Dialog.uac(req, answer(req, 200, contact=None))


def test_secure_flag_needs_sips_over_tls() -> None:
    req = invite(uri="sips:bob@example.com", transport="TLS")
    assert Dialog.uac(req, answer(req)).secure
    req = invite(uri="sips:bob@example.com", transport="TCP")
    assert not Dialog.uac(req, answer(req)).secure
    req = invite(uri="sip:bob@example.com", transport="TLS")
    assert not Dialog.uac(req, answer(req)).secure


def test_secure_flag_without_via_is_false() -> None:
    req = invite(uri="sips:bob@example.com", transport="TLS")
    req.headers.remove("Via")
    resp = Response(200, "OK")
    for name in ("From", "Call-ID", "CSeq"):
        resp.headers.add(name, req.headers.get(name) or "")
    resp.headers.add("To", "<sip:bob@example.com>;tag=b1")
    resp.headers.add("Contact", "<sip:bob@h>")
    assert not Dialog.uac(req, resp).secure


def test_uas_dialog() -> None:
    req = invite(record_route=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    resp = answer(req, 200, contact="<sip:bob@10.0.0.2:5070>")
    d = Dialog.uas(req, resp)
    assert d.id == DialogId("c1@x", "b1", "a1")
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert str(d.remote_target) == "sip:alice@10.0.0.1:5060"
    assert d.remote_seq == 7 and d.local_seq is None and not d.is_uac
    assert d.local_uri.tag == "b1" and d.remote_uri.tag == "a1"
    assert str(d.local_contact) == "<sip:bob@10.0.0.2:5070>"
    early = Dialog.uas(req, answer(req, 183, contact=None))
    assert early.state is DialogState.EARLY and early.local_contact is None


def test_uas_dialog_errors() -> None:
    req = invite()
    with pytest.raises(UsageError):
        Dialog.uas(req, answer(req, 404))
    untagged = response_to(req, 200)
    with pytest.raises(UsageError):
        Dialog.uas(req, untagged)
    with pytest.raises(ProtocolError):
        Dialog.uas(invite(contact=None), answer(req))


def uas_dialog() -> Dialog:
    """Alice's side of a call Bob placed: a UAS dialog as built from our own view."""
    req = make_request(
        "INVITE", "sip:alice@10.0.0.1:5060",
        from_="<sip:bob@example.com>;tag=b1", to="<sip:alice@example.com>",
        call_id="c1@x", cseq=10, via="SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKi",
        contact="<sip:bob@10.0.0.2:5070>",
    )
    return Dialog.uas(req, answer(req, 200, tag="a1", contact="<sip:alice@10.0.0.1>"))


def test_remote_cseq_rules() -> None:
    d = uas_dialog()
    d.receive_request(incoming("INFO", 11))
    assert d.remote_seq == 11
    with pytest.raises(ProtocolError) as err:
        d.receive_request(incoming("INFO", 9))
    assert err.value.status == 500
    d.receive_request(incoming("ACK", 1))  # ACK/CANCEL carry an older CSeq: not checked
    d.receive_request(incoming("CANCEL", 1))
    assert d.remote_seq == 11
    with pytest.raises(ProtocolError) as err:
        d.receive_request(incoming("INFO", 12, from_tag="zz"))
    assert err.value.status == 481
    assert incoming_request_id(incoming("INFO", 1)) == d.id


def test_empty_remote_cseq_takes_first_value() -> None:
    req = invite()
    d = Dialog.uac(req, answer(req))
    d.receive_request(make_request(
        "BYE", "sip:alice@10.0.0.1", from_="<sip:bob@example.com>;tag=b1",
        to="Alice <sip:alice@example.com>;tag=a1", call_id="c1@x", cseq=3, via=VIA))
    assert d.remote_seq == 3


def test_target_refresh_request_moves_remote_target() -> None:
    d = uas_dialog()
    d.receive_request(incoming("INVITE", 11, contact="<sip:bob@10.9.9.9:6000>"))
    assert str(d.remote_target) == "sip:bob@10.9.9.9:6000"
    d.receive_request(incoming("INFO", 12, contact="<sip:bob@1.1.1.1>"))  # not a refresh
    assert str(d.remote_target) == "sip:bob@10.9.9.9:6000"
    d.receive_request(incoming("UPDATE", 13))  # refresh without Contact keeps the target
    assert str(d.remote_target) == "sip:bob@10.9.9.9:6000"


def test_terminated_dialog_refuses() -> None:
    d = uas_dialog()
    d.terminate()
    assert d.terminated
    with pytest.raises(ProtocolError) as err:
        d.receive_request(incoming("INFO", 20))
    assert err.value.status == 481
    with pytest.raises(UsageError):
        d.create_request("INFO", via=VIA)
    with pytest.raises(UsageError):
        d.ack_for_2xx(invite(), via=VIA)
    d.receive_response(answer(invite()))  # ignored
    assert d.terminated


def test_create_request_loose_routing() -> None:
    req = invite(record_route=("<sip:p1.example.com;lr>",))
    d = Dialog.uac(req, answer(req))
    info = d.create_request("INFO", via=VIA, headers=[("X-A", "1")], body=b"x", content_type="text/plain")
    assert info.uri_text == "sip:bob@10.0.0.2:5070"
    assert info.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    assert info.cseq.seq == 8 and info.cseq.method == "INFO"
    assert info.from_.tag == "a1" and info.to.tag == "b1" and info.call_id == "c1@x"
    assert info.headers.get("X-A") == "1" and info.body == b"x"
    assert "Contact" not in info.headers  # INFO is not a target refresh
    reinvite = d.create_request("INVITE", via=VIA)
    assert reinvite.cseq.seq == 9 and str(reinvite.contacts[0]) == "<sip:alice@10.0.0.1:5060>"
    assert str(d.next_hop()) == "sip:p1.example.com;lr"
    again = d.create_request("INFO", via=VIA, cseq=100)
    assert again.cseq.seq == 100


def test_create_request_no_routes() -> None:
    req = invite()
    d = Dialog.uac(req, answer(req))
    bye = d.bye(via=VIA)
    assert bye.method == "BYE" and "Route" not in bye.headers
    assert str(d.next_hop()) == "sip:bob@10.0.0.2:5070"
    with pytest.raises(UsageError):
        d.create_request("ACK", via=VIA)


def test_create_request_strict_routing() -> None:
    req = invite(record_route=("<sip:p1.example.com;lr>", "<sip:strict.example.com;maddr=1.2.3.4;foo=1>"))
    d = Dialog.uac(req, answer(req))
    # Reversed: the strict router is first.
    bye = d.create_request("BYE", via=VIA)
    assert bye.uri_text == "sip:strict.example.com;foo=1"
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:bob@10.0.0.2:5070>"]
    assert str(d.next_hop()) == "sip:p1.example.com;lr"


def test_strict_route_with_non_sip_uri() -> None:
    d = uas_dialog()
    d.route_set = (NameAddr(parse_uri("tel:+123")),)
    uri, routes = d.request_target()
    assert str(uri) == "tel:+123" and [str(r) for r in routes] == ["<sip:bob@10.0.0.2:5070>"]


def test_uas_first_local_cseq_and_exhaustion() -> None:
    d = uas_dialog()
    assert d.next_cseq(initial=500) == 500
    assert d.next_cseq() == 501
    d.local_seq = 2**31 - 1
    with pytest.raises(UsageError):
        d.next_cseq()


def test_ack_for_2xx() -> None:
    req = invite(record_route=("<sip:p1.example.com;lr>",))
    req.headers.add("Proxy-Authorization", 'Digest username="a"')
    d = Dialog.uac(req, answer(req))
    ack = d.ack_for_2xx(req, via=VIA, body=b"v=0", content_type="application/sdp")
    assert ack.method == "ACK" and ack.cseq.seq == 7 and ack.cseq.method == "ACK"
    assert ack.uri_text == "sip:bob@10.0.0.2:5070"
    assert ack.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    assert ack.headers.get("Proxy-Authorization") == 'Digest username="a"'
    assert ack.via.branch == "z9hG4bKnew"
    assert d.local_seq == 7  # the ACK does not consume a CSeq
    with pytest.raises(UsageError):
        d.ack_for_2xx(d.create_request("INFO", via=VIA), via=VIA)


def test_responses_update_or_end_dialog() -> None:
    req = invite()
    d = Dialog.uac(req, answer(req))
    reinvite = d.create_request("INVITE", via=VIA)
    d.receive_response(answer(reinvite, 200, contact="<sip:bob@10.7.7.7>"))
    assert str(d.remote_target) == "sip:bob@10.7.7.7"
    d.receive_response(answer(reinvite, 100))  # no effect
    d.receive_response(answer(reinvite, 200, contact=None))  # refresh without Contact
    assert str(d.remote_target) == "sip:bob@10.7.7.7"
    info = d.create_request("INFO", via=VIA)
    d.receive_response(answer(info, 200, contact="<sip:other@1.1.1.1>"))  # INFO refreshes nothing
    assert str(d.remote_target) == "sip:bob@10.7.7.7"
    d.receive_response(answer(info, 486))  # other failures leave the dialog
    assert d.confirmed
    d.receive_response(answer(info, 481))
    assert d.terminated


def test_failed_invite_ends_early_dialog() -> None:
    req = invite()
    d = Dialog.uac(req, answer(req, 180))
    d.receive_response(answer(req, 408))
    assert d.terminated
    d2 = Dialog.uac(req, answer(req, 180))
    d2.receive_response(answer(req, 404))
    assert d2.terminated


def test_parsed_wire_message_round_trip() -> None:
    wire = (
        b"INVITE sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n"
        b"Max-Forwards: 70\r\nTo: Bob <sip:bob@example.com>\r\n"
        b"From: Alice <sip:alice@example.com>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\n"
        b"CSeq: 314159 INVITE\r\nContact: <sip:alice@pc33.example.com>\r\n"
        b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nContent-Length: 0\r\n\r\n"
    )
    req = parse_message(wire)
    assert isinstance(req, Request)
    d = Dialog.uas(req, answer(req, 200, tag="z"))
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    bye = d.create_request("BYE", via=VIA)
    assert bye.uri_text == "sip:alice@pc33.example.com"
    assert bye.cseq.seq == 1
