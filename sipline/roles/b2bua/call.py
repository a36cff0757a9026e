"""One B2BUA call: the caller's leg, the callee's leg, and the rules that join them.

The legs (:mod:`.legs`) report typed events; :class:`B2BCall` maps each ``(side, event)``
pair to what the other side must do, through a dispatch table rather than an if-chain:

===========  ===============  ==========================================================
from         event            action
===========  ===============  ==========================================================
callee       Provisional      relay 1xx (ring time for the record; SDP = early media)
callee       Answered         relay 2xx with the answer
callee       Failed           fail over to the next target, or relay the final status
callee/er    HungUp (BYE)     BYE the other leg, end the call
caller       HungUp (CANCEL)  CANCEL the callee leg (487 already sent), end the call
any          InDialogRequest  send the same method on the other leg (re-INVITE, UPDATE,
                              INFO...) and answer with its final status and body; REFER
                              goes to :mod:`.transfer` (the trunk's policy decides)
===========  ===============  ==========================================================

Each side gets SDP written by us: an :class:`~sipline.sip.b2bua.topology.OriginWriter` per
side gives it our own ``o=`` session (id, version bumped on change), so nothing of the other
side's origin crosses.  A transfer replaces one side's leg (:meth:`B2BCall.replace_leg`);
sides keep their names -- ``"a"`` the caller's, ``"b"`` the callee's -- so the relay's sides
stay put.  With the relay's media timeout on, an answered call whose media stops both ways
is hung up on both legs (reason "media timeout").

The call also owns what must be released on *every* path -- channels acquired on both
trunks (the SBC passes a release callback per acquisition), the leg registrations -- and
writes exactly one call record when it ends, whichever way it ends (answered and hung up,
refused, cancelled, timed out, or an exception in the SBC).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...sip.auth import DigestClient
from ...media.errors import PortsExhausted
from ...sip.b2bua.codecs import filter_codecs
from ...sip.b2bua.routing import FailoverAction, failover_action
from ...sip.b2bua.topology import (
    HeaderPolicy,
    OriginWriter,
    limit_rejection,
    relay_headers,
    relay_status,
    scrub_sdp,
)
from ...sip.message import NameAddr, Request, Response
from ...sip.methods import BYE, CANCEL, NOTIFY, REFER
from ...sip.transport import Peer
from ...storage.base import CallRecordStore
from ...storage.models import CallRecord
from .stats import StatsBook
from .legs import (
    Answered,
    Failed,
    HungUp,
    InboundLeg,
    InDialogRequest,
    LegEvent,
    LegHost,
    OutboundLeg,
    Provisional,
)

__all__ = ["B2BCall", "Target", "CallInfo"]

log = logging.getLogger("sipline.b2bua")

Release = Callable[[], Awaitable[Any]]
Side = str  # "a" (caller's side) or "b" (callee's side)
#: ``acquire(trunk) -> (release or None, limit hit)``: take a channel and a CPS token.
Acquire = Callable[[str], Awaitable[tuple[Release | None, str]]]


@dataclass(frozen=True, slots=True)
class Target:
    """One place to try the callee: a trunk's host and the request to send there."""

    trunk: str
    peer: Peer
    uri: str
    from_: NameAddr
    to: NameAddr
    headers: tuple[tuple[str, str], ...] = ()
    policy: HeaderPolicy = field(default_factory=HeaderPolicy)
    digest: DigestClient | None = None
    #: Health key of the host, reported to the health monitor on transport failures.
    host_key: object = None
    #: Codecs the trunk allows (empty: all); the offer is trimmed to them.
    codecs: tuple[str, ...] = ()
    #: Keep this target's media out of the relay.
    media_bypass: bool = False


@dataclass(slots=True)
class CallInfo:
    """What the call record says about the parties (filled by the SBC before routing)."""

    caller: str = ""
    caller_normalized: str = ""
    callee: str = ""
    callee_normalized: str = ""
    from_trunk: str | None = None
    #: Header policy towards the caller (for what the callee's answers carry back).
    caller_policy: HeaderPolicy = field(default_factory=HeaderPolicy)
    #: The source trunk keeps its media out of the relay.
    media_bypass: bool = False


class B2BCall:
    """See the module docstring."""

    def __init__(self, host: LegHost, invite: Request, key: Any, transport: str, *, info: CallInfo,
                 records: CallRecordStore | None, acquire: Acquire, sdp_address: str,
                 ring_timeout: float = 120.0, on_end: Callable[[B2BCall], None] | None = None,
                 on_host_failure: Callable[[object], None] | None = None, media: Any = None,
                 stats: StatsBook | None = None, transfers: Any = None) -> None:
        self.host = host
        self.info = info
        self.records = records
        self.acquire = acquire
        self.sdp_address = sdp_address
        self.ring_timeout = ring_timeout
        self.on_end = on_end
        self.on_host_failure = on_host_failure
        #: The call's media relay (``rewrite(sdp, side)``, ``reset_side``, ``close()``), or None.
        self.media = media
        self.stats = stats
        #: Whether the current callee leg's media goes through the relay.
        self._anchored = False
        self._media_lock = asyncio.Lock()
        self._codec_miss = False
        self.media_stats: dict[str, Any] | None = None
        #: The SBC side of transfers (``refer_policy``, ``transfer_targets``), or None.
        self.transfers = transfers
        #: The transfer in progress (see :mod:`.transfer`), None otherwise.
        self.transfer: Any = None
        self.origins: dict[Side, OriginWriter] = {"a": OriginWriter(host.ids.token(8)),
                                                  "b": OriginWriter(host.ids.token(8))}
        #: The last SDP each side sent us (as received): a transfer offers it to the new party.
        self.last_sdp: dict[Side, bytes] = {"a": b"", "b": b""}
        #: The caller's leg as it came in (the answer, 1xx and refusals go there).
        self.inbound = InboundLeg(host, invite, key, transport, self._on_event)
        self.a: InboundLeg | OutboundLeg = self.inbound
        self.invite = invite
        self._call_id = invite.call_id
        self._a_tag = self.a.tag
        self.b: OutboundLeg | None = None
        #: Legs a transfer replaced; closed with the others at the end.
        self.gone: list[InboundLeg | OutboundLeg] = []
        #: Trunk of the caller's side after a transfer replaced it (else info.from_trunk).
        self.a_trunk: str | None = None
        self.transferred_to: list[str] = []
        self._target: Target | None = None
        self.targets: list[Target] = []
        self.to_trunk: str | None = None
        self._releases: list[Release] = []
        self._trunk_release: Release | None = None
        self._limit_hit = ""
        self.started = time.time()
        self.ring: float | None = None
        self.answer: float | None = None
        self.ended: float | None = None
        self.status: int | None = None
        self.reason = ""
        self.hangup_by = ""
        self.done = asyncio.Event()
        #: Set once the call's channels are released and its record is written: shutdown
        #: waits for this (not for ``done``, which lingers for late retransmissions).
        self.settled = asyncio.Event()
        self._ring_timer: asyncio.TimerHandle | None = None
        self._table: dict[tuple[bool, type[LegEvent]], Callable[[Any], None]] = {
            (False, Provisional): self._callee_provisional,
            (False, Answered): self._callee_answered,
            (False, Failed): self._callee_failed,
            (False, HungUp): self._callee_hung_up,
            (True, HungUp): self._caller_hung_up,
            (False, InDialogRequest): lambda ev: self._relay_request(ev, to_caller=True),
            (True, InDialogRequest): lambda ev: self._relay_request(ev, to_caller=False),
        }

    @property
    def call_id(self) -> str:
        return self._call_id

    def hold(self, release: Release) -> None:
        """Release ``release`` when the call ends (the caller side's channel)."""
        self._releases.append(release)

    def leg(self, side: Side) -> InboundLeg | OutboundLeg | None:
        return self.a if side == "a" else self.b

    def side_of(self, leg: object) -> Side | None:
        return "a" if leg is self.a else "b" if leg is self.b else None

    def trunk_of(self, side: Side) -> str | None:
        return (self.a_trunk or self.info.from_trunk) if side == "a" else self.to_trunk

    def policy_of(self, side: Side) -> HeaderPolicy:
        """Header policy towards ``side``'s trunk."""
        if side == "a":
            return self.info.caller_policy
        return self._target.policy if self._target is not None else HeaderPolicy()

    def scrub(self, sdp: bytes, to_side: Side) -> bytes:
        """SDP going to ``to_side``, with that side's own ``o=`` session."""
        return scrub_sdp(sdp, self.sdp_address, origin=self.origins[to_side]) if sdp else b""

    async def replace_leg(self, side: Side, leg: OutboundLeg, trunk: str, release: Release | None) -> None:
        """A transfer's new party takes ``side``'s place: its events now reach the call, the
        old leg is kept only to be closed, and the old side's channel is released."""
        old = self.leg(side)
        if old is not None:
            self.gone.append(old)
        leg.sink = self._on_event
        if side == "a":
            self.a = leg
            self.a_trunk = trunk
            releases, self._releases = self._releases, [release] if release is not None else []
            for done in releases:
                await done()
        else:
            self.b = leg
            self.to_trunk = trunk
            await self._leave_trunk()
            self._trunk_release = release
        self.transferred_to.append(trunk)
    # -- routing --------------------------------------------------------------------------------

    async def route(self, targets: Sequence[Target], *, limit_hit: str = "") -> None:
        """Try ``targets`` in order (failover); answer the caller if none can be tried."""
        self.targets = list(targets)
        self._limit_hit = limit_hit
        self._ring_timer = asyncio.get_running_loop().call_later(self.ring_timeout, self._on_ring_timeout)
        await self._next(None)

    async def _next(self, action: FailoverAction | None, last: Failed | None = None) -> None:
        if self.ended is not None:
            return
        if action is FailoverAction.NEXT_CARRIER and self.to_trunk is not None:
            failed = self.to_trunk
            self.targets = [t for t in self.targets if t.trunk != failed]
        while self.targets:
            target = self.targets.pop(0)
            if self._offer_for(target) is None:
                self._codec_miss = True
                self.targets = [t for t in self.targets if t.trunk != target.trunk]
                continue
            if target.trunk != self.to_trunk:
                await self._leave_trunk()
                release, limit = await self.acquire(target.trunk)
                if release is None:
                    self._limit_hit = limit or self._limit_hit
                    self.targets = [t for t in self.targets if t.trunk != target.trunk]
                    continue
                self._trunk_release = release
                self.to_trunk = target.trunk
            if self.ended is not None:  # the caller cancelled while we were acquiring
                return
            await self._place(target)
            return
        await self._leave_trunk()
        if last is not None and last.status:
            self._fail_caller(relay_status(last.status), last.reason, last.headers)
        elif self._codec_miss and not self._limit_hit:
            self._fail_caller(488, "Not Acceptable Here", ())
        elif self._limit_hit:
            trunk, _, kind = self._limit_hit.partition(":")
            status, phrase, headers = limit_rejection(kind, trunk, self.host.retry_after)
            self._fail_caller(status, phrase, headers)
        else:
            self._fail_caller(503, "Service Unavailable", ())

    async def _leave_trunk(self) -> None:
        release, self._trunk_release = self._trunk_release, None
        if release is not None:
            await release()

    def _offer_for(self, target: Target) -> bytes | None:
        """The caller's SDP trimmed to the target's codecs; None when none is left."""
        invite = self.invite
        body = invite.body if invite.body and invite.content_type == "application/sdp" else b""
        return filter_codecs(body, target.codecs) if target.codecs else body

    async def anchor(self, sdp: bytes, from_side: Side, kind: str, to_side: Side) -> bytes:
        """``sdp`` from ``from_side`` through the relay, written for ``to_side`` with that
        side's ``o=``.  The built-in relay stamps the description it already holds (one SDP
        parse and one write per crossing instead of two)."""
        async with self._media_lock:
            if getattr(self.media, "takes_finish", False):
                writer, address = self.origins[to_side], self.sdp_address
                return bytes(await self.media.rewrite(sdp, from_side, kind,
                                                      finish=lambda d: writer.stamp(d, address)))
            out = await self.media.rewrite(sdp, from_side, kind)
        return self.scrub(out, to_side)

    async def _place(self, target: Target) -> None:
        offer = self._offer_for(target) or b""
        self.last_sdp["a"] = offer
        self.origins["b"] = OriginWriter(self.host.ids.token(8))  # a new callee, a new session
        self._anchored = bool(offer) and self.media is not None and not (target.media_bypass or self.info.media_bypass)
        if self._anchored:
            try:
                self.media.reset_side("b")
                offer = await self.anchor(offer, "a", "offer", "b")
            except PortsExhausted:
                log.warning("[%s] media relay ports exhausted", self.call_id)
                await self._leave_trunk()
                self._fail_caller(503, "Service Unavailable", (("Retry-After", str(self.host.retry_after)),
                                  ("Reason", 'SIP;cause=503;text="media ports exhausted"')))
                return
            if self.ended is not None:
                return
        if self.stats is not None:
            self.stats.attempt(target.trunk, time.time())
        leg = OutboundLeg(self.host, uri=target.uri, from_=target.from_, to=target.to, peer=target.peer,
                          sink=self._on_event, digest=target.digest)
        self.b = leg
        self._target = target
        headers = [*target.headers, *relay_headers(self.invite, target.policy)]
        leg.start(offer if self._anchored else self.scrub(offer, "b"), headers)

    async def _to_caller_sdp(self, sdp: bytes) -> bytes:
        """The callee's SDP as the caller gets it: through the relay when anchored."""
        if not sdp:
            return b""
        self.last_sdp["b"] = sdp
        if self._anchored:
            return await self.anchor(sdp, "b", "answer", "a")
        return self.scrub(sdp, "a")

    def _fail_caller(self, status: int, reason: str, headers: Sequence[tuple[str, str]]) -> None:
        self.status, self.reason = status, reason
        self.inbound.reject(status, reason, [h for h in headers if self.info.caller_policy.allows(h[0])])
        self._finish("callee" if status < 500 or status >= 600 else "sbc")

    # -- events -----------------------------------------------------------------------------------

    def _on_event(self, leg: InboundLeg | OutboundLeg, event: LegEvent) -> None:
        from_caller = leg is self.a
        if not from_caller and leg is not self.b:
            return  # a leg we already gave up on (failover) or that a transfer replaced
        if self.transfer is not None and self.transfer.absorbs(leg, event):
            return
        handler = self._table.get((from_caller, type(event)))
        if handler is None:
            log.debug("[%s] ignored %s from %s", self.call_id, type(event).__name__, "caller" if from_caller else "callee")
            return
        handler(event)

    def _back(self, response_headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Headers of a callee response that may cross to the caller."""
        policy = self.info.caller_policy
        return [(n, v) for n, v in response_headers if policy.allows(n)]

    def _callee_provisional(self, event: Provisional) -> None:
        if self.ring is None:
            self.ring = time.time()
        if self._anchored and event.sdp:
            self.host.spawn(self._relay_provisional(event))
            return
        if event.sdp:
            self.last_sdp["b"] = event.sdp
        self.inbound.progress(event.status, event.reason, self.scrub(event.sdp, "a"), self._back(event.headers))

    async def _relay_provisional(self, event: Provisional) -> None:
        sdp = await self._to_caller_sdp(event.sdp)
        self.inbound.progress(event.status, event.reason, sdp, self._back(event.headers))

    def _callee_answered(self, event: Answered) -> None:
        if self.ended is not None:
            return
        self._cancel_ring_timer()
        self.answer = time.time()
        self.ring = self.ring or self.answer
        self.status, self.reason = 200, "OK"
        if self.stats is not None:
            self.stats.final(self.to_trunk, 200)
        self._watch_media()
        if self._anchored and event.sdp:
            self.host.spawn(self._relay_answer(event))
            return
        if event.sdp:
            self.last_sdp["b"] = event.sdp
        self.inbound.answer(self.scrub(event.sdp, "a"), self._back(event.headers))

    async def _relay_answer(self, event: Answered) -> None:
        sdp = await self._to_caller_sdp(event.sdp)
        if self.a.final:  # the caller gave up meanwhile: the callee's leg must end too
            if self.b is not None:
                self.host.spawn(self._bye(self.b, ()))
            return
        self.inbound.answer(sdp, self._back(event.headers))

    def _callee_failed(self, event: Failed) -> None:
        if self.stats is not None:
            self.stats.final(self.to_trunk, event.status)
        if self.a.final:
            return
        action = failover_action(event.status, event.reason_headers)
        if event.status in (0, 408, 503) and self.on_host_failure is not None and self._target is not None:
            self.on_host_failure(self._target.host_key)
        if action is FailoverAction.STOP:
            self._fail_caller(relay_status(event.status), event.reason, event.headers)
            return
        log.info("[%s] %s on %s: %s", self.call_id, event.status or "transport failure", self.to_trunk, action.value)
        self.host.spawn(self._next(action, event))

    def _callee_hung_up(self, event: HungUp) -> None:
        if not self.a.final:
            # BYE on an early dialog cannot happen; treat as failure of the attempt.
            self._fail_caller(487, "Request Terminated", ())
            return
        self.host.spawn(self._bye(self.a, event.reason_headers))
        self._finish("callee")

    def _caller_hung_up(self, event: HungUp) -> None:
        if event.method == CANCEL:
            self.status, self.reason = 487, "Request Terminated"
            if self.b is not None:
                self.b.cancel()
            self._finish("caller")
            return
        if self.b is not None:
            if self.b.dialog is not None:
                self.host.spawn(self._bye(self.b, event.reason_headers))
            else:
                self.b.cancel()
        if event.method != BYE:  # our 2xx was never ACKed
            self.host.spawn(self._bye(self.a, ()))
            self._finish("sbc")
            return
        self._finish("caller")

    async def _bye(self, leg: InboundLeg | OutboundLeg, reason_headers: Sequence[str]) -> None:
        future = leg.bye([("Reason", r) for r in reason_headers])
        if future is not None:
            try:
                await asyncio.wait_for(future, 64 * self.host.timers.t1)
            except (asyncio.TimeoutError, OSError) as exc:
                log.info("[%s] BYE failed: %s", self.call_id, exc)

    def _relay_request(self, event: InDialogRequest, *, to_caller: bool) -> None:
        other: InboundLeg | OutboundLeg | None = self.a if to_caller else self.b
        request = event.request
        if other is None or other.dialog is None or other.dialog.terminated:
            event.respond(481, "Call/Transaction Does Not Exist", b"", ())
            return
        to_side, from_side = ("a", "b") if to_caller else ("b", "a")
        if request.method in (REFER, NOTIFY) and self.transfers is not None:
            from .transfer import on_refer_or_notify

            if on_refer_or_notify(self, event, from_side):
                return
        policy = self.policy_of(to_side)
        body = request.body if request.content_type == "application/sdp" else b""
        if body:
            self.last_sdp[from_side] = body
        if body and self._anchored:
            self.host.spawn(self._relay_anchored(event, other, body, policy, to_caller=to_caller))
            return
        future = other.request(request.method, self.scrub(body, to_side), relay_headers(request, policy))

        def done(fut: asyncio.Future[Response]) -> None:
            response = fut.result()
            back_policy = self.policy_of(from_side)
            rbody = response.body if response.content_type == "application/sdp" else b""
            if rbody:
                self.last_sdp[to_side] = rbody
            event.respond(response.status, response.reason, self.scrub(rbody, from_side),
                          [(n, v) for n, v in response.headers if back_policy.allows(n)])

        future.add_done_callback(done)

    async def _relay_anchored(self, event: InDialogRequest, other: InboundLeg | OutboundLeg, body: bytes,
                              policy: HeaderPolicy, *, to_caller: bool) -> None:
        """A mid-call offer (hold, codec change) through the relay, and its answer back."""
        from_side, to_side = ("b", "a") if to_caller else ("a", "b")
        request = event.request
        offer = await self.anchor(body, from_side, "offer", to_side)
        response = await other.request(request.method, offer, relay_headers(request, policy))
        rbody = response.body if response.content_type == "application/sdp" else b""
        if rbody:
            self.last_sdp[to_side] = rbody
            rbody = await self.anchor(rbody, to_side, "answer", from_side)
        back_policy = self.policy_of(from_side)
        event.respond(response.status, response.reason, rbody,
                      [(n, v) for n, v in response.headers if back_policy.allows(n)])

    # -- timers and the end -------------------------------------------------------------------------

    def _watch_media(self) -> None:
        if self._anchored and self.media is not None and hasattr(self.media, "watch"):
            self.media.watch(self._on_media_timeout)

    def _on_media_timeout(self) -> None:
        """No RTP either way for the relay's media timeout: BYE both legs (reason kept)."""
        if self.ended is not None:
            return
        log.info("[%s] media timeout: hanging up both legs", self.call_id)
        self._hang_up_both("media timeout", 'SIP;cause=408;text="media timeout"')

    def shut_down(self, retry_after: int) -> None:
        """The server is stopping: end the call cleanly, whatever state it is in.

        An answered call gets BYE on both legs (its record keeps the 200); one still being
        set up is cancelled towards the callee and refused with 503 and Retry-After.
        """
        if self.ended is not None:
            return
        if self.answer is not None:
            self._hang_up_both("server shutdown", 'SIP;cause=503;text="server shutdown"')
            return
        if self.b is not None:
            self.b.cancel()
        self.fail(503, "Service Unavailable", (("Retry-After", str(retry_after)),))

    def _hang_up_both(self, reason: str, reason_header: str) -> None:
        self.reason = reason
        for leg in (self.a, self.b):
            if leg is not None:
                self.host.spawn(self._bye(leg, (reason_header,)))
        self._finish("sbc")

    def _on_ring_timeout(self) -> None:
        self._ring_timer = None
        if self.a.final or self.ended is not None:
            return
        log.info("[%s] no answer within %.0f s", self.call_id, self.ring_timeout)
        if self.b is not None:
            self.b.cancel()
        self.status, self.reason = 408, "Request Timeout"
        self.inbound.reject(408, "Request Timeout")
        self._finish("sbc")

    def _cancel_ring_timer(self) -> None:
        if self._ring_timer is not None:
            self._ring_timer.cancel()
            self._ring_timer = None

    def fail(self, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        """Refuse the call before routing (admission, classification) or after an error."""
        if self.ended is not None:
            return
        self.status, self.reason = status, reason
        self.inbound.reject(status, reason, headers)
        self._finish("sbc")

    def _finish(self, by: str) -> None:
        if self.ended is not None:
            return
        self.ended = time.time()
        self.hangup_by = by
        self._cancel_ring_timer()
        if self.transfer is not None:
            self.transfer.abort()
        if self.stats is not None and self.status is not None:
            self.stats.final(self.info.from_trunk, self.status)
        self.host.spawn(self._cleanup())

    async def _cleanup(self) -> None:
        try:
            await self._leave_trunk()
            if self.media is not None:
                try:
                    self.media_stats = await self.media.close()
                except Exception:
                    log.exception("[%s] closing the media relay failed", self.call_id)
            releases, self._releases = self._releases, []
            for release in releases:
                try:
                    await release()
                except Exception:
                    log.exception("[%s] releasing a channel failed", self.call_id)
            await self._write_record()
        finally:
            self.settled.set()
            # Let late messages (ACK, 2xx retransmissions, the callee's 487) still find the
            # legs for a while, then forget them.
            await asyncio.sleep(8 * self.host.timers.t1)
            self.a.close()
            if self.b is not None:
                self.b.close()
            for leg in self.gone:
                leg.close()
            self.done.set()
            if self.on_end is not None:
                self.on_end(self)

    async def _write_record(self) -> None:
        if self.records is None:
            return
        end = self.ended or time.time()
        info = self.info
        record = CallRecord(
            id=f"{self.call_id}:{self._a_tag}",
            call_id=self.call_id,
            start=self.started,
            caller=info.caller,
            callee=info.callee,
            callee_normalized=info.callee_normalized,
            status=str(self.status or 500),
            ring=self.ring,
            answer=self.answer,
            end=end,
            from_trunk=info.from_trunk,
            to_trunk=self.to_trunk,
            reason=self.reason,
            hangup_by=self.hangup_by,
            duration=max(0.0, end - self.answer) if self.answer is not None else 0.0,
            pdd=(self.ring - self.started) if self.ring is not None else None,
            media_stats=json.dumps(self.media_stats) if self.media_stats else None,
            extra={"caller_normalized": info.caller_normalized, "b_call_id": self.b.call_id if self.b else "",
                   **({"transferred_to": self.transferred_to} if self.transferred_to else {})},
        )
        try:
            await self.records.add(record)
        except Exception:
            log.exception("[%s] writing the call record failed", self.call_id)
