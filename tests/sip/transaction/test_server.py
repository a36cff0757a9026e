"""Server transactions on a fake clock: 100 Trying, Timer G/H/I/J/L, RFC 6026 Accepted."""

from __future__ import annotations

from typing import Any

import pytest

from sipline.sip.errors import TransactionError
from sipline.sip.message import Headers, Response
from sipline.sip.message.builders import response_to
from sipline.sip.transaction import (
    AckReceived,
    Input,
    InviteServerTransaction,
    MessageIgnored,
    NonInviteServerTransaction,
    State,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)

W = Any  # the ``wire`` fixture (tests/sip/transaction/conftest.py)


def ist(wire: W, *, reliable: bool = False, trying_delay: float | None = 0.2) -> InviteServerTransaction:
    return InviteServerTransaction(
        wire.request("INVITE"), wire.PEER, 0.0, timers=wire.TIMERS, reliable=reliable, trying_delay=trying_delay
    )


def nist(wire: W, *, reliable: bool = False) -> NonInviteServerTransaction:
    return NonInviteServerTransaction(wire.request("OPTIONS"), wire.PEER, 0.0, timers=wire.TIMERS, reliable=reliable)


def answer(tx: InviteServerTransaction | NonInviteServerTransaction, status: int, now: float) -> Response:
    response = response_to(tx.request, status, to_tag="a6c85cf")
    tx.send_response(response, now)
    return response


def sent(tx: Any) -> list[bytes]:
    return [bytes(s.message) for s in tx.drain_output()]


TRYING_100 = (
    b"SIP/2.0 100 Trying\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Timestamp: 54\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# -- INVITE server transaction --------------------------------------------------------


def test_ist_sends_100_trying_after_200_ms_of_tu_silence(wire: W) -> None:
    tx = ist(wire)
    assert tx.drain_output() == []
    assert tx.next_deadline() == 0.2
    trace = wire.run(tx, 10.0)
    assert trace.sent == [(0.2, TRYING_100)]
    assert tx.last_response is not None and tx.last_response.status == 100
    assert tx.state is State.PROCEEDING and tx.next_deadline() is None


def test_ist_no_100_when_tu_answers_in_time(wire: W) -> None:
    tx = ist(wire)
    answer(tx, 180, 0.15)
    assert [m.split(b"\r\n")[0] for m in sent(tx)] == [b"SIP/2.0 180 Ringing"]
    assert tx.timer_deadline(Input.TIMER_TRYING) is None
    assert wire.run(tx, 10.0).sent == []


@pytest.mark.parametrize(("delay", "expected"), [(None, []), (0.0, [(0.0, TRYING_100)]), (1.0, [(1.0, TRYING_100)])])
def test_ist_trying_delay_is_configurable(wire: W, delay: float | None, expected: list[tuple[float, bytes]]) -> None:
    tx = ist(wire, trying_delay=delay)
    assert wire.run(tx, 10.0).sent == expected


def test_ist_invite_retransmission_in_proceeding(wire: W) -> None:
    tx = ist(wire, trying_delay=None)
    tx.receive_request(wire.request("INVITE"), 0.5)  # nothing sent yet: send the 100 now
    assert sent(tx) == [TRYING_100]
    answer(tx, 180, 1.0)
    sent(tx)
    tx.receive_request(wire.request("INVITE"), 1.5)  # repeat the latest provisional
    assert [m.split(b"\r\n")[0] for m in sent(tx)] == [b"SIP/2.0 180 Ringing"]
    assert tx.drain_events() == []  # retransmissions never reach the TU


def test_ist_non_2xx_retransmits_on_timer_g_until_timer_h(wire: W) -> None:
    tx = ist(wire)
    answer(tx, 486, 0.0)
    trace = wire.run(tx, 100.0)
    # Timer G: T1 doubling, capped at T2; Timer H = 64*T1 (§17.2.1).
    assert trace.times(b"SIP/2.0 486") == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert trace.events == [(32.0, TransactionTimeout(tx.key, "H")), (32.0, TransactionTerminated(tx.key))]


def test_ist_reliable_non_2xx_is_not_retransmitted(wire: W) -> None:
    tx = ist(wire, reliable=True)
    answer(tx, 486, 0.0)
    trace = wire.run(tx, 100.0)
    assert trace.times(b"SIP/2.0 486") == [0.0]
    assert trace.events[0] == (32.0, TransactionTimeout(tx.key, "H"))


def test_ist_completed_answers_invite_retransmissions(wire: W) -> None:
    tx = ist(wire)
    answer(tx, 603, 0.0)
    sent(tx)
    tx.receive_request(wire.request("INVITE"), 0.3)
    assert [m.split(b"\r\n")[0] for m in sent(tx)] == [b"SIP/2.0 603 Decline"]


@pytest.mark.parametrize(("reliable", "timer_i"), [(False, 5.0), (True, 0.0)])
def test_ist_ack_confirms_then_timer_i(wire: W, reliable: bool, timer_i: float) -> None:
    tx = ist(wire, reliable=reliable)
    answer(tx, 486, 0.0)
    sent(tx)
    ack = wire.request("ACK", to_tag="a6c85cf")
    tx.receive_request(ack, 1.0)
    if reliable:
        assert tx.drain_events() == [TransactionTerminated(tx.key)]
        return
    assert tx.state is State.CONFIRMED
    assert tx.next_deadline() == 1.0 + timer_i  # Timer I = T4; G and H are cancelled
    tx.receive_request(ack, 2.0)
    tx.receive_request(wire.request("INVITE"), 2.5)
    assert sent(tx) == [] and tx.drain_events() == []  # absorbed
    tx.handle_timer(1.0 + timer_i)
    assert tx.drain_events() == [TransactionTerminated(tx.key)]


def test_ist_2xx_accepted_state(wire: W) -> None:
    tx = ist(wire)
    ok = answer(tx, 200, 0.1)
    assert sent(tx) == [bytes(ok)]
    assert tx.state is State.ACCEPTED
    assert tx.next_deadline() == pytest.approx(32.1)  # Timer L; no Timer G for 2xx
    tx.receive_request(wire.request("INVITE"), 0.6)
    assert sent(tx) == [] and tx.drain_events() == []  # INVITE retransmission absorbed
    tx.send_response(ok, 0.6)  # the TU retransmits its 2xx (§13.3.1.4)
    assert sent(tx) == [bytes(ok)]
    ack = wire.request("ACK", to_tag="a6c85cf")
    tx.receive_request(ack, 1.0)
    assert tx.drain_events() == [AckReceived(ack, tx.key)]
    with pytest.raises(TransactionError):
        answer(tx, 486, 1.1)
    assert tx.state is State.ACCEPTED
    tx.handle_timer(32.1)
    assert tx.drain_events() == [TransactionTerminated(tx.key)]


def test_ist_tu_misuse_raises_and_keeps_state(wire: W) -> None:
    tx = ist(wire)
    answer(tx, 486, 0.0)
    with pytest.raises(TransactionError, match="Completed"):
        answer(tx, 180, 0.1)
    with pytest.raises(TransactionError):
        tx.send_response(wire.request("INVITE"), 0.1)  # type: ignore[arg-type]
    with pytest.raises(TransactionError, match="CSeq method"):
        tx.send_response(response_to(wire.request("OPTIONS"), 200), 0.1)
    with pytest.raises(TransactionError, match="CSeq"):
        tx.send_response(Response(200, "OK", Headers()), 0.1)
    assert tx.state is State.COMPLETED
    assert tx.timer_deadline(Input.TIMER_H) == 32.0


def test_ist_ack_in_proceeding_is_ignored(wire: W) -> None:
    tx = ist(wire)
    tx.receive_request(wire.request("ACK"), 0.1)
    [event] = tx.drain_events()
    assert isinstance(event, MessageIgnored) and event.key == tx.key
    assert tx.state is State.PROCEEDING


@pytest.mark.parametrize("status", [None, 486])
def test_ist_transport_error_terminates(wire: W, status: int | None) -> None:
    tx = ist(wire)
    if status is not None:
        answer(tx, status, 0.0)
    tx.transport_error(0.1)
    assert tx.drain_events() == [TransportError(tx.key, wire.PEER), TransactionTerminated(tx.key)]


def test_ist_transport_error_in_accepted_is_reported_only(wire: W) -> None:
    tx = ist(wire)
    answer(tx, 200, 0.0)
    tx.transport_error(0.1)
    assert tx.drain_events() == [TransportError(tx.key, wire.PEER)]
    assert tx.state is State.ACCEPTED


def test_server_constructors_check_the_request(wire: W) -> None:
    with pytest.raises(TransactionError):
        InviteServerTransaction(wire.request("OPTIONS"), wire.PEER, 0.0)
    with pytest.raises(TransactionError):
        NonInviteServerTransaction(wire.request("INVITE"), wire.PEER, 0.0)
    with pytest.raises(TransactionError):
        NonInviteServerTransaction(wire.request("ACK"), wire.PEER, 0.0)
    request = wire.request("OPTIONS")
    request.headers.remove("Via")
    with pytest.raises(TransactionError, match="Via"):
        NonInviteServerTransaction(request, wire.PEER, 0.0)


# -- non-INVITE server transaction ----------------------------------------------------


def test_nist_full_life_unreliable(wire: W) -> None:
    tx = nist(wire)
    assert tx.next_deadline() is None  # no automatic 100 for non-INVITE (RFC 4320)
    tx.receive_request(wire.request("OPTIONS"), 0.1)
    assert sent(tx) == []  # Trying: nothing to repeat yet
    answer(tx, 100, 0.2)
    assert tx.state is State.PROCEEDING
    sent(tx)
    tx.receive_request(wire.request("OPTIONS"), 0.3)
    assert [m.split(b"\r\n")[0] for m in sent(tx)] == [b"SIP/2.0 100 Trying"]
    answer(tx, 180, 0.35)  # more provisionals are fine
    ok = answer(tx, 200, 0.4)
    sent(tx)
    assert tx.state is State.COMPLETED
    assert tx.next_deadline() == pytest.approx(32.4)  # Timer J = 64*T1
    tx.receive_request(wire.request("OPTIONS"), 1.0)
    assert sent(tx) == [bytes(ok)]
    with pytest.raises(TransactionError):
        answer(tx, 200, 1.1)
    assert tx.drain_events() == []
    tx.handle_timer(32.4)
    assert tx.drain_events() == [TransactionTerminated(tx.key)]


@pytest.mark.parametrize("status", [200, 404])
def test_nist_reliable_final_terminates_at_once(wire: W, status: int) -> None:
    tx = nist(wire, reliable=True)
    answer(tx, status, 0.0)
    assert len(sent(tx)) == 1
    assert tx.drain_events() == [TransactionTerminated(tx.key)]


def test_nist_final_from_trying(wire: W) -> None:
    tx = nist(wire)
    answer(tx, 404, 0.0)
    assert tx.state is State.COMPLETED


@pytest.mark.parametrize("final", [False, True])
def test_nist_transport_error(wire: W, final: bool) -> None:
    tx = nist(wire)
    tx.transport_error(0.0)  # Trying has sent nothing: not its error
    assert isinstance(tx.drain_events()[0], MessageIgnored)
    answer(tx, 100, 0.1)
    if final:
        answer(tx, 200, 0.2)
    tx.transport_error(0.3)
    assert tx.drain_events() == [TransportError(tx.key, wire.PEER), TransactionTerminated(tx.key)]


def test_server_states(wire: W) -> None:
    assert InviteServerTransaction.states() == {
        State.PROCEEDING, State.COMPLETED, State.CONFIRMED, State.ACCEPTED, State.TERMINATED
    }
    assert NonInviteServerTransaction.states() == {State.TRYING, State.PROCEEDING, State.COMPLETED, State.TERMINATED}
