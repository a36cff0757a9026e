"""Call transfer through the SBC: what a REFER (RFC 3515) from one side of a call does.

A REFER asks the *other* party to call somebody else.  Across an SBC that cannot simply
cross: its Refer-To and Referred-By name addresses of the referring side (topology hiding),
and the new call would be placed by a party the operator does not control.  So the trunk
the REFER came from decides (``refer`` in ``[[trunks]]``):

``terminate``  sipline is the transferee.  202 to the REFER, a ``message/sipfrag`` NOTIFY
               for each step (100, 18x, the final status), a new outbound leg to the
               Refer-To number through the normal routing (number plan, allowed
               destinations, routes, channel caps, failover), and once it answers the
               remaining party is bridged to it -- through the relay when media is anchored
               (the new party simply takes over the relay side of the referrer, the
               remaining party notices nothing), by a re-INVITE carrying the new party's SDP
               otherwise -- and the referring leg is ended with BYE.
``pass``       the REFER goes to the other leg with Refer-To rewritten to
               ``sip:NUMBER@<our address>`` (so the transferee calls back through us, where
               the normal admission applies) and Referred-By to ``sip:USER@<our
               address>``; the refer-event NOTIFYs coming back are relayed with their
               sipfrag reduced to its status line.
``reject``     403.

Attended transfer (``Replaces`` inside Refer-To, RFC 3891) names a dialog of the referring
side that the far side cannot know; it is refused with 501 under ``terminate`` and dropped
from the Refer-To under ``pass``.

While a terminated transfer runs, a BYE from the referrer (many phones hang up right after
the 202) ends only the referrer's leg: the remaining party waits for the new call; if the
transfer fails then, the remaining party is hung up too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ...sip.b2bua.routing import FailoverAction, failover_action
from ...sip.b2bua.topology import OriginWriter, number_of, relay_headers
from ...sip.dialog import ReferRequest, notify_for, parse_refer, parse_sipfrag, sipfrag
from ...sip.dialog.refer import SIPFRAG_TYPE
from ...sip.errors import ProtocolError
from ...sip.message import NameAddr, Response, SipURI
from ...sip.methods import INVITE, NOTIFY, REFER
from .legs import Answered, Failed, HungUp, InboundLeg, InDialogRequest, LegEvent, OutboundLeg, Provisional

if TYPE_CHECKING:
    from .call import B2BCall, Release, Side, Target

__all__ = ["on_refer_or_notify", "Transfer"]

log = logging.getLogger("sipline.b2bua")


def _other(side: Side) -> Side:
    return "b" if side == "a" else "a"


def on_refer_or_notify(call: B2BCall, event: InDialogRequest, from_side: Side) -> bool:
    """Handle a REFER, or a refer-event NOTIFY, that ``from_side`` sent; False leaves the
    request to the call's generic relay (a NOTIFY of another event package)."""
    request = event.request
    if request.method == NOTIFY:
        return _relay_notify(call, event, from_side)
    assert request.method == REFER
    policy = call.transfers.refer_policy(call.trunk_of(from_side))
    if policy == "reject":
        event.respond(403, "Transfer Not Allowed", b"", ())
        return True
    try:
        refer = parse_refer(request)
    except ProtocolError as exc:
        event.respond(exc.status, exc.reason[:60], b"", ())
        return True
    if policy == "pass":
        call.host.spawn(_pass_refer(call, event, refer, from_side))
        return True
    if refer.replaces is not None:
        event.respond(501, "Attended Transfer Not Supported", b"", ())
        return True
    if call.transfer is not None:
        event.respond(491, "Request Pending", b"", ())
        return True
    transfer = call.transfer = Transfer(call, event, refer, from_side)
    call.host.spawn(transfer.run())
    return True


# -- pass ----------------------------------------------------------------------------------------

async def _pass_refer(call: B2BCall, event: InDialogRequest, refer: ReferRequest, from_side: Side) -> None:
    to_side = _other(from_side)
    other = call.leg(to_side)
    if other is None or other.dialog is None or other.dialog.terminated:
        event.respond(481, "Call/Transaction Does Not Exist", b"", ())
        return
    number = number_of(NameAddr(refer.target))
    if not number:
        event.respond(400, "Refer-To Without A Number", b"", ())
        return
    written = call.transfers.refer_number(number, call.trunk_of(from_side), call.trunk_of(to_side))
    ours = call.host.contact(other.transport).uri
    assert isinstance(ours, SipURI)
    headers = [("Refer-To", str(NameAddr(ours.replace(user=written))))]
    by = number_of(refer.referred_by) if refer.referred_by is not None else None
    if by:
        headers.append(("Referred-By", str(NameAddr(SipURI("sip", by, None, ours.host, None)))))
    headers.extend(relay_headers(event.request, call.policy_of(to_side)))
    response = await other.request(REFER, b"", headers)
    policy = call.policy_of(from_side)
    event.respond(response.status, response.reason, b"", [(n, v) for n, v in response.headers if policy.allows(n)])


def _relay_notify(call: B2BCall, event: InDialogRequest, from_side: Side) -> bool:
    """A refer-event NOTIFY (of a passed REFER) to the referrer, its sipfrag reduced to the
    status line: a sipfrag may carry headers of the far side's new call."""
    request = event.request
    if (request.headers.get("Event") or "").split(";", 1)[0].strip().lower() != "refer":
        return False
    to_side = _other(from_side)
    other = call.leg(to_side)
    if other is None or other.dialog is None or other.dialog.terminated:
        event.respond(481, "Call/Transaction Does Not Exist", b"", ())
        return True
    try:
        status, reason = parse_sipfrag(request.body)
    except ProtocolError as exc:
        event.respond(400, exc.reason[:60], b"", ())
        return True
    headers = [(n, request.headers.get(n) or "") for n in ("Event", "Subscription-State") if request.headers.get(n)]
    future = other.request(NOTIFY, sipfrag(status, reason), headers, content_type=SIPFRAG_TYPE)

    def done(fut: asyncio.Future[Response]) -> None:
        response = fut.result()
        event.respond(response.status, response.reason, b"", ())

    future.add_done_callback(done)
    return True


# -- terminate -----------------------------------------------------------------------------------

class Transfer:
    """One transfer performed by the SBC (``terminate``; see the module docstring)."""

    def __init__(self, call: B2BCall, event: InDialogRequest, refer: ReferRequest, side: Side) -> None:
        self.call = call
        self.event = event
        self.refer = refer
        #: The referrer's side; the new party takes it over.
        self.side = side
        self.remaining: Side = _other(side)
        self.referrer = call.leg(side)
        self.referrer_gone = False
        self.leg: OutboundLeg | None = None
        self._result: asyncio.Future[LegEvent] | None = None
        self._rang = False

    def absorbs(self, leg: InboundLeg | OutboundLeg, event: LegEvent) -> bool:
        """The call asks before handling a leg event: the referrer's BYE is ours."""
        if leg is self.referrer and isinstance(event, HungUp):
            self.referrer_gone = True
            return True
        return False

    async def run(self) -> None:
        call = self.call
        self.event.respond(202, "Accepted", b"", ())
        self._notify(100, "Trying")
        try:
            status, reason = await self._attempt()
        except Exception:
            log.exception("[%s] transfer failed", call.call_id)
            status, reason = 500, "Server Internal Error"
        finally:
            call.transfer = None
        await self._final_notify(status, reason)
        if 200 <= status < 300:
            if not self.referrer_gone and self.referrer is not None:
                await call._bye(self.referrer, ())
        elif self.referrer_gone and call.ended is None:
            # The referrer left and nobody took its place: the remaining party is alone.
            remaining = call.leg(self.remaining)
            call.reason = "transfer failed"
            if remaining is not None:
                call.host.spawn(call._bye(remaining, ()))
            call._finish("sbc")

    async def _attempt(self) -> tuple[int, str]:
        call = self.call
        refusal: tuple[int, str]
        targets, refusal = await call.transfers.transfer_targets(call, self.refer.target, self.side)
        if not targets:
            return refusal
        last: tuple[int, str] = (503, "Service Unavailable")
        for target in targets:
            if call.ended is not None:
                return 487, "Request Terminated"
            release, limit = await call.acquire(target.trunk)
            if release is None:
                last = (503, "Service Unavailable")
                continue
            result = await self._try(target)
            if isinstance(result, Answered):
                if call.ended is not None:
                    await release()
                    if self.leg is not None:
                        await call._bye(self.leg, ())
                    return 487, "Request Terminated"
                await self._bridge(target, result, release)
                return 200, "OK"
            await release()
            if self.leg is not None:
                self.leg.close()
            assert isinstance(result, Failed)
            last = (result.status or 503, result.reason)
            if failover_action(result.status, result.reason_headers) is FailoverAction.STOP:
                break
        return last

    async def _try(self, target: Target) -> LegEvent:
        call = self.call
        offer = await self._offer()
        leg = OutboundLeg(call.host, uri=target.uri, from_=target.from_, to=target.to, peer=target.peer,
                          sink=self._on_leg, digest=target.digest)
        self.leg = leg
        loop = asyncio.get_running_loop()
        self._result = result = loop.create_future()
        leg.start(offer, [*target.headers, *relay_headers(call.invite, target.policy)])
        try:
            return await asyncio.wait_for(asyncio.shield(result), call.ring_timeout)
        except asyncio.TimeoutError:
            leg.cancel()
            return Failed(408, "Request Timeout")

    async def _offer(self) -> bytes:
        """The remaining party's SDP, offered to the new party on the referrer's side."""
        call = self.call
        sdp = call.last_sdp[self.remaining]
        call.origins[self.side] = OriginWriter(call.host.ids.token(8))  # a new party, a new session
        if sdp and call._anchored:
            call.media.reset_side(self.side)
            return await call.anchor(sdp, self.remaining, "offer", self.side)
        return call.scrub(sdp, self.side)

    def abort(self) -> None:
        """The call ended (the remaining party hung up): give up the new party too."""
        leg = self.leg
        if leg is not None and self._result is not None and not self._result.done():
            leg.cancel()
            self._result.set_result(Failed(487, "Request Terminated"))

    def _on_leg(self, leg: InboundLeg | OutboundLeg, event: LegEvent) -> None:
        if leg is not self.leg or self._result is None or self._result.done():
            return
        if isinstance(event, Provisional):
            if not self._rang:
                self._rang = True
                self._notify(event.status, event.reason)
        elif isinstance(event, (Answered, Failed)):
            self._result.set_result(event)
        elif isinstance(event, HungUp):
            self._result.set_result(Failed(487, "Request Terminated"))

    async def _bridge(self, target: Target, answered: Answered, release: Release) -> None:
        call = self.call
        leg = self.leg
        assert leg is not None
        if answered.sdp:
            call.last_sdp[self.side] = answered.sdp
            if call._anchored:
                async with call._media_lock:
                    await call.media.rewrite(answered.sdp, self.side, "answer")
            else:
                remaining = call.leg(self.remaining)
                if remaining is not None and remaining.dialog is not None and not remaining.dialog.terminated:
                    # Without the relay the remaining party must be told where the new one is.
                    await remaining.request(INVITE, call.scrub(answered.sdp, self.remaining), ())
        log.info("[%s] transferred to %s on %s", call.call_id, target.uri, target.trunk)
        await call.replace_leg(self.side, leg, target.trunk, release)

    def _notify(self, status: int, reason: str) -> asyncio.Future[Response] | None:
        leg = self.referrer
        if self.referrer_gone or leg is None or leg.dialog is None or leg.dialog.terminated:
            return None
        headers, body, content_type = notify_for(status, reason=reason)
        return leg.request(NOTIFY, body, headers, content_type=content_type)

    async def _final_notify(self, status: int, reason: str) -> None:
        future = self._notify(status, reason)
        if future is not None:
            try:
                await asyncio.wait_for(future, 64 * self.call.host.timers.t1)
            except (asyncio.TimeoutError, OSError) as exc:
                log.info("[%s] final transfer NOTIFY failed: %s", self.call.call_id, exc)
