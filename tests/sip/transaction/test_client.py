"""Client transactions on a fake clock: retransmission schedules, timeouts, ACK, RFC 6026."""

from __future__ import annotations

from typing import Any

import pytest

from sipline.sip.errors import TransactionError
from sipline.sip.message import Headers, Response
from sipline.sip.timers import TimerConfig
from sipline.sip.transaction import (
    Input,
    InviteClientTransaction,
    MessageIgnored,
    NonInviteClientTransaction,
    ResponseReceived,
    State,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)

W = Any  # the ``wire`` fixture (tests/sip/transaction/conftest.py)


def ict(wire: W, *, reliable: bool = False, timers: TimerConfig | None = None) -> InviteClientTransaction:
    return InviteClientTransaction(
        wire.request("INVITE"), wire.PEER, 0.0, timers=timers or wire.TIMERS, reliable=reliable
    )


def nict(wire: W, *, reliable: bool = False, timers: TimerConfig | None = None) -> NonInviteClientTransaction:
    return NonInviteClientTransaction(
        wire.request("OPTIONS"), wire.PEER, 0.0, timers=timers or wire.TIMERS, reliable=reliable
    )


# -- INVITE client transaction --------------------------------------------------------


def test_ict_unreliable_retransmits_with_doubling_then_times_out(wire: W) -> None:
    tx = ict(wire)
    trace = wire.run(tx, 100.0)
    # Timer A: T1, 2T1, 4T1 ... uncapped (§17.1.1.2); Timer B = 64*T1 = 32 s.
    assert trace.times(b"INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert trace.events == [
        (32.0, TransactionTimeout(tx.key, "B")),
        (32.0, TransactionTerminated(tx.key)),
    ]
    assert tx.state is State.TERMINATED
    assert tx.next_deadline() is None


def test_ict_reliable_never_retransmits(wire: W) -> None:
    tx = ict(wire, reliable=True)
    assert tx.timer_deadline(Input.TIMER_A) is None
    trace = wire.run(tx, 100.0)
    assert trace.times(b"INVITE") == [0.0]
    assert trace.event_types() == ["TransactionTimeout", "TransactionTerminated"]
    assert trace.events[0][0] == 32.0


def test_ict_timer_values_follow_config(wire: W) -> None:
    tx = ict(wire, timers=TimerConfig(t1=0.1, t2=0.4))
    trace = wire.run(tx, 100.0)
    assert trace.times(b"INVITE") == pytest.approx([0.0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    assert trace.events[0][0] == pytest.approx(6.4)


def test_ict_late_wakeup_rearms_from_now_without_burst(wire: W) -> None:
    tx = ict(wire)
    tx.drain_output()
    tx.handle_timer(3.0)  # Timer A was due at 0.5: one retransmission, not three
    assert len(tx.drain_output()) == 1
    assert tx.next_deadline() == 4.0  # now + 2*T1


def test_ict_provisional_stops_retransmissions_and_timer_b(wire: W) -> None:
    tx = ict(wire)
    trace = wire.run(tx, 0.5)
    ringing = wire.response(180, "Ringing")
    tx.receive_response(ringing, 0.7)
    tx.receive_response(wire.response(183, "Session Progress"), 0.8)
    trace = wire.run(tx, 1000.0, trace, now=0.8)
    assert trace.times(b"INVITE") == [0.0, 0.5]
    assert tx.state is State.PROCEEDING
    assert tx.next_deadline() is None  # Proceeding waits for the TU (Timer C is a proxy's)
    assert [type(e) for _, e in trace.events] == [ResponseReceived, ResponseReceived]
    assert trace.events[0][1] == ResponseReceived(ringing, tx.key)


ACK_486 = (
    b"ACK sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 ACK\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


@pytest.mark.parametrize("status", [300, 302, 404, 486, 487, 500, 503, 603, 699])
@pytest.mark.parametrize("after_provisional", [False, True])
def test_ict_acks_non_2xx_byte_exact_and_reacks_retransmissions(
    wire: W, status: int, after_provisional: bool
) -> None:
    tx = ict(wire)
    tx.drain_output()
    if after_provisional:
        tx.receive_response(wire.response(180, "Ringing"), 0.1)
        tx.drain_events()
    final = wire.response(status, "Nope")
    tx.receive_response(final, 0.2)
    assert [bytes(s.message) for s in tx.drain_output()] == [ACK_486]
    assert tx.drain_events() == [ResponseReceived(final, tx.key)]
    assert tx.state is State.COMPLETED
    assert tx.next_deadline() == pytest.approx(32.2)  # Timer D, unreliable
    # The final response is retransmitted (our ACK was lost): ACK again, TU not told.
    tx.receive_response(wire.response(status, "Nope"), 1.0)
    out = tx.drain_output()
    assert [bytes(s.message) for s in out] == [ACK_486]
    assert out[0].destination == wire.PEER
    assert tx.drain_events() == []
    tx.handle_timer(32.2)
    assert tx.drain_events() == [TransactionTerminated(tx.key)]


def test_ict_reliable_final_terminates_at_once(wire: W) -> None:
    tx = ict(wire, reliable=True)
    tx.drain_output()
    tx.receive_response(wire.response(486, "Busy Here"), 0.2)
    assert [bytes(s.message) for s in tx.drain_output()] == [ACK_486]
    assert [type(e) for e in tx.drain_events()] == [ResponseReceived, TransactionTerminated]
    assert tx.state is State.TERMINATED


def test_ict_2xx_accepted_passes_every_2xx_up_and_never_acks(wire: W) -> None:
    tx = ict(wire)
    tx.drain_output()
    ok = wire.response(200, "OK")
    tx.receive_response(ok, 1.0)
    assert tx.state is State.ACCEPTED
    assert tx.drain_events() == [ResponseReceived(ok, tx.key)]
    assert tx.next_deadline() == 33.0  # Timer M = 64*T1
    again = wire.response(200, "OK")
    fork = wire.response(200, "OK", to_tag="otherfork")
    tx.receive_response(again, 2.0)
    tx.receive_response(fork, 3.0)
    assert tx.drain_events() == [ResponseReceived(again, tx.key), ResponseReceived(fork, tx.key)]
    assert tx.drain_output() == []  # the 2xx ACK is the UA core's (§13.2.2.4)
    tx.receive_response(wire.response(486), 4.0)  # nonsense after a 2xx: logged, ignored
    events = tx.drain_events()
    assert len(events) == 1 and isinstance(events[0], MessageIgnored)
    assert "Accepted" in events[0].reason
    tx.handle_timer(33.0)
    assert tx.drain_events() == [TransactionTerminated(tx.key)]


def test_ict_2xx_from_proceeding_also_accepted(wire: W) -> None:
    tx = ict(wire, reliable=True)
    tx.receive_response(wire.response(180), 0.1)
    tx.receive_response(wire.response(200), 0.2)
    assert tx.state is State.ACCEPTED


@pytest.mark.parametrize("prelude", [[], [486]])
def test_ict_transport_error_terminates(wire: W, prelude: list[int]) -> None:
    tx = ict(wire)
    for status in prelude:
        tx.receive_response(wire.response(status), 0.1)
    tx.drain_events()
    tx.transport_error(0.3)
    assert tx.drain_events() == [TransportError(tx.key, wire.PEER), TransactionTerminated(tx.key)]
    assert tx.next_deadline() is None


def test_ict_ignores_inputs_without_transition(wire: W) -> None:
    tx = ict(wire)
    tx.receive_response(wire.response(486), 0.1)
    tx.drain_events()
    tx.receive_response(wire.response(180), 0.2)
    tx.receive_response(wire.response(200), 0.3)
    events = tx.drain_events()
    assert [type(e) for e in events] == [MessageIgnored, MessageIgnored]
    assert tx.state is State.COMPLETED
    tx = ict(wire)
    tx.receive_response(wire.response(180), 0.1)
    tx.transport_error(0.2)  # Proceeding sends nothing (Figure 5): not its error
    assert isinstance(tx.drain_events()[-1], MessageIgnored)
    assert tx.state is State.PROCEEDING


def test_ict_ignores_unusable_response(wire: W) -> None:
    tx = ict(wire)
    broken = Response(486, "Busy", Headers.from_pairs([("Via", f"SIP/2.0/UDP h;branch={wire.BRANCH}")]))
    tx.receive_response(broken, 0.1)
    [event] = tx.drain_events()
    assert isinstance(event, MessageIgnored) and "To" in event.reason
    assert tx.state is State.CALLING


@pytest.mark.parametrize("method", ["OPTIONS", "ACK"])
def test_ict_refuses_other_methods(wire: W, method: str) -> None:
    with pytest.raises(TransactionError):
        InviteClientTransaction(wire.request(method), wire.PEER, 0.0)


def test_client_refuses_request_without_branch(wire: W) -> None:
    request = wire.request("INVITE")
    request.headers.set("Via", "SIP/2.0/UDP pc33.atlanta.example.com")
    with pytest.raises(TransactionError, match="branch"):
        InviteClientTransaction(request, wire.PEER, 0.0)
    request.headers.remove("Via")
    with pytest.raises(TransactionError, match="Via"):
        InviteClientTransaction(request, wire.PEER, 0.0)
    with pytest.raises(TransactionError):
        NonInviteClientTransaction(wire.response(200), wire.PEER, 0.0)  # type: ignore[arg-type]


# -- non-INVITE client transaction ----------------------------------------------------


def test_nict_unreliable_retransmits_capped_at_t2_then_times_out(wire: W) -> None:
    tx = nict(wire)
    trace = wire.run(tx, 100.0)
    # Timer E: T1, 2T1, 4T1, then T2 (4 s) until Timer F = 64*T1 (§17.1.2.2).
    assert trace.times(b"OPTIONS") == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert trace.events == [
        (32.0, TransactionTimeout(tx.key, "F")),
        (32.0, TransactionTerminated(tx.key)),
    ]


def test_nict_reliable_sends_once(wire: W) -> None:
    tx = nict(wire, reliable=True)
    trace = wire.run(tx, 100.0)
    assert trace.times(b"OPTIONS") == [0.0]
    assert trace.events[0] == (32.0, TransactionTimeout(tx.key, "F"))


def test_nict_proceeding_retransmits_every_t2(wire: W) -> None:
    tx = nict(wire)
    trace = wire.run(tx, 1.0)
    trying = wire.response(100, "Trying", method="OPTIONS")
    tx.receive_response(trying, 1.0)
    assert tx.state is State.PROCEEDING
    trace = wire.run(tx, 100.0, trace, now=1.0)
    # E armed in Trying fires at 1.5, then every T2 while Proceeding.
    assert trace.times(b"OPTIONS") == [0.0, 0.5, 1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert [type(e).__name__ for _, e in trace.events] == [
        "ResponseReceived", "TransactionTimeout", "TransactionTerminated"
    ]


@pytest.mark.parametrize(("reliable", "linger"), [(False, 5.0), (True, 0.0)])
@pytest.mark.parametrize("status", [200, 202, 404, 503])
def test_nict_final_response_completes_and_absorbs(wire: W, reliable: bool, linger: float, status: int) -> None:
    tx = nict(wire, reliable=reliable)
    tx.receive_response(wire.response(100, method="OPTIONS"), 0.1)
    final = wire.response(status, method="OPTIONS")
    tx.receive_response(final, 0.2)
    events = tx.drain_events()
    assert events[1] == ResponseReceived(final, tx.key)
    if reliable:
        assert events[2:] == [TransactionTerminated(tx.key)]
        return
    assert tx.state is State.COMPLETED
    assert tx.next_deadline() == pytest.approx(0.2 + linger)  # Timer K = T4
    for late in (100, status, 500):
        tx.receive_response(wire.response(late, method="OPTIONS"), 1.0)
    assert tx.drain_events() == []  # retransmissions absorbed silently
    tx.drain_output()
    tx.handle_timer(0.2 + linger)
    assert tx.drain_events() == [TransactionTerminated(tx.key)]
    assert tx.drain_output() == []


@pytest.mark.parametrize("provisional", [False, True])
def test_nict_transport_error(wire: W, provisional: bool) -> None:
    tx = nict(wire)
    if provisional:
        tx.receive_response(wire.response(100, method="OPTIONS"), 0.1)
        tx.drain_events()
    tx.transport_error(0.2)
    assert tx.drain_events() == [TransportError(tx.key, wire.PEER), TransactionTerminated(tx.key)]


def test_nict_refuses_invite(wire: W) -> None:
    with pytest.raises(TransactionError):
        NonInviteClientTransaction(wire.request("INVITE"), wire.PEER, 0.0)


def test_repr_and_states(wire: W) -> None:
    tx = nict(wire)
    assert "Trying" in repr(tx) and "OPTIONS" in repr(tx)
    assert NonInviteClientTransaction.states() == {State.TRYING, State.PROCEEDING, State.COMPLETED, State.TERMINATED}
    assert InviteClientTransaction.states() == {
        State.CALLING, State.PROCEEDING, State.COMPLETED, State.ACCEPTED, State.TERMINATED
    }
