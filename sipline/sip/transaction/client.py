"""Client transactions: INVITE (RFC 3261 §17.1.1 + RFC 6026 §7.2) and non-INVITE (§17.1.2).

A client transaction makes one request reliable over an unreliable transport: it
retransmits until a response arrives or a timeout declares the peer dead, filters response
retransmissions so the TU sees each response once, and, for INVITE, sends the ACK for a
non-2xx final response itself (the ACK stays hop-by-hop, inside the transaction).

The 2xx to an INVITE is different: it is end-to-end, several may arrive from different
forks, and the UA core ACKs each.  RFC 6026 therefore replaces RFC 3261's "terminate on
2xx" with an Accepted state that passes every 2xx up for Timer M, so retransmissions are
not mistaken for strays.  The transaction never ACKs a 2xx.

Construction sends the request: a client transaction exists from the moment its request is
on the wire, so there is no "not started" state to get wrong.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import ProtocolError, TransactionError
from ..message.builders import ack_for
from ..message.model import Message, Request, Response
from ..methods import ACK
from ..timers import DEFAULT_TIMERS, TimerConfig
from .events import MessageIgnored, ResponseReceived, TransactionTimeout, TransportError
from .keys import TransactionKey, client_key
from .machine import Input, State, Table, Transaction, as_response, response_input

__all__ = ["ClientTransaction", "InviteClientTransaction", "NonInviteClientTransaction"]

_S = State
_I = Input


class ClientTransaction(Transaction):
    """What both client machines share: start-up, response intake and reporting actions."""

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
            raise TransactionError(f"a client transaction needs a request other than ACK, not {request!r}")
        if key is None:  # the layer passes the key it matched by; derive it otherwise
            try:
                key = client_key(request)
            except ProtocolError as exc:
                raise TransactionError(f"cannot send {request!r}: {exc.reason}") from None
            if key is None:
                raise TransactionError(f"{request!r} has no branch in its top Via (RFC 3261 §8.1.1.7)")
        super().__init__(request, destination, key=key, timers=timers, reliable=reliable)
        self._start(now)

    def _start(self, now: float) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def receive_response(self, response: Response, now: float) -> None:
        """Feed a response matched to this transaction (see :mod:`.keys`)."""
        try:
            # Everything the actions read, checked once here: a response without a usable
            # To or CSeq is ignored instead of failing halfway through a transition.
            response.to
            response.cseq
        except ProtocolError as exc:
            self._events.append(MessageIgnored(f"unusable response: {exc.reason}", response, self.key))
            return
        self._feed(response_input(response.status, from_tu=False), response, now)

    # -- actions shared by both machines ------------------------------------------------

    def _report(self, message: Message | None, now: float) -> None:
        """Pass the response up to the TU."""
        self._events.append(ResponseReceived(as_response(message), self.key))

    def _timeout_b(self, message: Message | None, now: float) -> None:
        self._events.append(TransactionTimeout(self.key, "B"))

    def _timeout_f(self, message: Message | None, now: float) -> None:
        self._events.append(TransactionTimeout(self.key, "F"))

    def _transport_failed(self, message: Message | None, now: float) -> None:
        self._events.append(TransportError(self.key, self.destination))


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 Figure 5 with RFC 6026 Figure 3: Calling, Proceeding, Completed, Accepted."""

    NAME = "INVITE client transaction"
    FOR_INVITE = True
    INITIAL = State.CALLING

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
        #: The ACK sent for a 300-699 response, re-sent on its retransmissions.
        self.ack: Request | None = None
        super().__init__(request, destination, now, timers=timers, reliable=reliable, key=key)

    def _start(self, now: float) -> None:
        self._send(self.request)
        if not self.reliable:
            self._arm(_I.TIMER_A, now, self.timers.t1)
        self._arm(_I.TIMER_B, now, self.timers.timer_b)

    # -- actions ----------------------------------------------------------------------

    def _retransmit_a(self, message: Message | None, now: float) -> None:
        """Timer A: resend and double the interval (§17.1.1.2; no T2 cap for INVITE)."""
        self._send(self.request)
        self._arm(_I.TIMER_A, now, 2 * self._intervals[_I.TIMER_A])

    def _accept(self, message: Message | None, now: float) -> None:
        """First 2xx: pass it up and wait Timer M for more (RFC 6026 §7.2)."""
        self._report(message, now)
        self._arm(_I.TIMER_M, now, self.timers.timer_m)

    def _complete(self, message: Message | None, now: float) -> None:
        """300-699: ACK it, pass it up, and linger Timer D to re-ACK retransmissions."""
        response = as_response(message)
        self.ack = ack_for(self.request, response)
        self._send(self.ack)
        self._report(message, now)
        self._arm(_I.TIMER_D, now, 0.0 if self.reliable else self.timers.timer_d)

    def _resend_ack(self, message: Message | None, now: float) -> None:
        assert self.ack is not None
        self._send(self.ack)

    _nothing = Transaction._nothing
    _report = ClientTransaction._report
    _timeout_b = ClientTransaction._timeout_b
    _transport_failed = ClientTransaction._transport_failed

    TABLE: ClassVar[Table] = {
        (_S.CALLING, _I.TIMER_A): (_retransmit_a, _S.CALLING),
        (_S.CALLING, _I.TIMER_B): (_timeout_b, _S.TERMINATED),
        (_S.CALLING, _I.TRANSPORT_ERROR): (_transport_failed, _S.TERMINATED),
        (_S.CALLING, _I.PROVISIONAL): (_report, _S.PROCEEDING),
        (_S.CALLING, _I.SUCCESS): (_accept, _S.ACCEPTED),
        (_S.CALLING, _I.FAILURE): (_complete, _S.COMPLETED),
        (_S.PROCEEDING, _I.PROVISIONAL): (_report, _S.PROCEEDING),
        (_S.PROCEEDING, _I.SUCCESS): (_accept, _S.ACCEPTED),
        (_S.PROCEEDING, _I.FAILURE): (_complete, _S.COMPLETED),
        (_S.COMPLETED, _I.FAILURE): (_resend_ack, _S.COMPLETED),
        (_S.COMPLETED, _I.TRANSPORT_ERROR): (_transport_failed, _S.TERMINATED),
        (_S.COMPLETED, _I.TIMER_D): (_nothing, _S.TERMINATED),
        (_S.ACCEPTED, _I.SUCCESS): (_report, _S.ACCEPTED),
        (_S.ACCEPTED, _I.TIMER_M): (_nothing, _S.TERMINATED),
    }
    STATE_TIMERS = {
        _S.CALLING: frozenset({_I.TIMER_A, _I.TIMER_B}),
        _S.COMPLETED: frozenset({_I.TIMER_D}),
        _S.ACCEPTED: frozenset({_I.TIMER_M}),
    }


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 Figure 6: Trying, Proceeding, Completed."""

    NAME = "non-INVITE client transaction"
    INITIAL = State.TRYING

    def _start(self, now: float) -> None:
        self._send(self.request)
        if not self.reliable:
            self._arm(_I.TIMER_E, now, self.timers.t1)
        self._arm(_I.TIMER_F, now, self.timers.timer_f)

    # -- actions ----------------------------------------------------------------------

    def _retransmit_trying(self, message: Message | None, now: float) -> None:
        """Timer E in Trying: resend, double the interval up to T2 (§17.1.2.2)."""
        self._send(self.request)
        self._arm(_I.TIMER_E, now, min(2 * self._intervals[_I.TIMER_E], self.timers.t2))

    def _retransmit_proceeding(self, message: Message | None, now: float) -> None:
        """Timer E in Proceeding: resend every T2 (the server is alive, no need to hurry)."""
        self._send(self.request)
        self._arm(_I.TIMER_E, now, self.timers.t2)

    def _complete(self, message: Message | None, now: float) -> None:
        """Final response: pass it up, then absorb retransmissions for Timer K."""
        self._report(message, now)
        self._arm(_I.TIMER_K, now, 0.0 if self.reliable else self.timers.t4)

    _nothing = Transaction._nothing
    _report = ClientTransaction._report
    _timeout_f = ClientTransaction._timeout_f
    _transport_failed = ClientTransaction._transport_failed

    TABLE: ClassVar[Table] = {
        (_S.TRYING, _I.TIMER_E): (_retransmit_trying, _S.TRYING),
        (_S.TRYING, _I.TIMER_F): (_timeout_f, _S.TERMINATED),
        (_S.TRYING, _I.TRANSPORT_ERROR): (_transport_failed, _S.TERMINATED),
        (_S.TRYING, _I.PROVISIONAL): (_report, _S.PROCEEDING),
        (_S.TRYING, _I.SUCCESS): (_complete, _S.COMPLETED),
        (_S.TRYING, _I.FAILURE): (_complete, _S.COMPLETED),
        (_S.PROCEEDING, _I.TIMER_E): (_retransmit_proceeding, _S.PROCEEDING),
        (_S.PROCEEDING, _I.TIMER_F): (_timeout_f, _S.TERMINATED),
        (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_transport_failed, _S.TERMINATED),
        (_S.PROCEEDING, _I.PROVISIONAL): (_report, _S.PROCEEDING),
        (_S.PROCEEDING, _I.SUCCESS): (_complete, _S.COMPLETED),
        (_S.PROCEEDING, _I.FAILURE): (_complete, _S.COMPLETED),
        (_S.COMPLETED, _I.PROVISIONAL): (_nothing, _S.COMPLETED),
        (_S.COMPLETED, _I.SUCCESS): (_nothing, _S.COMPLETED),
        (_S.COMPLETED, _I.FAILURE): (_nothing, _S.COMPLETED),
        (_S.COMPLETED, _I.TIMER_K): (_nothing, _S.TERMINATED),
    }
    STATE_TIMERS = {
        _S.TRYING: frozenset({_I.TIMER_E, _I.TIMER_F}),
        _S.PROCEEDING: frozenset({_I.TIMER_E, _I.TIMER_F}),
        _S.COMPLETED: frozenset({_I.TIMER_K}),
    }
