"""The response context of a stateful proxy: forking and best-response selection (RFC 3261 §16.7).

Theory of operation.  One :class:`ResponseContext` exists per request the proxy forwards.
It owns the target set and one *branch* per target tried, and decides, from the responses and
timers of those branches, what goes upstream.  It never sends anything: every input appends
frozen actions to a buffer the caller drains (``drain_actions()``):

* :class:`ForwardRequest` -- build the branch request (:func:`~.routing.prepare_forward`) and
  start a client transaction for it;
* :class:`CancelBranch` -- send a CANCEL on that branch's client transaction;
* :class:`SendUpstream` -- give this response to the server transaction;
* :class:`Done` -- the context is finished; nothing more will come out of it.

Two machines cooperate.  The *upstream* machine follows what the server transaction has been
given; its table (``_UPSTREAM``) says, for each state and each kind of upstream output, whether
the output is sent and which state follows:

    Initial --start--> Proceeding --best final / 2xx--> Completed --all branches ended--> Terminated

A pair missing from the table is a bug in the context and raises; in Terminated every input is
accepted and ignored, so "nothing after Done" holds by construction.

Each *branch* is Calling (forwarded), Proceeding (a provisional arrived) or Finished (a final
response, a timeout or a transport error).  Per branch the context keeps Timer C for INVITE
(§16.8: reset by every provisional but 100; on expiry CANCEL if a provisional arrived, else act
as if a 408 arrived) and, once a CANCEL is sent, a 64*T1 bound after which the branch counts
as 408 (§9.1) so that a silent downstream cannot keep the context alive.

Upstream rules, as §16.7 steps 5-10 give them:

* provisional responses other than 100 are forwarded at once while no final was sent;
* every 2xx to an INVITE is forwarded at once, even after another 2xx (forked dialogs); a
  2xx ends forking and CANCELs the pending branches.  A non-INVITE gets one final response;
* a 6xx is not forwarded at once: it ends forking, CANCELs the pending branches and wins
  when they have all ended (unless a 2xx overtakes it);
* when every branch has ended and no target is left, the best final response goes up: 6xx,
  else the lowest class among 3xx/4xx/5xx, preferring within 4xx the challenges (whose
  WWW-/Proxy-Authenticate values from all branches are merged, step 7), 415, 420, 484, 486,
  then any other, a 408 last; a 503 becomes a 500 (a 503 would tell the caller that *we*
  are overloaded); no final response at all gives 408, an empty target set 480;
* after the caller's CANCEL (§16.10) the pending branches are cancelled and, once they end,
  the request is answered 487.

Forking: targets sorted by q (highest first; no q counts as 1.0).  ``parallel=True`` tries all
at once; ``parallel=False`` tries q-groups one after the other, each group in parallel, the
next group starting when every branch of the previous one failed.  With
``recurse_on_3xx=True`` the SIP contacts of a 3xx become new targets (§16.5, never twice the
same URI, never a sip: target for a sips: request), bounded by ``max_targets``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import ProtocolError, UsageError
from ..message.address import NameAddr
from ..message.builders import response_to
from ..message.model import Request, Response
from ..message.uri import URI, SipURI
from ..methods import INVITE
from ..timers import DEFAULT_TIMERS, TimerConfig
from .routing import process_response

__all__ = [
    "ForkTarget",
    "ProxyAction",
    "ForwardRequest",
    "CancelBranch",
    "SendUpstream",
    "Done",
    "ContextState",
    "BranchState",
    "BranchStatus",
    "ResponseContext",
    "DEFAULT_MAX_TARGETS",
]

#: Upper bound of the target set, recursion included: a redirect loop must not fork forever.
DEFAULT_MAX_TARGETS = 32


@dataclass(frozen=True, slots=True)
class ForkTarget:
    """One element of the target set (§16.5): a URI and its Contact q-value (None = 1.0)."""

    uri: URI
    q: float | None = None

    @property
    def priority(self) -> float:
        return 1.0 if self.q is None else self.q


# -- actions ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxyAction:
    """Base of what a response context asks its caller to do."""


@dataclass(frozen=True, slots=True)
class ForwardRequest(ProxyAction):
    """Forward the request to ``target`` as branch ``branch_id`` (§16.6)."""

    branch_id: int
    target: URI


@dataclass(frozen=True, slots=True)
class CancelBranch(ProxyAction):
    """Send a CANCEL for branch ``branch_id`` (§16.10, §16.8 Timer C)."""

    branch_id: int


@dataclass(frozen=True, slots=True)
class SendUpstream(ProxyAction):
    """Pass ``response`` to the server transaction (§16.7 step 9); our Via is already gone."""

    response: Response


@dataclass(frozen=True, slots=True)
class Done(ProxyAction):
    """Every branch has ended and the final response went up: the context can be dropped."""


# -- states -----------------------------------------------------------------------------------------


class ContextState(enum.Enum):
    """What the server transaction has been given so far."""

    INITIAL = "Initial"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class BranchState(enum.Enum):
    """One client branch, as far as the context is concerned."""

    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    FINISHED = "Finished"


class _Up(enum.Enum):
    """Kinds of upstream output, the inputs of the upstream table."""

    START = "start"
    PROVISIONAL = "forward 1xx"
    SUCCESS = "forward 2xx"
    FINAL = "send best final"
    ENDED = "all branches ended"


# (state, output) -> (emit?, next state).  Missing pairs are bugs of this module.
_UPSTREAM: dict[ContextState, dict[_Up, tuple[bool, ContextState]]] = {
    ContextState.INITIAL: {
        _Up.START: (False, ContextState.PROCEEDING),
    },
    ContextState.PROCEEDING: {
        _Up.PROVISIONAL: (True, ContextState.PROCEEDING),
        _Up.SUCCESS: (True, ContextState.COMPLETED),
        _Up.FINAL: (True, ContextState.COMPLETED),
    },
    ContextState.COMPLETED: {
        _Up.PROVISIONAL: (False, ContextState.COMPLETED),
        # INVITE forwards every 2xx; the non-INVITE case is filtered before the table.
        _Up.SUCCESS: (True, ContextState.COMPLETED),
        _Up.ENDED: (True, ContextState.TERMINATED),
    },
    ContextState.TERMINATED: {},
}

# 4xx preference inside the class (§16.7 step 6 names 401, 407, 415, 420, 484); we rank a busy
# callee next, since it is a person's answer, and a timeout last, since it is nobody's.
_4XX_RANK = {401: 0, 407: 0, 415: 1, 420: 2, 484: 3, 486: 4, 408: 6, 487: 7}
_4XX_OTHER = 5
_CHALLENGE_HEADERS = ("WWW-Authenticate", "Proxy-Authenticate")


@dataclass(frozen=True, slots=True)
class BranchStatus:
    """A read-only view of one branch for logs, tests and the role."""

    branch_id: int
    target: URI
    state: BranchState
    #: Status of the final response (received or synthesized), None while pending.
    status: int | None
    #: The final response kept for best-response selection (our Via removed), if any.
    response: Response | None


class _Branch:
    __slots__ = (
        "branch_id", "target", "state", "status", "response", "provisional",
        "timer_c", "cancel_deadline", "cancel_wanted", "cancel_sent", "timed_out",
    )

    def __init__(self, branch_id: int, target: URI) -> None:
        self.branch_id = branch_id
        self.target = target
        self.state = BranchState.CALLING
        self.status: int | None = None
        self.response: Response | None = None
        self.provisional = False
        self.timer_c: float | None = None
        self.cancel_deadline: float | None = None
        self.cancel_wanted = False
        self.cancel_sent = False
        self.timed_out = False

    @property
    def finished(self) -> bool:
        return self.state is BranchState.FINISHED


def _groups(targets: Sequence[ForkTarget], parallel: bool) -> list[list[ForkTarget]]:
    """Targets by decreasing q (stable), as one group or one group per q-value."""
    ordered = sorted(targets, key=lambda t: -t.priority)
    if parallel:
        return [ordered] if ordered else []
    groups: list[list[ForkTarget]] = []
    for target in ordered:
        if groups and groups[-1][0].priority == target.priority:
            groups[-1].append(target)
        else:
            groups.append([target])
    return groups


def _same_uri(a: URI, b: URI) -> bool:
    return a.equivalent(b)


class ResponseContext:
    """The §16.7 state of one proxied request: branches, timers and the upstream decision.

    *request* is the request as received (upstream Vias intact): locally generated responses
    (408, 480, 487, 500) are built from it with *to_tag*.  *targets* is the initial target
    set.  Inputs: :meth:`start`, :meth:`on_response`, :meth:`on_branch_error`,
    :meth:`on_cancel`, :meth:`handle_timer`; output: :meth:`drain_actions`.  Non-INVITE
    requests use the same class: no Timer C, no CANCEL, one final response.
    """

    def __init__(
        self,
        request: Request,
        targets: Iterable[ForkTarget | URI],
        *,
        to_tag: str,
        parallel: bool = True,
        recurse_on_3xx: bool = False,
        timers: TimerConfig = DEFAULT_TIMERS,
        max_targets: int = DEFAULT_MAX_TARGETS,
    ) -> None:
        self._request = request
        self._to_tag = to_tag
        self._parallel = parallel
        self._recurse = recurse_on_3xx
        self._timers = timers
        self._max_targets = max_targets
        self._invite = request.method == INVITE
        self._sips = isinstance(request.uri, SipURI) and request.uri.scheme == "sips"
        self._state = ContextState.INITIAL
        self._branches: list[_Branch] = []
        self._actions: list[ProxyAction] = []
        self._tried: list[URI] = []  # every URI ever in the target set, for §16.5 dedup
        initial: list[ForkTarget] = []
        for t in targets:
            target = t if isinstance(t, ForkTarget) else ForkTarget(t)
            if self._admit(target.uri):
                initial.append(target)
        self._pending_groups = _groups(initial, parallel)
        self._finals: list[_Branch] = []  # branches with a final >= 300, in arrival order
        self._stop = False  # no new branches: 2xx, 6xx or CANCEL seen
        self._cancelled = False
        self._success_sent = False

    # -- read-only views -------------------------------------------------------------------

    @property
    def state(self) -> ContextState:
        return self._state

    @property
    def request(self) -> Request:
        return self._request

    @property
    def done(self) -> bool:
        return self._state is ContextState.TERMINATED

    def branches(self) -> tuple[BranchStatus, ...]:
        return tuple(
            BranchStatus(b.branch_id, b.target, b.state, b.status, b.response) for b in self._branches
        )

    def drain_actions(self) -> list[ProxyAction]:
        """The actions produced since the last call, in order."""
        out, self._actions = self._actions, []
        return out

    def next_deadline(self) -> float | None:
        """The earliest Timer C or CANCEL deadline of a pending branch, None if none."""
        deadlines = [
            d
            for b in self._branches
            if not b.finished
            for d in (b.timer_c, b.cancel_deadline)
            if d is not None
        ]
        return min(deadlines) if deadlines else None

    # -- inputs ----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Fork to the first group of targets, or answer 480 if the target set is empty."""
        if self._state is not ContextState.INITIAL:
            raise UsageError("response context already started")
        self._upstream(_Up.START, None)
        if self._cancelled:
            self._progress(now)
            return
        if not self._pending_groups:
            self._upstream(_Up.FINAL, self._local(480))
            self._progress(now)
            return
        self._start_next_group(now)

    def on_response(self, branch_id: int, response: Response, now: float) -> None:
        """A response received by branch *branch_id*'s client transaction (our Via on top)."""
        if self._state is ContextState.TERMINATED:
            return
        branch = self._branch(branch_id)
        upstream = process_response(response)
        if upstream is None:
            return  # only our Via: not a response to forward (§16.7 step 3)
        status = response.status
        if status < 200:
            self._on_provisional(branch, upstream, now)
        elif status < 300:
            self._on_success(branch, upstream, now)
        elif not branch.finished:
            if branch.timed_out and status == 487:
                upstream = self._local(408)  # we cancelled it for Timer C: report the timeout
            self._on_failure(branch, upstream, now)
        self._progress(now)

    def on_branch_error(self, branch_id: int, now: float, *, timeout: bool = False) -> None:
        """The branch's client transaction failed: a timeout acts as 408, a transport error
        as 503 (§16.7 step 6 via §8.1.3.1)."""
        if self._state is ContextState.TERMINATED:
            return
        branch = self._branch(branch_id)
        if not branch.finished:
            self._on_failure(branch, self._local(408 if timeout else 503), now)
            self._progress(now)

    def on_cancel(self, now: float) -> None:
        """The caller CANCELled the request (§16.10): cancel every pending branch, fork no
        more, and answer 487 once they have ended.  No effect on non-INVITE requests (§9.2)
        or once a final response went upstream."""
        if not self._invite or self._state in (ContextState.COMPLETED, ContextState.TERMINATED):
            return
        self._cancelled = True
        self._stop_forking(now)
        if self._state is ContextState.PROCEEDING:
            self._progress(now)

    def handle_timer(self, now: float) -> None:
        """Fire the Timer C and CANCEL deadlines that are due."""
        if self._state is ContextState.TERMINATED:
            return
        for branch in list(self._branches):
            if branch.finished:
                continue
            if branch.cancel_deadline is not None and branch.cancel_deadline <= now:
                branch.timed_out = True
                self._on_failure(branch, self._local(408), now)
            elif branch.timer_c is not None and branch.timer_c <= now:
                branch.timer_c = None
                if branch.provisional and not branch.cancel_wanted:
                    branch.timed_out = True
                    self._cancel_branch(branch, now)
                else:
                    self._on_failure(branch, self._local(408), now)
        self._progress(now)

    # -- branch events ---------------------------------------------------------------------

    def _on_provisional(self, branch: _Branch, response: Response, now: float) -> None:
        if branch.finished:
            return
        branch.provisional = True
        branch.state = BranchState.PROCEEDING
        if branch.cancel_wanted:
            self._send_cancel(branch, now)
            return
        if response.status == 100:
            return
        if self._invite:
            branch.timer_c = now + self._timers.timer_c
        self._upstream(_Up.PROVISIONAL, response)

    def _on_success(self, branch: _Branch, response: Response, now: float) -> None:
        if not branch.finished:
            self._finish(branch, response)
        if self._invite or not self._success_sent:
            self._success_sent = True
            self._upstream(_Up.SUCCESS, response)
        self._stop_forking(now)

    def _on_failure(self, branch: _Branch, response: Response, now: float) -> None:
        status = response.status
        if 300 <= status < 400 and self._recurse and not self._stop:
            kept = self._recurse_3xx(response, now)
            if kept is None:
                self._finish(branch, None, status)
                return
            response = kept
        self._finish(branch, response)
        self._finals.append(branch)
        if status >= 600:
            self._stop_forking(now)

    def _finish(self, branch: _Branch, response: Response | None, status: int | None = None) -> None:
        branch.state = BranchState.FINISHED
        branch.response = response
        branch.status = response.status if response is not None else status
        branch.timer_c = None
        branch.cancel_deadline = None

    # -- forking ---------------------------------------------------------------------------

    def _admit(self, uri: URI) -> bool:
        """Add *uri* to the target set unless it is already there or the set is full."""
        if len(self._tried) >= self._max_targets or any(_same_uri(uri, t) for t in self._tried):
            return False
        self._tried.append(uri)
        return True

    def _start_next_group(self, now: float) -> None:
        group = self._pending_groups.pop(0)
        for target in group:
            branch = _Branch(len(self._branches), target.uri)
            if self._invite:
                branch.timer_c = now + self._timers.timer_c
            self._branches.append(branch)
            self._actions.append(ForwardRequest(branch.branch_id, target.uri))

    def _recurse_3xx(self, response: Response, now: float) -> Response | None:
        """Add the 3xx's contacts to the target set (§16.5, §16.7 step 4).

        Returns the response with the contacts we did not recurse on, or None when we
        recursed on all of them (the contactless response is then dropped).
        """
        try:
            contacts = response.contacts
        except ProtocolError:  # a malformed Contact: keep the 3xx as it is
            return response
        added: list[ForkTarget] = []
        kept: list[NameAddr] = []
        for contact in contacts:
            uri = contact.uri
            usable = isinstance(uri, SipURI) and (uri.scheme == "sips" or not self._sips)
            if usable and self._admit(uri):
                added.append(ForkTarget(uri, contact.q))  # q was validated by the parser
            else:
                kept.append(contact)
        if not added:
            return response
        if self._parallel:
            self._pending_groups.insert(0, sorted(added, key=lambda t: -t.priority))
            self._start_next_group(now)
        else:
            self._pending_groups[0:0] = _groups(added, parallel=False)
        if not kept:
            return None
        out = response.copy()
        out.headers.set("Contact", ", ".join(str(c) for c in kept))
        return out

    def _stop_forking(self, now: float) -> None:
        """No new branches; CANCEL the pending ones (§16.7 step 10, §16.10)."""
        self._stop = True
        self._pending_groups.clear()
        for branch in self._branches:
            self._cancel_branch(branch, now)

    def _cancel_branch(self, branch: _Branch, now: float) -> None:
        if branch.finished or branch.cancel_wanted or not self._invite:
            return
        branch.cancel_wanted = True
        if branch.provisional:
            self._send_cancel(branch, now)
        # Without a provisional response a CANCEL must wait (§9.1); Timer C keeps running
        # and turns a branch that never answers into a 408.

    def _send_cancel(self, branch: _Branch, now: float) -> None:
        if branch.cancel_sent:
            return
        branch.cancel_sent = True
        branch.timer_c = None
        branch.cancel_deadline = now + self._timers.timer_b
        self._actions.append(CancelBranch(branch.branch_id))

    def _progress(self, now: float) -> None:
        """After any input: start the next group, send the best final, or finish."""
        if any(not b.finished for b in self._branches):
            return
        if self._state is ContextState.PROCEEDING:
            if self._pending_groups and not self._stop:
                self._start_next_group(now)
                return
            self._upstream(_Up.FINAL, self._best())
        if self._state is ContextState.COMPLETED:
            self._upstream(_Up.ENDED, None)

    # -- upstream --------------------------------------------------------------------------

    def _upstream(self, what: _Up, response: Response | None) -> None:
        try:
            emit, target = _UPSTREAM[self._state][what]
        except KeyError:
            raise UsageError(f"response context: {what.value} in state {self._state.value}") from None
        self._state = target
        if not emit:
            return
        if what is _Up.ENDED:
            self._actions.append(Done())
        elif response is not None:
            self._actions.append(SendUpstream(response))

    def _local(self, status: int) -> Response:
        return response_to(self._request, status, to_tag=self._to_tag)

    def _best(self) -> Response:
        """§16.7 step 6 (and step 7 for challenges)."""
        if self._cancelled:
            return self._local(487)
        finals = [b for b in self._finals if b.response is not None]
        if not finals:
            return self._local(408)
        for branch in finals:
            if branch.status is not None and branch.status >= 600:
                assert branch.response is not None
                return branch.response
        lowest = min(b.status // 100 for b in finals if b.status is not None)
        candidates = [b for b in finals if b.status is not None and b.status // 100 == lowest]
        if lowest == 4:
            chosen = min(candidates, key=lambda b: _4XX_RANK.get(b.status or 0, _4XX_OTHER))
        elif lowest == 5:
            chosen = next((b for b in candidates if b.status != 503), candidates[0])
        else:
            chosen = candidates[0]
        assert chosen.response is not None
        if chosen.status == 503:
            return self._local(500)
        if chosen.status in (401, 407):
            return self._aggregate(chosen.response, finals)
        return chosen.response

    @staticmethod
    def _aggregate(chosen: Response, finals: Sequence[_Branch]) -> Response:
        """Add the challenges of every other 401/407 to the chosen one, unmodified (step 7)."""
        out = chosen
        for branch in finals:
            other = branch.response
            if other is None or other is chosen or other.status not in (401, 407):
                continue
            for name in _CHALLENGE_HEADERS:
                for value in other.headers.get_fields(name):
                    if out is chosen:
                        out = chosen.copy()
                    out.headers.add(name, value)
        return out

    def _branch(self, branch_id: int) -> _Branch:
        if self._state is ContextState.INITIAL:
            raise UsageError("response context not started")
        if not 0 <= branch_id < len(self._branches):
            raise UsageError(f"unknown branch {branch_id}")
        return self._branches[branch_id]
