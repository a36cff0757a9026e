"""The engine shared by the four transaction state machines (RFC 3261 §17, RFC 6026).

Theory of operation: each machine is a class whose ``TABLE`` maps ``(state, input)`` to
``(action, next_state)``.  Inputs are what can happen to a transaction: a response or
request from the network, a response from the TU, a timer firing, a transport error.  The
engine looks the pair up, runs the action (which sends, reports and arms timers) and moves
to the next state.  Reading a table is reading RFC 3261 Figures 5-8 with RFC 6026's
Accepted states; a test walks every pair.

A pair missing from the table is an input the state has no use for.  Network input then
becomes a :class:`~.events.MessageIgnored` event (peers retransmit and reorder; that is no
reason to fail), while TU input raises :class:`~sipline.sip.errors.TransactionError` (the
application asked for something RFC 3261 forbids, such as a 1xx after a final response).
Either way the state does not change, so the machine is always in a defined state.

Time: every timer is a deadline in ``_deadlines``; ``next_deadline()`` is their minimum and
``handle_timer(now)`` fires those due.  ``STATE_TIMERS`` lists the timers each state may
hold, and entering a state cancels the rest, so no stale timer can fire in the wrong state.
Retransmission intervals are re-armed from ``now`` (as aioquic does) so a late wake-up
never produces a burst.  Zero-length timers (Timer D/I/J/K on reliable transports) are
armed like others and fired by the ``handle_timer(now)`` every entry point ends with.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ..errors import TransactionError
from ..message.model import Message, Request, Response
from ..methods import INVITE
from ..timers import TimerConfig
from .events import MessageIgnored, SendMessage, TransactionEvent, TransactionTerminated
from .keys import TransactionKey

__all__ = ["State", "Input", "TU_INPUTS", "TIMER_INPUTS", "Transaction", "Action", "Table"]


class State(enum.Enum):
    """Transaction states; each machine uses the subset its table mentions."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"

    # Members are singletons compared by identity: hash them by identity too, in C.  Enum's
    # own __hash__ is a Python function, and every transition looks up (state, input).
    __hash__ = object.__hash__


class Input(enum.Enum):
    """Everything that can happen to a transaction."""

    # From the network.
    PROVISIONAL = "1xx received"
    SUCCESS = "2xx received"
    FAILURE = "300-699 received"
    REQUEST = "request retransmission"
    ACK = "ACK received"
    TRANSPORT_ERROR = "transport error"
    # From the TU.
    SEND_PROVISIONAL = "1xx from TU"
    SEND_SUCCESS = "2xx from TU"
    SEND_FAILURE = "300-699 from TU"
    # Timers (RFC 3261 Table 4, RFC 6026 §8.11; TRYING is the 200 ms rule of §17.2.1).
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TIMER_TRYING = "100 Trying timer"

    __hash__ = object.__hash__  # see State


#: Inputs that come from the TU: a missing table pair for them is misuse and raises.
TU_INPUTS = frozenset({Input.SEND_PROVISIONAL, Input.SEND_SUCCESS, Input.SEND_FAILURE})
#: Inputs that are timers.
TIMER_INPUTS = frozenset(i for i in Input if i.name.startswith("TIMER_"))

# When several timers are due at once, fire timeouts before retransmissions (a request
# about to time out need not be sent once more), then in alphabetical order.
_RETRANSMIT_TIMERS = frozenset({Input.TIMER_A, Input.TIMER_E, Input.TIMER_G, Input.TIMER_TRYING})
_TIMER_ORDER = {
    timer: (timer in _RETRANSMIT_TIMERS, i) for i, timer in enumerate(Input) if timer in TIMER_INPUTS
}

#: An action: ``(transaction, message or None, now) -> None``.
Action = Callable[[Any, "Message | None", float], None]
#: A transition table: ``(state, input) -> (action, next_state)``.
Table = Mapping[tuple[State, Input], tuple[Action, State]]


def response_input(status: int, *, from_tu: bool) -> Input:
    """Classify a response by status class into the input it is for a state machine."""
    if status < 200:
        return Input.SEND_PROVISIONAL if from_tu else Input.PROVISIONAL
    if status < 300:
        return Input.SEND_SUCCESS if from_tu else Input.SUCCESS
    return Input.SEND_FAILURE if from_tu else Input.FAILURE


class Transaction:
    """Common state, buffers and table engine of the four machines."""

    #: Human-readable machine name for messages ("INVITE client transaction").
    NAME: ClassVar[str] = "transaction"
    TABLE: ClassVar[Table] = {}
    #: Timers each state may hold; entering a state cancels the others.
    STATE_TIMERS: ClassVar[Mapping[State, frozenset[Input]]] = {}
    INITIAL: ClassVar[State] = State.TERMINATED
    #: True for the INVITE machines, which carry only INVITE; the others never carry one.
    FOR_INVITE: ClassVar[bool] = False

    @classmethod
    def _check_method(cls, request: Request) -> None:
        """Refuse a request this machine cannot carry (the other machine is the right one)."""
        if cls.FOR_INVITE and request.method != INVITE:
            raise TransactionError(f"{cls.NAME} needs an INVITE, not {request.method}")
        if not cls.FOR_INVITE and request.method == INVITE:
            raise TransactionError(f"{cls.NAME} cannot carry an INVITE")

    def __init__(
        self,
        request: Request,
        destination: object,
        *,
        key: TransactionKey,
        timers: TimerConfig,
        reliable: bool,
    ) -> None:
        #: The request that created the transaction.
        self.request = request
        #: Where requests (client) or responses (server) are sent.
        self.destination = destination
        self.key = key
        self.timers = timers
        #: Reliable transport (TCP, TLS, SCTP, WS): no retransmissions, zero wait timers.
        self.reliable = reliable
        self.state = self.INITIAL
        self._deadlines: dict[Input, float] = {}
        self._intervals: dict[Input, float] = {}
        self._output: list[SendMessage] = []
        self._events: list[TransactionEvent] = []

    @classmethod
    def states(cls) -> frozenset[State]:
        """Every state this machine can be in, read from its table."""
        found = {cls.INITIAL}
        for (state, _), (_, target) in cls.TABLE.items():
            found.add(state)
            found.add(target)
        return frozenset(found)

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key} {self.state.value}>"

    # -- buffers ----------------------------------------------------------------------

    def drain_output(self) -> list[SendMessage]:
        """Messages to hand to the transport, oldest first; the buffer is emptied."""
        out, self._output = self._output, []
        return out

    def drain_events(self) -> list[TransactionEvent]:
        """Events for the TU, oldest first; the buffer is emptied."""
        out, self._events = self._events, []
        return out

    def drain_into(self, output: list[SendMessage], events: list[TransactionEvent]) -> None:
        """Both drains, appended to the caller's buffers (the layer's, after every input)."""
        if self._output:
            output.extend(self._output)
            self._output.clear()
        if self._events:
            events.extend(self._events)
            self._events.clear()

    # -- time -------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` should next be called; None when nothing is armed."""
        return min(self._deadlines.values(), default=None)

    def timer_deadline(self, timer: Input) -> float | None:
        """Deadline of one timer, None when it is not armed (for tests and diagnostics)."""
        return self._deadlines.get(timer)

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at *now*, earliest first, each at most once per call."""
        deadlines = self._deadlines
        if not deadlines or min(deadlines.values()) > now:
            return  # the common case: every input ends here
        fired: set[Input] = set()
        while True:
            due = [
                (deadline, _TIMER_ORDER[timer], timer)
                for timer, deadline in self._deadlines.items()
                if deadline <= now and timer not in fired
            ]
            if not due:
                return
            timer = min(due)[2]
            fired.add(timer)
            del self._deadlines[timer]
            self._input(timer, None, now)

    def transport_error(self, now: float) -> None:
        """The transport failed to deliver a message of this transaction (§17.1.4, §17.2.4)."""
        self._feed(Input.TRANSPORT_ERROR, None, now)

    # -- engine -----------------------------------------------------------------------

    def _feed(self, what: Input, message: Message | None, now: float) -> None:
        self._input(what, message, now)
        self.handle_timer(now)

    def _input(self, what: Input, message: Message | None, now: float) -> None:
        row = self.TABLE.get((self.state, what))
        if row is None:
            reason = f"{self.NAME} in state {self.state.value} has no transition for {what.value}"
            if what in TU_INPUTS:
                raise TransactionError(reason)
            self._events.append(MessageIgnored(reason, message, self.key))
            return
        action, target = row
        action(self, message, now)
        self._enter(target)

    def _enter(self, target: State) -> None:
        if target is self.state:
            return
        self.state = target
        allowed = self.STATE_TIMERS.get(target, frozenset())
        for timer in [t for t in self._deadlines if t not in allowed]:
            del self._deadlines[timer]
        if target is State.TERMINATED:
            self._events.append(TransactionTerminated(self.key))

    def _arm(self, timer: Input, now: float, interval: float) -> None:
        self._deadlines[timer] = now + interval
        self._intervals[timer] = interval

    def _cancel(self, timer: Input) -> None:
        self._deadlines.pop(timer, None)

    def _send(self, message: Message) -> None:
        self._output.append(SendMessage(message, self.destination))

    def _nothing(self, message: Message | None, now: float) -> None:
        """Absorb the input (a retransmission) or just change state."""


def as_response(message: Message | None) -> Response:
    """The message an action got, known to be a response by the table row it came from."""
    assert isinstance(message, Response)
    return message


def as_request(message: Message | None) -> Request:
    """The message an action got, known to be a request by the table row it came from."""
    assert isinstance(message, Request)
    return message
