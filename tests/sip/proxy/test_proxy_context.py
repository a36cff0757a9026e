"""The forking response context (RFC 3261 §16.7): scenarios as tables, and a random walk.

Each scenario is a list of ``(input, expected actions)`` steps; actions are summarised as
short tuples so a table reads like a call flow:

    ("fwd", 0, "sip:a@x")   ForwardRequest of branch 0     ("cancel", 0)  CancelBranch
    ("up", 180)             SendUpstream of a 180          ("done",)      Done
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipline.sip.errors import UsageError
from sipline.sip.message import Request, parse_message, parse_uri
from sipline.sip.message.builders import response_to
from sipline.sip.message.model import Response
from sipline.sip.proxy import (
    BranchState,
    CancelBranch,
    ContextState,
    Done,
    ForkTarget,
    ForwardRequest,
    ProxyAction,
    ResponseContext,
    SendUpstream,
    prepare_forward,
)
from sipline.sip.timers import TimerConfig

TIMERS = TimerConfig(t1=0.5, timer_c=10.0)  # timer B (CANCEL bound) = 32 s


def make_request(method: str = "INVITE", uri: str = "sip:bob@example.com") -> Request:
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP ua.example.org;branch=z9hG4bKua1\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.org>;tag=f1\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: c1@ua\r\n"
        f"CSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


def summary(action: ProxyAction) -> tuple[Any, ...]:
    if isinstance(action, ForwardRequest):
        return ("fwd", action.branch_id, str(action.target))
    if isinstance(action, CancelBranch):
        return ("cancel", action.branch_id)
    if isinstance(action, SendUpstream):
        return ("up", action.response.status)
    assert isinstance(action, Done)
    return ("done",)


class Fork:
    """Drives one context the way the proxy role does, with a fake clock."""

    def __init__(self, targets: list[ForkTarget | str], method: str = "INVITE", uri: str = "sip:bob@example.com",
                 **kwargs: Any) -> None:
        self.request = make_request(method, uri)
        parsed = [t if isinstance(t, ForkTarget) else parse_uri(t) for t in targets]
        self.ctx = ResponseContext(self.request, parsed, to_tag="local", timers=TIMERS, **kwargs)
        self.now = 0.0
        self.targets: dict[int, str] = {}
        self.log: list[ProxyAction] = []

    def _drain(self) -> list[ProxyAction]:
        actions = self.ctx.drain_actions()
        for a in actions:
            if isinstance(a, ForwardRequest):
                self.targets[a.branch_id] = str(a.target)
        self.log.extend(actions)
        return actions

    def response(self, branch: int, status: int, headers: tuple[tuple[str, str], ...] = ()) -> Response:
        sent = prepare_forward(self.request, self.targets[branch], via="SIP/2.0/UDP p.example.com",
                               branch=f"z9hG4bKbr{branch}")
        return response_to(sent, status, to_tag=f"t{branch}", headers=headers)

    def step(self, event: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        kind = event[0]
        if kind == "start":
            self.ctx.start(self.now)
        elif kind == "resp":
            _, branch, status, *rest = event
            self.ctx.on_response(branch, self.response(branch, status, *rest), self.now)
        elif kind == "error":
            self.ctx.on_branch_error(event[1], self.now, timeout=event[2])
        elif kind == "cancel":
            self.ctx.on_cancel(self.now)
        elif kind == "time":
            self.now = event[1]
            self.ctx.handle_timer(self.now)
        else:  # pragma: no cover
            raise AssertionError(kind)
        return [summary(a) for a in self._drain()]


A, B, C = "sip:a@192.0.2.1", "sip:b@192.0.2.2", "sip:c@192.0.2.3"
START_AB = (("start",), [("fwd", 0, A), ("fwd", 1, B)])
START_ABC = (("start",), [("fwd", 0, A), ("fwd", 1, B), ("fwd", 2, C)])

SCENARIOS: dict[str, tuple[list[Any], dict[str, Any], list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]]] = {
    "180 then 200 from another branch cancels the ringing one": ([A, B], {}, [
        START_AB,
        (("resp", 0, 100), []),
        (("resp", 0, 180), [("up", 180)]),
        (("resp", 1, 200), [("up", 200), ("cancel", 0)]),
        (("resp", 0, 180), []),  # after a final, provisionals stay here
        (("resp", 0, 487), [("done",)]),
    ]),
    "every 2xx is forwarded, even after another": ([A, B], {}, [
        START_AB,
        (("resp", 0, 200), [("up", 200)]),
        (("resp", 1, 200), [("up", 200), ("done",)]),
    ]),
    "486 and 404: 486 is preferred": ([A, B], {}, [
        START_AB,
        (("resp", 0, 404), []),
        (("resp", 1, 486), [("up", 486), ("done",)]),
    ]),
    "challenges beat other 4xx": ([A, B], {}, [
        START_AB,
        (("resp", 0, 486), []),
        (("resp", 1, 407), [("up", 407), ("done",)]),
    ]),
    "lowest class wins: 3xx over 4xx": ([A, B], {}, [
        START_AB,
        (("resp", 0, 404), []),
        (("resp", 1, 302), [("up", 302), ("done",)]),
    ]),
    "4xx over 5xx": ([A, B], {}, [
        START_AB,
        (("resp", 0, 500), []),
        (("resp", 1, 480), [("up", 480), ("done",)]),
    ]),
    "6xx cancels the others and wins when they end": ([A, B, C], {}, [
        START_ABC,
        (("resp", 0, 180), [("up", 180)]),
        (("resp", 1, 603), [("cancel", 0)]),
        (("resp", 2, 100), [("cancel", 2)]),  # CANCEL waits for a provisional (§9.1)
        (("resp", 0, 487), []),
        (("resp", 2, 487), [("up", 603), ("done",)]),
    ]),
    "6xx over 4xx regardless of order": ([A, B], {}, [
        START_AB,
        (("resp", 0, 404), []),
        (("resp", 1, 600), [("up", 600), ("done",)]),
    ]),
    "a 2xx overtakes a pending 6xx": ([A, B], {}, [
        START_AB,
        (("resp", 0, 180), [("up", 180)]),
        (("resp", 1, 603), [("cancel", 0)]),
        (("resp", 0, 200), [("up", 200), ("done",)]),
    ]),
    "all 503 become 500": ([A, B], {}, [
        START_AB,
        (("resp", 0, 503), []),
        (("resp", 1, 503), [("up", 500), ("done",)]),
    ]),
    "a 5xx other than 503 is preferred to it": ([A, B], {}, [
        START_AB,
        (("resp", 0, 503), []),
        (("resp", 1, 504), [("up", 504), ("done",)]),
    ]),
    "transport error acts as 503 (sent as 500), timeout as 408": ([A, B], {}, [
        START_AB,
        (("error", 0, False), []),
        (("error", 1, True), [("up", 408), ("done",)]),
    ]),
    "transport errors only: 500": ([A], {}, [
        (("start",), [("fwd", 0, A)]),
        (("error", 0, False), [("up", 500), ("done",)]),
    ]),
    "timer C without provisional acts as 408": ([A], {}, [
        (("start",), [("fwd", 0, A)]),
        (("time", 9.9), []),
        (("time", 10.0), [("up", 408), ("done",)]),
        (("resp", 0, 404), []),  # nothing after Done
    ]),
    "timer C with provisional cancels; the 487 is reported as 408": ([A], {}, [
        (("start",), [("fwd", 0, A)]),
        (("time", 5.0), []),
        (("resp", 0, 180), [("up", 180)]),  # resets timer C to 15
        (("time", 10.0), []),
        (("time", 15.0), [("cancel", 0)]),
        (("resp", 0, 487), [("up", 408), ("done",)]),
    ]),
    "100 does not reset timer C": ([A], {}, [
        (("start",), [("fwd", 0, A)]),
        (("time", 5.0), []),
        (("resp", 0, 100), []),
        (("time", 10.0), [("cancel", 0)]),
        (("time", 41.9), []),
        (("time", 42.0), [("up", 408), ("done",)]),  # no answer to the CANCEL: 64*T1 later
    ]),
    "caller CANCEL: cancel pending branches, then 487": ([A, B], {}, [
        START_AB,
        (("resp", 0, 180), [("up", 180)]),
        (("cancel",), [("cancel", 0)]),
        (("resp", 1, 183), [("cancel", 1)]),
        (("cancel",), []),
        (("resp", 0, 487), []),
        (("resp", 1, 487), [("up", 487), ("done",)]),
    ]),
    "caller CANCEL loses against a 2xx": ([A], {}, [
        (("start",), [("fwd", 0, A)]),
        (("resp", 0, 180), [("up", 180)]),
        (("cancel",), [("cancel", 0)]),
        (("resp", 0, 200), [("up", 200), ("done",)]),
    ]),
    "CANCEL after the final response has no effect": ([A, B], {}, [
        START_AB,
        (("resp", 0, 200), [("up", 200)]),
        (("cancel",), []),
        (("resp", 1, 487), [("done",)]),
    ]),
    "sequential forking by q groups": ([ForkTarget(parse_uri(A), 1.0), ForkTarget(parse_uri(B), 0.5),
                                         ForkTarget(parse_uri(C), 0.5)], {"parallel": False}, [
        (("start",), [("fwd", 0, A)]),
        (("resp", 0, 486), [("fwd", 1, B), ("fwd", 2, C)]),
        (("resp", 1, 404), []),
        (("resp", 2, 480), [("up", 486), ("done",)]),
    ]),
    "sequential: success in the first group stops": ([ForkTarget(parse_uri(B), 0.1), ForkTarget(parse_uri(A))],
                                                     {"parallel": False}, [
        (("start",), [("fwd", 0, A)]),  # q absent counts as 1.0: A first
        (("resp", 0, 200), [("up", 200), ("done",)]),
    ]),
    "sequential: caller CANCEL stops the next groups": ([ForkTarget(parse_uri(A), 1.0), ForkTarget(parse_uri(B), 0.5)],
                                                        {"parallel": False}, [
        (("start",), [("fwd", 0, A)]),
        (("cancel",), []),
        (("resp", 0, 487), [("up", 487), ("done",)]),
    ]),
    "duplicate targets are tried once": ([A, "sip:a@192.0.2.1;foo=bar", A], {}, [
        (("start",), [("fwd", 0, A)]),
        (("resp", 0, 404), [("up", 404), ("done",)]),
    ]),
    "empty target set: 480": ([], {}, [
        (("start",), [("up", 480), ("done",)]),
    ]),
    "recursion on 3xx adds the contacts": ([A], {"recurse_on_3xx": True}, [
        (("start",), [("fwd", 0, A)]),
        (("resp", 0, 302, (("Contact", f"<{C}>;q=0.5, <{A}>"),)), [("fwd", 1, C)]),
        (("resp", 1, 404), [("up", 302), ("done",)]),  # the 3xx kept the contact not recursed on
    ]),
    "recursion on all contacts drops the 3xx": ([A], {"recurse_on_3xx": True}, [
        (("start",), [("fwd", 0, A)]),
        (("resp", 0, 301, (("Contact", f"<{B}>, <{C}>"),)), [("fwd", 1, B), ("fwd", 2, C)]),
        (("resp", 1, 404), []),
        (("resp", 2, 480), [("up", 404), ("done",)]),
    ]),
    "recursion on known contacts only keeps the 3xx": ([A, B], {"recurse_on_3xx": True}, [
        START_AB,
        (("resp", 0, 302, (("Contact", f"<{B}>, <{A}>"),)), []),
        (("resp", 1, 486), [("up", 302), ("done",)]),
    ]),
    "recursion ignores a 3xx with a malformed Contact": ([A], {"recurse_on_3xx": True}, [
        (("start",), [("fwd", 0, A)]),
        (("resp", 0, 302, (("Contact", "<sip:c@x>;q=7"),)), [("up", 302), ("done",)]),
    ]),
    "no recursion by default": ([A], {}, [
        (("start",), [("fwd", 0, A)]),
        (("resp", 0, 302, (("Contact", f"<{B}>"),)), [("up", 302), ("done",)]),
    ]),
    "sequential recursion tries the contacts next": ([ForkTarget(parse_uri(A), 1.0), ForkTarget(parse_uri(B), 0.5)],
                                                     {"parallel": False, "recurse_on_3xx": True}, [
        (("start",), [("fwd", 0, A)]),
        (("resp", 0, 302, (("Contact", f"<{C}>"),)), [("fwd", 1, C)]),
        (("resp", 1, 404), [("fwd", 2, B)]),
        (("resp", 2, 404), [("up", 404), ("done",)]),
    ]),
    "non-INVITE: one final, no CANCEL, no timer C": ([A, B], {"method": "MESSAGE"}, [
        START_AB,
        (("resp", 0, 202), [("up", 202)]),
        (("cancel",), []),
        (("time", 1000.0), []),
        (("resp", 1, 200), [("done",)]),
    ]),
    "non-INVITE: best final after failures": ([A, B], {"method": "OPTIONS"}, [
        START_AB,
        (("resp", 0, 404), []),
        (("error", 1, True), [("up", 404), ("done",)]),
    ]),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str) -> None:
    targets, kwargs, steps = SCENARIOS[name]
    fork = Fork(targets, **kwargs)
    for event, expected in steps:
        assert fork.step(event) == expected, (name, event)


def test_sips_request_does_not_recurse_to_sip() -> None:
    fork = Fork(["sips:a@example.net"], uri="sips:bob@example.com", recurse_on_3xx=True)
    fork.step(("start",))
    assert fork.step(("resp", 0, 302, (("Contact", "<sip:c@x.example>, <sips:d@x.example>"),))) == [
        ("fwd", 1, "sips:d@x.example")
    ]
    assert fork.step(("resp", 1, 404)) == [("up", 302), ("done",)]
    final = fork.log[-2]
    assert isinstance(final, SendUpstream)
    assert final.response.headers.get_all("Contact") == ["<sip:c@x.example>"]


def test_max_targets_bounds_recursion() -> None:
    fork = Fork([A], recurse_on_3xx=True, max_targets=2)
    fork.step(("start",))
    assert fork.step(("resp", 0, 302, (("Contact", f"<{B}>, <{C}>"),))) == [("fwd", 1, B)]


def test_challenges_are_aggregated() -> None:
    fork = Fork([A, B, C])
    fork.step(("start",))
    fork.step(("resp", 0, 401, (("WWW-Authenticate", 'Digest realm="a", nonce="1"'),)))
    fork.step(("resp", 1, 404))
    assert fork.step(("resp", 2, 407, (("Proxy-Authenticate", 'Digest realm="c", nonce="3"'),))) == [
        ("up", 401), ("done",)
    ]
    final = fork.log[-2]
    assert isinstance(final, SendUpstream)
    headers = final.response.headers
    assert headers.get_fields("WWW-Authenticate") == ['Digest realm="a", nonce="1"']
    assert headers.get_fields("Proxy-Authenticate") == ['Digest realm="c", nonce="3"']
    # Our Via is gone; the caller's remains.
    assert [v.host for v in final.response.vias] == ["ua.example.org"]


def test_local_responses_come_from_the_original_request() -> None:
    fork = Fork([A])
    fork.step(("start",))
    fork.step(("error", 0, True))
    final = fork.log[-2]
    assert isinstance(final, SendUpstream)
    response = final.response
    assert response.status == 408 and response.to.tag == "local"
    assert response.via.branch == "z9hG4bKua1"


def test_forwarded_responses_lose_our_via() -> None:
    fork = Fork([A])
    fork.step(("start",))
    fork.step(("resp", 0, 180))
    provisional = fork.log[-1]
    assert isinstance(provisional, SendUpstream)
    assert [v.branch for v in provisional.response.vias] == ["z9hG4bKua1"]


def test_views_and_deadlines() -> None:
    fork = Fork([A, B])
    assert fork.ctx.state is ContextState.INITIAL and fork.ctx.next_deadline() is None
    fork.step(("start",))
    assert fork.ctx.state is ContextState.PROCEEDING
    assert fork.ctx.next_deadline() == 10.0
    fork.now = 3.0
    fork.step(("resp", 0, 180))
    assert fork.ctx.next_deadline() == 10.0  # branch 1 still at 10, branch 0 reset to 13
    fork.step(("resp", 1, 486))
    assert fork.ctx.next_deadline() == 13.0
    views = fork.ctx.branches()
    assert [(b.branch_id, b.state, b.status) for b in views] == [
        (0, BranchState.PROCEEDING, None), (1, BranchState.FINISHED, 486),
    ]
    assert views[1].response is not None and views[1].target == parse_uri(B)
    fork.step(("resp", 0, 200))
    assert fork.ctx.done and fork.ctx.state is ContextState.TERMINATED
    assert fork.ctx.next_deadline() is None
    assert fork.ctx.request is fork.request


def test_misuse() -> None:
    fork = Fork([A])
    with pytest.raises(UsageError):
        fork.ctx.on_response(0, make_response_for(fork), 0.0)
    fork.step(("start",))
    with pytest.raises(UsageError):
        fork.step(("start",))
    with pytest.raises(UsageError):
        fork.ctx.on_branch_error(5, 0.0)


def make_response_for(fork: Fork) -> Response:
    return response_to(fork.request, 180)


def test_response_with_only_our_via_is_ignored() -> None:
    fork = Fork([A])
    fork.step(("start",))
    assert fork.ctx.drain_actions() == []
    bare = fork.response(0, 200)
    bare.headers.set("Via", "SIP/2.0/UDP p.example.com;branch=z9hG4bKbr0")  # ours only
    fork.ctx.on_response(0, bare, 0.0)
    assert fork.ctx.drain_actions() == []


def test_cancel_before_start_answers_487() -> None:
    fork = Fork([A])
    fork.ctx.on_cancel(0.0)
    assert fork.step(("start",)) == [("up", 487), ("done",)]


# -- random walk ------------------------------------------------------------------------------------

STATUSES = [100, 180, 183, 200, 202, 301, 302, 401, 404, 407, 408, 486, 487, 500, 503, 600, 603]

event_strategy = st.one_of(
    st.tuples(st.just("resp"), st.integers(0, 7), st.sampled_from(STATUSES)),
    st.tuples(st.just("error"), st.integers(0, 7), st.booleans()),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("time"), st.floats(0.0, 50.0)),
)


@settings(max_examples=400, deadline=None)
@given(
    n_targets=st.integers(1, 4),
    qs=st.lists(st.sampled_from([None, 0.1, 0.5, 1.0]), min_size=4, max_size=4),
    parallel=st.booleans(),
    recurse=st.booleans(),
    method=st.sampled_from(["INVITE", "MESSAGE"]),
    events=st.lists(event_strategy, max_size=30),
)
def test_random_walk(
    n_targets: int, qs: list[float | None], parallel: bool, recurse: bool, method: str,
    events: list[tuple[Any, ...]],
) -> None:
    targets: list[ForkTarget | str] = [
        ForkTarget(parse_uri(f"sip:u{i}@192.0.2.{i + 1}"), qs[i]) for i in range(n_targets)
    ]
    fork = Fork(targets, method=method, parallel=parallel, recurse_on_3xx=recurse, max_targets=8)
    fork.step(("start",))
    contact_counter = 0
    for event in events:
        if fork.ctx.done:
            before = len(fork.log)
            fork.step(_clamp(fork, event))
            assert len(fork.log) == before, "action after Done"
            continue
        event = _clamp(fork, event)
        if event[0] == "resp" and 300 <= event[2] < 400:
            contact_counter += 1
            event = (*event, (("Contact", f"<sip:r{contact_counter % 3}@198.51.100.1>"),))
        fork.step(event)
    # Drive to the end: transactions eventually finish or time out.
    for _ in range(50):
        if fork.ctx.done:
            break
        deadline = fork.ctx.next_deadline()
        if deadline is not None:
            fork.step(("time", max(deadline, fork.now)))
        else:
            pending = [b.branch_id for b in fork.ctx.branches() if b.state is not BranchState.FINISHED]
            fork.step(("error", pending[0], True))
    assert fork.ctx.done
    _check_invariants(fork, method)


def _clamp(fork: Fork, event: tuple[Any, ...]) -> tuple[Any, ...]:
    """Aim branch events at existing branches and keep time monotonic."""
    if event[0] in ("resp", "error"):
        return (event[0], event[1] % len(fork.targets), *event[2:])
    if event[0] == "time":
        return ("time", fork.now + event[1])
    return event


def _check_invariants(fork: Fork, method: str) -> None:
    log = fork.log
    assert sum(isinstance(a, Done) for a in log) == 1 and isinstance(log[-1], Done)
    upstream = [a.response.status for a in log if isinstance(a, SendUpstream)]
    finals = [s for s in upstream if s >= 200]
    successes = [s for s in finals if s < 300]
    failures = [s for s in finals if s >= 300]
    if successes:
        assert failures == []
    else:
        assert len(failures) == 1
    if method != "INVITE":
        assert len(finals) == 1
        assert not any(isinstance(a, CancelBranch) for a in log)
    assert 100 not in upstream and 503 not in upstream
    first_final = next(i for i, s in enumerate(upstream) if s >= 200)
    assert all(s >= 200 for s in upstream[first_final:])
    cancels = [a.branch_id for a in log if isinstance(a, CancelBranch)]
    assert len(cancels) == len(set(cancels))
    forwards = [a.branch_id for a in log if isinstance(a, ForwardRequest)]
    assert forwards == list(range(len(forwards)))
    targets = [str(a.target) for a in log if isinstance(a, ForwardRequest)]
    assert len(targets) == len(set(targets)) <= 8


def test_upstream_table_pairs() -> None:
    """Every (state, output) pair is either in the table or refused without a state change."""
    from sipline.sip.proxy.context import _UPSTREAM, _Up

    for state in ContextState:
        for what in _Up:
            ctx = ResponseContext(make_request(), [], to_tag="x")
            ctx._state = state
            if what in _UPSTREAM[state]:
                ctx._upstream(what, response_to(make_request(), 500))
                assert ctx.state is _UPSTREAM[state][what][1]
            else:
                with pytest.raises(UsageError):
                    ctx._upstream(what, None)
                assert ctx.state is state
