"""Every (state, input) pair of every machine, and random walks through them.

The tables are the specification, so the tests read them: each row must do what it says,
each missing pair must raise (TU input) or be logged and ignored (network input) without
moving the machine, and no sequence of inputs may leave the defined states or raise
anything but TransactionError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipline.sip.errors import TransactionError
from sipline.sip.ids import CountingIdSource
from sipline.sip.message.builders import cancel_for, response_to
from sipline.sip.timers import TimerConfig
from sipline.sip.transaction import (
    Input,
    InviteClientTransaction,
    InviteServerTransaction,
    MessageIgnored,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    RequestReceived,
    SendMessage,
    State,
    Transaction,
    TransactionLayer,
)
from sipline.sip.transaction.machine import TIMER_INPUTS, TU_INPUTS

W = Any
Machine = type[Transaction]
CLIENT_INPUTS = [Input.PROVISIONAL, Input.SUCCESS, Input.FAILURE, Input.TRANSPORT_ERROR]
SERVER_INPUTS = [Input.REQUEST, Input.ACK, Input.TRANSPORT_ERROR, *sorted(TU_INPUTS, key=lambda i: i.name)]
MACHINES: list[Machine] = [
    InviteClientTransaction,
    NonInviteClientTransaction,
    InviteServerTransaction,
    NonInviteServerTransaction,
]
_STATUS = {Input.PROVISIONAL: 180, Input.SUCCESS: 200, Input.FAILURE: 486,
           Input.SEND_PROVISIONAL: 180, Input.SEND_SUCCESS: 200, Input.SEND_FAILURE: 486}


def method_of(cls: Machine) -> str:
    return "INVITE" if cls in (InviteClientTransaction, InviteServerTransaction) else "OPTIONS"


def is_client(cls: Machine) -> bool:
    return cls in (InviteClientTransaction, NonInviteClientTransaction)


def make(wire: W, cls: Machine, *, reliable: bool = False, now: float = 0.0) -> Any:
    factory: Any = cls  # the concrete machines all take (request, destination, now)
    return factory(wire.request(method_of(cls)), wire.PEER, now, reliable=reliable)


def feed(wire: W, tx: Any, what: Input, now: float) -> None:
    """Deliver one input the way the network, the TU or the clock would."""
    method = tx.request.method
    if what in (Input.PROVISIONAL, Input.SUCCESS, Input.FAILURE):
        tx.receive_response(wire.response(_STATUS[what], method=method), now)
    elif what is Input.REQUEST:
        tx.receive_request(wire.request(method), now)
    elif what is Input.ACK:
        tx.receive_request(wire.request("ACK", to_tag="a6c85cf"), now)
    elif what is Input.TRANSPORT_ERROR:
        tx.transport_error(now)
    elif what in TU_INPUTS:
        tx.send_response(response_to(tx.request, _STATUS[what], to_tag="a6c85cf"), now)
    else:  # a timer: fire exactly this one
        del tx._deadlines[what]
        tx._input(what, None, now)


# Input sequences that bring a fresh, unreliable machine to each of its states.
RECIPES: dict[Machine, dict[State, list[Input]]] = {
    InviteClientTransaction: {
        State.CALLING: [],
        State.PROCEEDING: [Input.PROVISIONAL],
        State.COMPLETED: [Input.FAILURE],
        State.ACCEPTED: [Input.SUCCESS],
        State.TERMINATED: [Input.TRANSPORT_ERROR],
    },
    NonInviteClientTransaction: {
        State.TRYING: [],
        State.PROCEEDING: [Input.PROVISIONAL],
        State.COMPLETED: [Input.SUCCESS],
        State.TERMINATED: [Input.TRANSPORT_ERROR],
    },
    InviteServerTransaction: {
        State.PROCEEDING: [],
        State.COMPLETED: [Input.SEND_FAILURE],
        State.CONFIRMED: [Input.SEND_FAILURE, Input.ACK],
        State.ACCEPTED: [Input.SEND_SUCCESS],
        State.TERMINATED: [Input.TRANSPORT_ERROR],
    },
    NonInviteServerTransaction: {
        State.TRYING: [],
        State.PROCEEDING: [Input.SEND_PROVISIONAL],
        State.COMPLETED: [Input.SEND_SUCCESS],
        State.TERMINATED: [Input.SEND_PROVISIONAL, Input.TRANSPORT_ERROR],
    },
}

PAIRS = [
    (cls, state, what)
    for cls in MACHINES
    for state in sorted(cls.states(), key=lambda s: s.name)
    for what in (CLIENT_INPUTS if is_client(cls) else SERVER_INPUTS) + sorted(TIMER_INPUTS, key=lambda i: i.name)
]


def test_recipes_cover_every_state() -> None:
    for cls in MACHINES:
        assert set(RECIPES[cls]) == cls.states()


@pytest.mark.parametrize(("cls", "state", "what"), PAIRS, ids=lambda v: getattr(v, "name", getattr(v, "__name__", "")))
def test_every_pair(wire: W, cls: Machine, state: State, what: Input) -> None:
    tx = make(wire, cls)
    for step in RECIPES[cls][state]:
        feed(wire, tx, step, 0.0)
    assert tx.state is state
    tx.drain_events()
    row = cls.TABLE.get((state, what))
    if what in TIMER_INPUTS:
        # A timer can only fire where it can be armed, and every armable timer has a row.
        assert (tx.timer_deadline(what) is not None) == (row is not None)
        if row is None:
            assert what not in cls.STATE_TIMERS.get(state, frozenset())
            return
    if row is not None:
        feed(wire, tx, what, 0.0)
        assert tx.state is row[1]
    elif what in TU_INPUTS:
        with pytest.raises(TransactionError, match=state.value):
            feed(wire, tx, what, 0.0)
        assert tx.state is state
    else:
        feed(wire, tx, what, 0.0)
        assert tx.state is state
        events = tx.drain_events()
        assert isinstance(events[-1], MessageIgnored) and events[-1].key == tx.key


@pytest.mark.parametrize("cls", MACHINES)
def test_tables_are_consistent(cls: Machine) -> None:
    allowed = CLIENT_INPUTS if is_client(cls) else SERVER_INPUTS
    for (state, what), (action, _) in cls.TABLE.items():
        assert state is not State.TERMINATED  # nothing leaves Terminated
        assert what in allowed or what in TIMER_INPUTS
        assert callable(action)
        if what in TIMER_INPUTS:
            assert what in cls.STATE_TIMERS[state]
    for state, timers in cls.STATE_TIMERS.items():
        for timer in timers:
            assert (state, timer) in cls.TABLE


# -- random walks ---------------------------------------------------------------------

_STEP = st.one_of(
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=20.0)),
    st.tuples(st.just("input"), st.sampled_from(CLIENT_INPUTS + SERVER_INPUTS)),
)


def _walk(wire: W, tx: Any, cls: Machine, steps: list[tuple[str, Any]]) -> None:
    now = 0.0
    allowed = CLIENT_INPUTS if is_client(cls) else SERVER_INPUTS
    states = cls.states()
    for kind, value in steps:
        if kind == "advance":
            now += value
            tx.handle_timer(now)
        elif value in allowed:
            try:
                feed(wire, tx, value, now)
            except TransactionError:
                assert value in TU_INPUTS
        assert tx.state in states
        assert all(isinstance(s, SendMessage) for s in tx.drain_output())
        tx.drain_events()
        deadline = tx.next_deadline()
        assert deadline is None or deadline >= now
        if tx.state is State.TERMINATED:
            assert deadline is None


@pytest.mark.parametrize("cls", MACHINES)
@pytest.mark.parametrize("reliable", [False, True])
@settings(max_examples=150, deadline=None)
@given(steps=st.lists(_STEP, max_size=25))
def test_random_walks_stay_defined(wire: W, cls: Machine, reliable: bool, steps: list[tuple[str, Any]]) -> None:
    _walk(wire, make(wire, cls, reliable=reliable), cls, steps)


# -- the layer, fed random traffic ----------------------------------------------------


def _pool(wire: W) -> list[Callable[[], Any]]:
    legacy = "SIP/2.0/UDP pc33.atlanta.example.com"

    def old(method: str, **kw: Any) -> Any:
        msg = wire.request(method, **kw)
        msg.headers.set("Via", legacy)
        return msg

    def broken() -> Any:
        msg = wire.request("OPTIONS")
        msg.headers.remove("CSeq")
        return msg

    return [
        lambda: wire.request("INVITE"),
        lambda: wire.request("ACK", to_tag="a6c85cf"),
        lambda: wire.request("ACK", branch="z9hG4bKack", to_tag="a6c85cf"),
        lambda: wire.request("CANCEL"),
        lambda: wire.request("OPTIONS", branch="z9hG4bKopt"),
        lambda: cancel_for(wire.request("INVITE")),
        lambda: old("INVITE"),
        lambda: old("ACK", to_tag="a6c85cf"),
        lambda: old("CANCEL"),
        broken,
        lambda: wire.response(180),
        lambda: wire.response(200),
        lambda: wire.response(486),
        lambda: wire.response(200, method="CANCEL"),
        lambda: wire.response(200, method="OPTIONS", branch="z9hG4bKopt"),
    ]


_LAYER_STEP = st.one_of(
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=40.0)),
    st.tuples(st.just("receive"), st.integers(min_value=0, max_value=14)),
    st.tuples(st.just("send"), st.integers(min_value=0, max_value=14)),
    st.tuples(st.just("answer"), st.sampled_from([100, 180, 200, 487, 603])),
    st.tuples(st.just("error"), st.just(0)),
)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(_LAYER_STEP, max_size=30), reliable=st.booleans())
def test_layer_random_traffic(wire: W, steps: list[tuple[str, Any]], reliable: bool) -> None:
    tl = TransactionLayer(TimerConfig(), CountingIdSource(), reliable=lambda _: reliable, max_transactions=4)
    pool = _pool(wire)
    now = 0.0
    servers: list[Any] = []
    for kind, value in steps:
        if kind == "advance":
            now += value
            tl.handle_timer(now)
        elif kind == "receive":
            tl.receive(pool[value](), wire.PEER, now)
        elif kind == "send":
            message = pool[value]()
            try:
                tl.send_request(message, wire.PEER, now)
            except TransactionError:
                pass
        elif kind == "answer" and servers:
            key, request = servers[-1]
            try:
                tl.send_response(key, response_to(request, value, to_tag="a6c85cf"), now)
            except TransactionError:
                pass
        elif kind == "error":
            tl.transport_error(wire.PEER, now)
        for event in tl.drain_events():
            if isinstance(event, RequestReceived):
                servers.append((event.key, event.request))
        assert all(isinstance(s, SendMessage) for s in tl.drain_output())
        assert len(tl) <= 4
        for tx in [*tl._client.values(), *tl._server.values()]:
            assert tx.state in type(tx).states() and tx.state is not State.TERMINATED
        deadline = tl.next_deadline()
        assert deadline is None or deadline >= now
