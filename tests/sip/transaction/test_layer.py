"""The transaction layer: dispatch, creation, CANCEL, strays, limits, shared timer heap."""

from __future__ import annotations

from typing import Any

import pytest

from sipline.sip.errors import TransactionError
from sipline.sip.ids import CountingIdSource
from sipline.sip.message import Headers, Request, Response, parse_message
from sipline.sip.message.builders import ack_for, cancel_for, response_to
from sipline.sip.timers import TimerConfig
from sipline.sip.transaction import (
    AckReceived,
    CancelReceived,
    InviteServerTransaction,
    MessageIgnored,
    RequestReceived,
    ResponseReceived,
    State,
    StrayAck,
    StrayResponse,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
    server_key,
)

W = Any
OTHER = ("198.51.100.7", 5060)


def layer(wire: W, **kw: Any) -> TransactionLayer:
    return TransactionLayer(wire.TIMERS, CountingIdSource(), **kw)


def first_lines(tl: TransactionLayer) -> list[str]:
    return [bytes(s.message).split(b"\r\n")[0].decode() for s in tl.drain_output()]


def run(tl: TransactionLayer, until: float) -> list[tuple[float, str]]:
    """Wake the layer at each deadline up to *until*; first lines of what it sent, timed."""
    out: list[tuple[float, str]] = []
    while (deadline := tl.next_deadline()) is not None and deadline <= until:
        tl.handle_timer(deadline)
        out.extend((deadline, line) for line in first_lines(tl))
    return out


# -- client side ----------------------------------------------------------------------


def test_uac_invite_rejected(wire: W) -> None:
    tl = layer(wire)
    key = tl.send_request(wire.request("INVITE"), wire.PEER, 0.0)
    assert first_lines(tl) == ["INVITE sip:bob@biloxi.example.com SIP/2.0"]
    assert key in tl and len(tl) == 1
    assert tl.next_deadline() == 0.5
    assert run(tl, 1.0) == [(0.5, "INVITE sip:bob@biloxi.example.com SIP/2.0")]
    ringing = wire.response(180)
    tl.receive(ringing, wire.PEER, 1.2)
    busy = wire.response(486)
    tl.receive(busy, wire.PEER, 2.0)
    out = tl.drain_output()
    assert [bytes(s.message).split(b"\r\n")[0] for s in out] == [b"ACK sip:bob@biloxi.example.com SIP/2.0"]
    assert out[0].destination == wire.PEER
    assert tl.drain_events() == [ResponseReceived(ringing, key), ResponseReceived(busy, key)]
    assert tl.next_deadline() == 34.0  # Timer D
    tl.handle_timer(34.0)
    assert tl.drain_events() == [TransactionTerminated(key)]
    assert key not in tl and tl.get(key) is None and len(tl) == 0
    # After the transaction is gone, the same response is a stray.
    tl.receive(busy, wire.PEER, 35.0)
    assert tl.drain_events() == [StrayResponse(busy, wire.PEER)]


def test_uac_cancel_is_a_separate_client_transaction(wire: W) -> None:
    tl = layer(wire)
    invite = wire.request("INVITE")
    ikey = tl.send_request(invite, wire.PEER, 0.0)
    tl.receive(wire.response(180), wire.PEER, 0.1)
    ckey = tl.send_request(cancel_for(invite), wire.PEER, 0.2)
    assert ckey != ikey and len(tl) == 2
    tl.drain_events()
    ok = wire.response(200, method="CANCEL")
    tl.receive(ok, wire.PEER, 0.3)
    terminated = wire.response(487)
    tl.receive(terminated, wire.PEER, 0.4)
    assert tl.drain_events() == [ResponseReceived(ok, ckey), ResponseReceived(terminated, ikey)]


def test_uac_2xx_then_stray_2xx_after_timer_m(wire: W) -> None:
    tl = layer(wire)
    key = tl.send_request(wire.request("INVITE"), wire.PEER, 0.0)
    ok = wire.response(200)
    tl.receive(ok, wire.PEER, 0.1)
    tl.receive(ok, wire.PEER, 0.6)
    assert tl.drain_events() == [ResponseReceived(ok, key), ResponseReceived(ok, key)]
    run(tl, 100.0)
    assert tl.drain_events() == [TransactionTerminated(key)]
    tl.receive(ok, wire.PEER, 101.0)
    assert tl.drain_events() == [StrayResponse(ok, wire.PEER)]
    ack = Request("ACK", "sip:bob@biloxi.example.com")
    tl.send_stateless(ack, wire.PEER)  # the UA core's ACK for the 2xx
    assert [s.message for s in tl.drain_output()][-1] is ack


def test_send_request_errors(wire: W) -> None:
    tl = layer(wire, max_transactions=1)
    with pytest.raises(TransactionError):
        tl.send_request(wire.request("ACK"), wire.PEER, 0.0)
    no_branch = wire.request("OPTIONS")
    no_branch.headers.set("Via", "SIP/2.0/UDP host")
    with pytest.raises(TransactionError, match="branch"):
        tl.send_request(no_branch, wire.PEER, 0.0)
    no_branch.headers.remove("Via")
    with pytest.raises(TransactionError, match="Via"):
        tl.send_request(no_branch, wire.PEER, 0.0)
    tl.send_request(wire.request("OPTIONS"), wire.PEER, 0.0)
    with pytest.raises(TransactionError, match="already exists"):
        tl.send_request(wire.request("OPTIONS"), wire.PEER, 0.0)
    with pytest.raises(TransactionError, match="limit"):
        tl.send_request(wire.request("OPTIONS", branch="z9hG4bKother"), wire.PEER, 0.0)


def test_reliability_from_via_or_callable(wire: W) -> None:
    tl = layer(wire)
    tl.send_request(wire.request("OPTIONS", transport="TCP"), wire.PEER, 0.0)
    assert tl.next_deadline() == 32.0  # no Timer E on TCP
    tl = layer(wire, reliable=lambda destination: destination == wire.PEER)
    tl.send_request(wire.request("OPTIONS"), wire.PEER, 0.0)
    assert tl.next_deadline() == 32.0
    tl.send_request(wire.request("OPTIONS", branch="z9hG4bK2"), OTHER, 0.0)
    assert tl.next_deadline() == 0.5
    tl.send_request(wire.request("OPTIONS", branch="z9hG4bK3"), OTHER, 0.0, reliable=True)
    assert len(tl) == 3


# -- server side ----------------------------------------------------------------------


def test_uas_invite_rejected_and_acked(wire: W) -> None:
    tl = layer(wire)
    invite = wire.request("INVITE")
    tl.receive(invite, wire.PEER, 0.0)
    key = server_key(invite)
    assert tl.drain_events() == [RequestReceived(invite, key, wire.PEER)]
    assert run(tl, 0.2) == [(0.2, "SIP/2.0 100 Trying")]
    tl.receive(wire.request("INVITE"), wire.PEER, 0.3)  # retransmission: the 100 again
    assert first_lines(tl) == ["SIP/2.0 100 Trying"]
    assert tl.drain_events() == []
    tl.send_response(key, response_to(invite, 486, to_tag="a6c85cf"), 1.0)
    assert first_lines(tl) == ["SIP/2.0 486 Busy Here"]
    assert run(tl, 2.0) == [(1.5, "SIP/2.0 486 Busy Here")]
    tl.receive(wire.request("ACK", to_tag="a6c85cf"), wire.PEER, 2.0)
    tx = tl.get(key)
    assert tx is not None and tx.state is State.CONFIRMED
    assert tl.drain_events() == []
    assert run(tl, 100.0) == []
    assert tl.drain_events() == [TransactionTerminated(key)]
    assert len(tl) == 0


def test_uas_2xx_and_acks(wire: W) -> None:
    tl = layer(wire, trying_delay=None)
    invite = wire.request("INVITE")
    tl.receive(invite, wire.PEER, 0.0)
    key = server_key(invite)
    tl.send_response(key, response_to(invite, 200, to_tag="a6c85cf"), 0.5)
    tl.drain_events()
    # A 2xx ACK carries a new branch: no transaction, it goes to the dialog.
    ack = wire.request("ACK", branch="z9hG4bKack", to_tag="a6c85cf")
    tl.receive(ack, wire.PEER, 0.6)
    assert tl.drain_events() == [StrayAck(ack, wire.PEER)]
    # One that reuses the INVITE branch meets the Accepted transaction (RFC 6026 §8.7).
    same = wire.request("ACK", to_tag="a6c85cf")
    tl.receive(same, wire.PEER, 0.7)
    assert tl.drain_events() == [AckReceived(same, key)]


def test_uas_send_response_unknown_key(wire: W) -> None:
    tl = layer(wire)
    invite = wire.request("INVITE")
    with pytest.raises(TransactionError, match="no live server transaction"):
        tl.send_response(server_key(invite), response_to(invite, 200), 0.0)
    tl.receive(invite, wire.PEER, 0.0)
    tl.send_response(server_key(invite), response_to(invite, 486, to_tag="x"), 0.0)
    with pytest.raises(TransactionError):
        tl.send_response(server_key(invite), response_to(invite, 180, to_tag="x"), 0.0)
    assert len(tl) == 1


CANCEL_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag={tag}\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 CANCEL\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


@pytest.mark.parametrize(("ring", "tag"), [(False, b"tagid1"), (True, b"ringtag")])
def test_cancel_matching_invite_is_answered_200(wire: W, ring: bool, tag: bytes) -> None:
    tl = layer(wire, trying_delay=None)
    invite = wire.request("INVITE")
    tl.receive(invite, wire.PEER, 0.0)
    ikey = server_key(invite)
    if ring:
        tl.send_response(ikey, response_to(invite, 180, to_tag="ringtag"), 0.1)
    tl.drain_output()
    tl.drain_events()
    cancel = wire.request("CANCEL")
    tl.receive(cancel, wire.PEER, 1.0)
    ckey = server_key(cancel)
    assert tl.drain_events() == [CancelReceived(cancel, ckey, ikey, wire.PEER)]
    assert [bytes(s.message) for s in tl.drain_output()] == [CANCEL_200.replace(b"{tag}", tag)]
    # The TU decides to end the INVITE with 487 (§9.2).
    tl.send_response(ikey, response_to(invite, 487, to_tag=tag.decode()), 1.1)
    assert first_lines(tl) == ["SIP/2.0 487 Request Terminated"]
    # A retransmitted CANCEL gets the 200 again, the TU hears nothing.
    tl.receive(wire.request("CANCEL"), wire.PEER, 1.5)
    assert first_lines(tl) == ["SIP/2.0 200 OK"]
    assert tl.drain_events() == []


def test_cancel_without_match_goes_to_the_tu(wire: W) -> None:
    tl = layer(wire)
    cancel = wire.request("CANCEL")
    tl.receive(cancel, wire.PEER, 0.0)
    assert tl.drain_events() == [RequestReceived(cancel, server_key(cancel), wire.PEER)]
    assert tl.drain_output() == []


def _legacy(wire: W, method: str, **kw: Any) -> Request:
    request: Request = wire.request(method, **kw)
    request.headers.set("Via", "SIP/2.0/UDP pc33.atlanta.example.com")
    return request


def test_rfc2543_peer_retransmission_ack_and_cancel(wire: W) -> None:
    tl = layer(wire, trying_delay=None)
    invite = _legacy(wire, "INVITE")
    tl.receive(invite, wire.PEER, 0.0)
    key = server_key(invite)
    tl.receive(_legacy(wire, "INVITE"), wire.PEER, 0.5)
    assert first_lines(tl) == ["SIP/2.0 100 Trying"]  # recognised as a retransmission
    tl.receive(_legacy(wire, "CANCEL"), wire.PEER, 0.6)
    events = tl.drain_events()
    assert isinstance(events[1], CancelReceived) and events[1].invite_key == key
    tl.drain_output()
    tl.send_response(key, response_to(invite, 487, to_tag="ourtag"), 0.7)
    tl.drain_output()
    # An ACK with someone else's To tag is not ours.
    stranger = _legacy(wire, "ACK", to_tag="someoneelse")
    tl.receive(stranger, wire.PEER, 0.8)
    assert tl.drain_events() == [StrayAck(stranger, wire.PEER)]
    tl.receive(_legacy(wire, "ACK", to_tag="ourtag"), wire.PEER, 0.9)
    tx = tl.get(key)
    assert tx is not None and tx.state is State.CONFIRMED


def test_rfc2543_ack_before_any_response_is_stray(wire: W) -> None:
    tl = layer(wire, trying_delay=None)
    tl.receive(_legacy(wire, "INVITE"), wire.PEER, 0.0)
    ack = _legacy(wire, "ACK", to_tag="t")
    tl.receive(ack, wire.PEER, 0.1)
    assert tl.drain_events()[-1] == StrayAck(ack, wire.PEER)


def test_rfc2543_reinvite_ack(wire: W) -> None:
    tl = layer(wire, trying_delay=None)
    invite = _legacy(wire, "INVITE", to_tag="dlg")
    tl.receive(invite, wire.PEER, 0.0)
    tl.send_response(server_key(invite), response_to(invite, 488), 0.1)
    tl.receive(_legacy(wire, "ACK", to_tag="dlg"), wire.PEER, 0.2)
    tx = tl.get(server_key(invite))
    assert tx is not None and tx.state is State.CONFIRMED


def test_ack_matching_a_non_invite_is_stray(wire: W) -> None:
    tl = layer(wire)
    ack = wire.request("ACK")
    tl.receive(ack, wire.PEER, 0.0)
    assert tl.drain_events() == [StrayAck(ack, wire.PEER)]


# -- robustness and limits ------------------------------------------------------------


def test_overload_answers_503_statelessly(wire: W) -> None:
    tl = layer(wire, max_transactions=1)
    tl.receive(wire.request("OPTIONS"), wire.PEER, 0.0)
    tl.drain_events()
    extra = wire.request("OPTIONS", branch="z9hG4bKextra")
    tl.receive(extra, wire.PEER, 0.0)
    [sent] = tl.drain_output()
    reply = parse_message(bytes(sent.message))
    assert sent.destination == wire.PEER
    assert isinstance(reply, Response) and reply.status == 503 and reply.to.tag == "tagid1"
    [event] = tl.drain_events()
    assert isinstance(event, MessageIgnored) and "limit" in event.reason
    assert len(tl) == 1


def test_unusable_input_becomes_an_event(wire: W) -> None:
    tl = layer(wire)
    broken = Request("OPTIONS", "sip:x@y", Headers.from_pairs([("CSeq", "1 OPTIONS")]))
    tl.receive(broken, wire.PEER, 0.0)
    tl.receive("not a message", wire.PEER, 0.0)  # type: ignore[arg-type]
    events = tl.drain_events()
    assert [type(e) for e in events] == [MessageIgnored, MessageIgnored]
    assert isinstance(events[0], MessageIgnored)
    assert "missing" in events[0].reason and events[0].message is broken
    no_branch = wire.response(200)
    no_branch.headers.set("Via", "SIP/2.0/UDP pc33.atlanta.example.com")
    tl.receive(no_branch, wire.PEER, 0.0)
    assert tl.drain_events() == [StrayResponse(no_branch, wire.PEER)]


def test_transport_error_reaches_every_transaction_on_that_destination(wire: W) -> None:
    tl = layer(wire)
    a = tl.send_request(wire.request("OPTIONS", branch="z9hG4bKa"), wire.PEER, 0.0)
    b = tl.send_request(wire.request("INVITE", branch="z9hG4bKb"), wire.PEER, 0.0)
    c = tl.send_request(wire.request("OPTIONS", branch="z9hG4bKc"), OTHER, 0.0)
    tl.transport_error(wire.PEER, 0.1)
    assert tl.drain_events() == [
        TransportError(a, wire.PEER), TransactionTerminated(a),
        TransportError(b, wire.PEER), TransactionTerminated(b),
    ]
    assert c in tl and len(tl) == 1


def test_transport_failed_matches_destinations_by_predicate(wire: W) -> None:
    """A runtime destination carries more than the address (a stream's connection), so the
    runtime names the failed ones by a predicate over what each transaction used."""
    tl = layer(wire)
    via_flow_1 = (wire.PEER, "flow-1")
    via_flow_2 = (wire.PEER, "flow-2")
    a = tl.send_request(wire.request("OPTIONS", branch="z9hG4bKa"), via_flow_1, 0.0)
    b = tl.send_request(wire.request("OPTIONS", branch="z9hG4bKb"), via_flow_2, 0.0)
    c = tl.send_request(wire.request("OPTIONS", branch="z9hG4bKc"), (OTHER, "flow-3"), 0.0)
    tl.transport_failed(lambda used: isinstance(used, tuple) and used[0] == wire.PEER, 0.1)
    assert tl.drain_events() == [
        TransportError(a, via_flow_1), TransactionTerminated(a),
        TransportError(b, via_flow_2), TransactionTerminated(b),
    ]
    assert c in tl and len(tl) == 1


def test_timer_heap_interleaves_transactions(wire: W) -> None:
    tl = layer(wire, trying_delay=None)
    k1 = tl.send_request(wire.request("OPTIONS", branch="z9hG4bK1"), wire.PEER, 0.0)
    k2 = tl.send_request(wire.request("OPTIONS", branch="z9hG4bK2"), wire.PEER, 0.25)
    tl.drain_output()
    sent = run(tl, 1.9)
    assert [t for t, _ in sent] == [0.5, 0.75, 1.5, 1.75]
    # A final response reschedules k1 to Timer K; its old heap entries go stale.
    tl.receive(wire.response(200, method="OPTIONS", branch="z9hG4bK1"), wire.PEER, 1.9)
    assert tl.next_deadline() == 3.75  # k2's Timer E
    run(tl, 200.0)
    events = tl.drain_events()
    assert TransactionTerminated(k1) in events
    assert TransactionTimeout(k2, "F") in events
    assert tl.next_deadline() is None and len(tl) == 0


def test_stale_heap_entries_are_skipped(wire: W) -> None:
    tl = layer(wire)
    key = tl.send_request(wire.request("OPTIONS"), wire.PEER, 0.0)
    tl.receive(wire.response(200, method="OPTIONS"), wire.PEER, 0.1)  # Timer E entry goes stale
    tl.drain_output()
    tl.handle_timer(0.6)
    assert tl.drain_output() == []  # no retransmission from the superseded entry
    assert tl.next_deadline() == pytest.approx(5.1)  # Timer K
    tl.handle_timer(5.1)
    assert tl.drain_events()[-1] == TransactionTerminated(key)


def test_zero_retransmit_interval_does_not_spin(wire: W) -> None:
    # T2 = 0 caps Timer E at zero after its first firing: each wake-up must still return.
    tl = TransactionLayer(TimerConfig(t2=0.0), CountingIdSource())
    tl.send_request(wire.request("OPTIONS"), wire.PEER, 0.0)
    tl.drain_output()
    tl.handle_timer(0.5)
    assert len(tl.drain_output()) == 1
    deadline = tl.next_deadline()
    assert deadline is not None and 0.5 < deadline < 0.51


def test_get_distinguishes_client_and_server(wire: W) -> None:
    tl = layer(wire)
    invite = wire.request("INVITE")
    ckey = tl.send_request(invite, wire.PEER, 0.0)
    tl.receive(wire.request("INVITE"), wire.PEER, 0.0)  # looped back to ourselves
    skey = server_key(invite)
    assert ckey != skey and len(tl) == 2
    assert isinstance(tl.get(skey), InviteServerTransaction)
    assert tl.get(ckey) is not tl.get(skey)
    assert ack_for(invite, response_to(invite, 486, to_tag="x")).method == "ACK"
