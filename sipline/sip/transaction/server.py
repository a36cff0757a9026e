"""Server transactions: INVITE (RFC 3261 §17.2.1 + RFC 6026 §8) and non-INVITE (§17.2.2).

A server transaction is the mirror of a client one: it absorbs request retransmissions
(answering each with the last response, which is how a lost response gets repaired), and
for INVITE it retransmits a non-2xx final response itself until the ACK arrives.

Two duties are easy to miss and are therefore timers here:

* The 100 (Trying) of §17.2.1: unless the TU answers within 200 ms, the transaction sends
  one, so the client stops retransmitting the INVITE.  ``trying_delay`` sets the delay
  (None disables it, for a TU that always answers at once; 0 sends it immediately).
* RFC 6026's Accepted state: after a 2xx the transaction stays for Timer L, absorbing INVITE
  retransmissions (which would otherwise look like a new call) and passing the TU's own 2xx
  retransmissions to the transport.  The transaction never retransmits a 2xx itself: that
  is the UA core's job (§13.3.1.4).
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import ProtocolError, TransactionError
from ..message.builders import response_to
from ..message.model import Message, Request, Response
from ..methods import ACK
from ..timers import DEFAULT_TIMERS, TimerConfig
from .events import AckReceived, TransactionTimeout, TransportError
from .keys import TransactionKey, server_key
from .machine import Input, State, Table, Transaction, as_request, as_response, response_input

__all__ = ["ServerTransaction", "InviteServerTransaction", "NonInviteServerTransaction", "DEFAULT_TRYING_DELAY"]

#: RFC 3261 §17.2.1: send 100 (Trying) unless the TU answers within 200 ms.
DEFAULT_TRYING_DELAY = 0.2

_S = State
_I = Input


class ServerTransaction(Transaction):
    """What both server machines share: creation, request intake and the TU's responses."""

    def __init__(
        self,
        request: Request,
        destination: object,
        now: float,
        *,
        timers: TimerConfig = DEFAULT_TIMERS,
        reliable: bool = False,
        key: TransactionKey | None = None,
    ) -> None:
        if isinstance(request, Request):
            self._check_method(request)
        if not isinstance(request, Request) or request.method == ACK:
            raise TransactionError(f"a server transaction needs a request other than ACK, not {request!r}")
        if key is None:
            try:
                key = server_key(request)
            except ProtocolError as exc:
                raise TransactionError(f"cannot match {request!r}: {exc.reason}") from None
        #: The last response sent, re-sent when the request is retransmitted.
        self.last_response: Response | None = None
        super().__init__(request, destination, key=key, timers=timers, reliable=reliable)
        self._start(now)
        self.handle_timer(now)

    def _start(self, now: float) -> None:
        """Arm what runs from creation on; nothing for non-INVITE."""

    def receive_request(self, request: Request, now: float) -> None:
        """Feed a retransmission of the request, or an ACK, matched to this transaction."""
        self._feed(_I.ACK if request.method == ACK else _I.REQUEST, request, now)

    def send_response(self, response: Response, now: float) -> None:
        """Send the TU's response; raises TransactionError if the state forbids it."""
        if not isinstance(response, Response):
            raise TransactionError(f"send_response needs a Response, not {type(response).__name__}")
        try:
            method = response.cseq.method
        except ProtocolError as exc:
            raise TransactionError(f"response has no usable CSeq: {exc.reason}") from None
        if method != self.request.method:
            raise TransactionError(f"response CSeq method {method} does not match {self.request.method}")
        self._feed(response_input(response.status, from_tu=True), response, now)

    # -- actions shared by both machines ------------------------------------------------

    def _respond(self, message: Message | None, now: float) -> None:
        """Send the TU's response and remember it for request retransmissions."""
        response = as_response(message)
        self.last_response = response
        self._send(response)

    def _resend_last(self, message: Message | None, now: float) -> None:
        """Request retransmission: the response was lost, send it again (§17.2.1, §17.2.2)."""
        assert self.last_response is not None  # every state using this row has answered
        self._send(self.last_response)

    def _transport_failed(self, message: Message | None, now: float) -> None:
        self._events.append(TransportError(self.key, self.destination))


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 Figure 7 with RFC 6026 Figure 5: Proceeding, Completed, Confirmed, Accepted."""

    NAME = "INVITE server transaction"
    FOR_INVITE = True
    INITIAL = State.PROCEEDING

    def __init__(
        self,
        request: Request,
        destination: object,
        now: float,
        *,
        timers: TimerConfig = DEFAULT_TIMERS,
        reliable: bool = False,
        key: TransactionKey | None = None,
        trying_delay: float | None = DEFAULT_TRYING_DELAY,
    ) -> None:
        self.trying_delay = trying_delay
        super().__init__(request, destination, now, timers=timers, reliable=reliable, key=key)

    def _start(self, now: float) -> None:
        if self.trying_delay is not None:
            self._arm(_I.TIMER_TRYING, now, self.trying_delay)

    # -- actions ----------------------------------------------------------------------

    def _send_trying(self, message: Message | None, now: float) -> None:
        """The TU has been silent for ``trying_delay``: quench the client's retransmissions."""
        self._cancel(_I.TIMER_TRYING)
        self._respond(response_to(self.request, 100), now)

    def _repeat_provisional(self, message: Message | None, now: float) -> None:
        """INVITE retransmission in Proceeding: repeat the last 1xx, or send 100 if none yet."""
        if self.last_response is None:
            self._send_trying(message, now)
        else:
            self._send(self.last_response)

    def _provisional(self, message: Message | None, now: float) -> None:
        self._cancel(_I.TIMER_TRYING)
        self._respond(message, now)

    def _accept(self, message: Message | None, now: float) -> None:
        """2xx from the TU: send it and absorb INVITE retransmissions for Timer L."""
        self._respond(message, now)
        self._arm(_I.TIMER_L, now, self.timers.timer_l)

    def _reject(self, message: Message | None, now: float) -> None:
        """300-699 from the TU: send it, retransmit on Timer G until ACK or Timer H."""
        self._respond(message, now)
        if not self.reliable:
            self._arm(_I.TIMER_G, now, self.timers.t1)
        self._arm(_I.TIMER_H, now, self.timers.timer_h)

    def _retransmit_g(self, message: Message | None, now: float) -> None:
        self._resend_last(message, now)
        self._arm(_I.TIMER_G, now, min(2 * self._intervals[_I.TIMER_G], self.timers.t2))

    def _timeout_h(self, message: Message | None, now: float) -> None:
        """No ACK within Timer H: the client is gone (§17.2.1)."""
        self._events.append(TransactionTimeout(self.key, "H"))

    def _confirm(self, message: Message | None, now: float) -> None:
        """ACK received: absorb further ACKs for Timer I."""
        self._arm(_I.TIMER_I, now, 0.0 if self.reliable else self.timers.t4)

    def _pass_ack(self, message: Message | None, now: float) -> None:
        """An ACK in Accepted acknowledges the 2xx: the dialog's business (RFC 6026 §8.7)."""
        self._events.append(AckReceived(as_request(message), self.key))

    _nothing = Transaction._nothing
    _respond = ServerTransaction._respond
    _resend_last = ServerTransaction._resend_last
    _transport_failed = ServerTransaction._transport_failed

    TABLE: ClassVar[Table] = {
        (_S.PROCEEDING, _I.TIMER_TRYING): (_send_trying, _S.PROCEEDING),
        (_S.PROCEEDING, _I.REQUEST): (_repeat_provisional, _S.PROCEEDING),
        (_S.PROCEEDING, _I.SEND_PROVISIONAL): (_provisional, _S.PROCEEDING),
        (_S.PROCEEDING, _I.SEND_SUCCESS): (_accept, _S.ACCEPTED),
        (_S.PROCEEDING, _I.SEND_FAILURE): (_reject, _S.COMPLETED),
        (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_transport_failed, _S.TERMINATED),
        (_S.COMPLETED, _I.REQUEST): (_resend_last, _S.COMPLETED),
        (_S.COMPLETED, _I.TIMER_G): (_retransmit_g, _S.COMPLETED),
        (_S.COMPLETED, _I.TIMER_H): (_timeout_h, _S.TERMINATED),
        (_S.COMPLETED, _I.ACK): (_confirm, _S.CONFIRMED),
        (_S.COMPLETED, _I.TRANSPORT_ERROR): (_transport_failed, _S.TERMINATED),
        (_S.CONFIRMED, _I.REQUEST): (_nothing, _S.CONFIRMED),
        (_S.CONFIRMED, _I.ACK): (_nothing, _S.CONFIRMED),
        (_S.CONFIRMED, _I.TIMER_I): (_nothing, _S.TERMINATED),
        (_S.ACCEPTED, _I.REQUEST): (_nothing, _S.ACCEPTED),
        (_S.ACCEPTED, _I.ACK): (_pass_ack, _S.ACCEPTED),
        (_S.ACCEPTED, _I.SEND_SUCCESS): (_respond, _S.ACCEPTED),
        # RFC 6026 is silent here; the TU is retransmitting the 2xx, so it hears of the
        # failure, and the transaction stays to absorb INVITE retransmissions.
        (_S.ACCEPTED, _I.TRANSPORT_ERROR): (_transport_failed, _S.ACCEPTED),
        (_S.ACCEPTED, _I.TIMER_L): (_nothing, _S.TERMINATED),
    }
    STATE_TIMERS = {
        _S.PROCEEDING: frozenset({_I.TIMER_TRYING}),
        _S.COMPLETED: frozenset({_I.TIMER_G, _I.TIMER_H}),
        _S.CONFIRMED: frozenset({_I.TIMER_I}),
        _S.ACCEPTED: frozenset({_I.TIMER_L}),
    }


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 Figure 8: Trying, Proceeding, Completed."""

    NAME = "non-INVITE server transaction"
    INITIAL = State.TRYING

    def _complete(self, message: Message | None, now: float) -> None:
        """Final response: send it and answer retransmissions with it for Timer J."""
        self._respond(message, now)
        self._arm(_I.TIMER_J, now, 0.0 if self.reliable else self.timers.timer_j)

    _nothing = Transaction._nothing
    _respond = ServerTransaction._respond
    _resend_last = ServerTransaction._resend_last
    _transport_failed = ServerTransaction._transport_failed

    TABLE: ClassVar[Table] = {
        (_S.TRYING, _I.REQUEST): (_nothing, _S.TRYING),
        (_S.TRYING, _I.SEND_PROVISIONAL): (_respond, _S.PROCEEDING),
        (_S.TRYING, _I.SEND_SUCCESS): (_complete, _S.COMPLETED),
        (_S.TRYING, _I.SEND_FAILURE): (_complete, _S.COMPLETED),
        (_S.PROCEEDING, _I.REQUEST): (_resend_last, _S.PROCEEDING),
        (_S.PROCEEDING, _I.SEND_PROVISIONAL): (_respond, _S.PROCEEDING),
        (_S.PROCEEDING, _I.SEND_SUCCESS): (_complete, _S.COMPLETED),
        (_S.PROCEEDING, _I.SEND_FAILURE): (_complete, _S.COMPLETED),
        (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_transport_failed, _S.TERMINATED),
        (_S.COMPLETED, _I.REQUEST): (_resend_last, _S.COMPLETED),
        (_S.COMPLETED, _I.TIMER_J): (_nothing, _S.TERMINATED),
        (_S.COMPLETED, _I.TRANSPORT_ERROR): (_transport_failed, _S.TERMINATED),
    }
    STATE_TIMERS = {
        _S.COMPLETED: frozenset({_I.TIMER_J}),
    }
