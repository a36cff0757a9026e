"""The two legs of a B2BUA call: a UAS towards the caller, a UAC towards the callee.

Each leg is a complete user agent of its own -- its own Call-ID, tags, CSeq, Via and
Contact, its own :class:`~sipline.sip.dialog.Dialog` -- and knows nothing about the other
leg.  What a leg learns from its peer it reports as a typed :class:`LegEvent` to its owner
(the :class:`~sipline.roles.b2bua.call.B2BCall`), and what the owner wants done it asks
through methods (``progress``, ``answer``, ``reject``, ``cancel``, ``bye``, ``request``).
That is what keeps the two sides apart: no message object of one leg is ever sent on the
other.

UAS duties a B2BUA cannot skip: retransmitting its 2xx until the ACK (RFC 3261 §13.3.1.4),
answering a CANCEL'ed INVITE with 487, and 481 for requests to a dialog it does not know.
UAC duties: CANCEL only after a provisional response (§9.1), ACK every 2xx retransmission,
answer digest challenges (§22.2) with a fresh branch and the next CSeq.

Reliable provisionals (RFC 3262) are hop-by-hop: the outbound leg offers ``100rel`` and
PRACKs the callee's reliable 1xx in its early dialog; the inbound leg sends its 1xx reliably
when the caller asked for it (RSeq, retransmission until PRACK, a 2xx held back while a 1xx
with SDP is unacknowledged).  The bookkeeping is :mod:`sipline.sip.b2bua.reliable`.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ...runtime.endpoint import ClientCallbacks, Destination, Endpoint
from ...sip.auth import DigestClient, parse_challenges
from ...sip.auth.header import Credentials
from ...sip.b2bua.reliable import (
    ReliableReceiver,
    ReliableSender,
    parse_rack,
    parse_rseq,
    requires_100rel,
    supports_100rel,
)
from ...sip.dialog import Dialog
from ...sip.errors import ProtocolError, UsageError
from ...sip.ids import IdSource
from ...sip.message import NameAddr, Request, Response
from ...sip.message.builders import cancel_for, make_request, response_to
from ...sip.methods import ACK, BYE, CANCEL, INVITE, OPTIONS, PRACK
from ...sip.timers import TimerConfig
from ...sip.transaction.keys import TransactionKey
from ...sip.transport import Peer

__all__ = [
    "LegHost",
    "LegEvent",
    "Provisional",
    "Answered",
    "Failed",
    "HungUp",
    "InDialogRequest",
    "InboundLeg",
    "OutboundLeg",
]

log = logging.getLogger("sipline.b2bua")

SDP = "application/sdp"


class LegHost(Protocol):
    """What a leg needs from the SBC that owns the endpoint."""

    endpoint: Endpoint
    ids: IdSource
    timers: TimerConfig
    #: Retry-After seconds for calls refused by a limit.
    retry_after: int

    def via(self, transport: str) -> str: ...

    def contact(self, transport: str) -> NameAddr: ...

    async def resolve(self, uri: object, transport: str) -> Peer: ...

    def attach(self, call_id: str, tag: str, leg: InboundLeg | OutboundLeg) -> None: ...

    def detach(self, call_id: str, tag: str) -> None: ...

    def spawn(self, coro: object) -> None: ...


# -- events a leg reports -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LegEvent:
    """Base of what a leg reports to its call."""


@dataclass(frozen=True, slots=True)
class Provisional(LegEvent):
    """1xx from the callee: ringing (180) or early media (183 with SDP)."""

    status: int
    reason: str
    sdp: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Answered(LegEvent):
    """2xx to the initial INVITE."""

    sdp: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Failed(LegEvent):
    """Final non-2xx to the initial INVITE; status 0 for transport failure, 408 for timeout."""

    status: int
    reason: str
    reason_headers: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class HungUp(LegEvent):
    """The peer ended the call: BYE in a dialog, or CANCEL before the answer."""

    method: str
    reason_headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InDialogRequest(LegEvent):
    """A mid-call request to relay (re-INVITE, UPDATE, INFO...); answer with ``respond``."""

    request: Request
    respond: Callable[[int, str, bytes, Sequence[tuple[str, str]]], None]


Sink = Callable[["InboundLeg | OutboundLeg", LegEvent], None]


def _sdp(message: Request | Response) -> bytes:
    return message.body if message.body and message.content_type == SDP else b""


# -- the leg towards the caller ------------------------------------------------------------

class InboundLeg:
    """We are the UAS: the caller's INVITE came in on server transaction ``key``."""

    def __init__(self, host: LegHost, invite: Request, key: TransactionKey, transport: str, sink: Sink) -> None:
        self.host = host
        self.invite = invite
        self.key = key
        self.transport = transport
        self.sink = sink
        self.call_id = invite.call_id
        self.tag = host.ids.tag()
        self.dialog: Dialog | None = None
        self.final = False
        self.acked = False
        self._ok: Response | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: RFC 3262 state when the caller supports 100rel; None otherwise (the common case).
        self._reliable: ReliableSender | None = None
        if invite.headers.get("Supported") is not None or invite.headers.get("Require") is not None:
            if supports_100rel(invite):
                self._reliable = ReliableSender(
                    required=requires_100rel(invite), supported=True, invite_cseq=invite.cseq.seq,
                    first_rseq=zlib.crc32(host.ids.token(4).encode()))
        self._prack_timers: dict[int, asyncio.TimerHandle] = {}
        #: A 2xx waiting for the PRACK of a reliable 1xx with SDP (RFC 3262 §3).
        self._deferred: tuple[bytes, Sequence[tuple[str, str]]] | None = None
        host.attach(self.call_id, self.tag, self)

    def _respond(self, status: int, reason: str | None, body: bytes, headers: Sequence[tuple[str, str]]) -> Response:
        # Record-Route is echoed (§12.1.1): it names the caller's own proxies, nothing of the
        # other side, and keeps them in the dialog's path.
        response = response_to(self.invite, status, reason, to_tag=self.tag, headers=headers, body=body,
                               content_type=SDP if body else None)
        try:
            self.host.endpoint.respond(self.key, response)
        except UsageError as exc:  # the transaction is gone (caller gave up)
            log.debug("[%s] cannot respond %d: %s", self.call_id, status, exc)
        return response

    def progress(self, status: int, reason: str, sdp: bytes = b"", headers: Sequence[tuple[str, str]] = ()) -> None:
        if self.final:
            return
        extra = [("Contact", str(self.host.contact(self.transport))), *headers]
        reliable = self._reliable
        if reliable is not None and reliable.wants_reliable(status, bool(sdp)):
            extra.extend(reliable.send(bool(sdp)))
            response = self._respond(status, reason, sdp, extra)
            rseq = reliable.next_rseq - 1
            self._arm_prack(response, rseq, self.host.timers.t1, 0.0)
            return
        self._respond(status, reason, sdp, extra)

    def _arm_prack(self, response: Response, rseq: int, interval: float, elapsed: float) -> None:
        loop = asyncio.get_running_loop()
        self._prack_timers[rseq] = loop.call_later(interval, self._resend_1xx, response, rseq, interval,
                                                   elapsed + interval)

    def _resend_1xx(self, response: Response, rseq: int, interval: float, elapsed: float) -> None:
        """RFC 3262 §3: resend at T1, 2*T1, 4*T1 ... until PRACKed; give up after 64*T1."""
        self._prack_timers.pop(rseq, None)
        if self._reliable is None or not self._reliable.unacknowledged(rseq):
            return
        if self.final and self._deferred is None:  # answered or rejected: the 1xx is moot
            return
        if elapsed >= 64 * self.host.timers.t1:
            log.info("[%s] no PRACK for reliable %d", self.call_id, response.status)
            self._deferred, self.final = None, False
            self.reject(504, "No PRACK")
            self.sink(self, HungUp("PRACK-TIMEOUT"))
            return
        try:
            self.host.endpoint.respond(self.key, response)
        except UsageError:
            return
        self._arm_prack(response, rseq, 2 * interval, elapsed)

    def _on_prack(self, request: Request, key: TransactionKey) -> None:
        endpoint = self.host.endpoint
        try:
            rack = parse_rack(request.headers.get("RAck") or "")
        except ProtocolError as exc:
            endpoint.respond(key, response_to(request, 400, exc.reason[:60]))
            return
        if self._reliable is None or not self._reliable.acknowledge(rack):
            endpoint.respond(key, response_to(request, 481, "No Such Provisional Response"))
            return
        endpoint.respond(key, response_to(request, 200))
        timer = self._prack_timers.pop(rack.rseq, None)
        if timer is not None:
            timer.cancel()
        if self._deferred is not None and not self._reliable.answer_blocked:
            sdp, headers = self._deferred
            self._deferred = None
            self._send_answer(sdp, headers)

    def answer(self, sdp: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
        if self.final:
            return
        self.final = True
        if self._reliable is not None and self._reliable.answer_blocked:
            self._deferred = (sdp, headers)
            return
        self._send_answer(sdp, headers)

    def _send_answer(self, sdp: bytes, headers: Sequence[tuple[str, str]]) -> None:
        extra = [("Contact", str(self.host.contact(self.transport))), *headers]
        ok = self._respond(200, "OK", sdp, extra)
        self.dialog = Dialog.uas(self.invite, ok)
        self._ok = ok
        if self.transport == "udp":
            self._arm(self.host.timers.t1, 0.0)

    def _arm(self, interval: float, elapsed: float) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(interval, self._retransmit, interval, elapsed + interval)

    def _retransmit(self, interval: float, elapsed: float) -> None:
        """§13.3.1.4: resend the 2xx at T1, 2*T1 ... capped at T2; give up after 64*T1."""
        self._timer = None
        if self._ok is None or self.acked:
            return
        if elapsed >= 64 * self.host.timers.t1:
            log.info("[%s] no ACK for our 2xx", self.call_id)
            self.sink(self, HungUp("ACK-TIMEOUT"))
            return
        try:
            self.host.endpoint.respond(self.key, self._ok)
        except UsageError:
            return
        self._arm(min(2 * interval, self.host.timers.t2), elapsed)

    def reject(self, status: int, reason: str | None = None, headers: Sequence[tuple[str, str]] = ()) -> None:
        if self.final:
            return
        self.final = True
        self._respond(status, reason, b"", headers)

    def on_cancel(self) -> None:
        if self.final:
            return
        self.reject(487, "Request Terminated")
        self.sink(self, HungUp(CANCEL))

    def on_ack(self, ack: Request) -> None:
        self.acked = True
        self._ok = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_request(self, request: Request, key: TransactionKey) -> None:
        if request.method == PRACK:
            self._on_prack(request, key)
            return
        _receive_in_dialog(self, request, key)

    def request(self, method: str, body: bytes = b"", headers: Sequence[tuple[str, str]] = (),
                content_type: str | None = None) -> asyncio.Future[Response]:
        assert self.dialog is not None
        return _send_in_dialog(self.host, self.dialog, self.transport, method, body, headers, content_type)

    def bye(self, headers: Sequence[tuple[str, str]] = ()) -> asyncio.Future[Response] | None:
        return _bye(self, self.dialog, self.transport, headers)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for timer in self._prack_timers.values():
            timer.cancel()
        self._prack_timers.clear()
        self.host.detach(self.call_id, self.tag)


# -- the leg towards the callee ------------------------------------------------------------

class OutboundLeg:
    """We are the UAC: a fresh INVITE with our own identifiers goes to ``peer``."""

    def __init__(self, host: LegHost, *, uri: str, from_: NameAddr, to: NameAddr, peer: Peer, sink: Sink,
                 digest: DigestClient | None = None) -> None:
        self.host = host
        self.uri = uri
        self.from_ = from_.with_tag(host.ids.tag())
        self.to = to
        self.peer = peer
        self.transport = peer.transport
        self.sink = sink
        self.digest = digest
        self.call_id = host.ids.call_id()
        self.tag = self.from_.tag or ""
        self.cseq = 1
        self.invite: Request | None = None
        self.dialog: Dialog | None = None
        self.provisional = False
        self.final = False
        self._cancel_wanted = False
        self._credentials: Credentials | None = None
        self._ack: Request | None = None
        #: Early dialogs (by the callee's tag) that reliable provisionals created, for PRACK.
        self._early: dict[str, Dialog] = {}
        self._rseqs = ReliableReceiver()
        host.attach(self.call_id, self.tag, self)

    def start(self, sdp: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
        self.invite = make_request(
            INVITE, self.uri, from_=self.from_, to=self.to, call_id=self.call_id, cseq=self.cseq,
            via=self.host.via(self.transport), contact=self.host.contact(self.transport),
            headers=[*headers, ("Supported", "100rel")], body=sdp, content_type=SDP if sdp else None,
        )
        self._send(self.invite)

    def _send(self, invite: Request) -> None:
        callbacks = ClientCallbacks(lambda r: self._on_response(invite, r), lambda s: self._on_failure(invite, s))
        self.host.endpoint.send_request(invite, Destination(self.peer), callbacks)

    def _on_failure(self, invite: Request, status: int) -> None:
        if invite is not self.invite or self.final:
            return
        self.final = True
        # The endpoint reports a timeout as 408 and a transport failure as 503; the latter is
        # "no response at all" for failover, hence status 0.
        self.sink(self, Failed(0 if status == 503 else status, "no response" if status == 503 else "timeout"))

    def _on_response(self, invite: Request, response: Response) -> None:
        status = response.status
        if status < 200:
            if invite is self.invite and not self.final:
                self.provisional = True
                if self._cancel_wanted:
                    self._send_cancel()
                if status > 100 and self._prack(invite, response):
                    self.sink(self, Provisional(status, response.reason, _sdp(response),
                                                tuple(response.headers)))
            return
        if status < 300:
            self._on_2xx(invite, response)
            return
        if invite is not self.invite or self.final:
            return
        if status in (401, 407) and not self._cancel_wanted and self._authorize(invite, response):
            return
        self.final = True
        self.sink(self, Failed(status, response.reason, tuple(response.headers.get_all("Reason")),
                               tuple(response.headers)))

    def _prack(self, invite: Request, response: Response) -> bool:
        """PRACK a reliable 1xx (RFC 3262 §4); False for one to drop (retransmitted, out of
        order).  A 1xx without RSeq, or without a usable tag, counts as unreliable."""
        value = response.headers.get("RSeq")
        if value is None or not requires_100rel(response):
            return True
        try:
            rseq = parse_rseq(value)
            tag = response.to.tag
        except ProtocolError:
            return True
        if not tag:
            return True
        if not self._rseqs.accept(tag, rseq):
            return False
        dialog = self._early.get(tag)
        if dialog is None:
            try:
                dialog = self._early[tag] = Dialog.uac(invite, response)
            except (ProtocolError, UsageError):
                return True
        else:
            dialog.receive_response(response)
        _send_in_dialog(self.host, dialog, self.transport, PRACK, b"",
                        [("RAck", f"{rseq} {invite.cseq.seq} {INVITE}")])
        return True

    def _authorize(self, invite: Request, challenge: Response) -> bool:
        """Answer a 401/407 with a new INVITE (new branch, next CSeq); False to give up."""
        if self.digest is None:
            return False
        name = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
        challenges = []
        for value in challenge.headers.get_all(name):
            try:
                challenges.extend(parse_challenges(value, header=name))
            except ProtocolError:
                continue
        if not self.digest.should_retry(challenges, self._credentials):
            return False
        creds = self.digest.authorize(challenges, INVITE, invite.uri_text, invite.body)
        if creds is None:
            return False
        self._credentials = creds
        retry = invite.copy()
        retry.headers.pop_first("Via")
        retry.headers.prepend("Via", self.host.via(self.transport))
        self.cseq += 1
        retry.headers.set("CSeq", f"{self.cseq} {INVITE}")
        retry.headers.set("Authorization" if challenge.status == 401 else "Proxy-Authorization", str(creds))
        self.invite = retry
        self.provisional = False
        self._early.clear()
        self._rseqs = ReliableReceiver()
        self._send(retry)
        return True

    def _on_2xx(self, invite: Request, response: Response) -> None:
        tag = response.to.tag or ""
        if self.dialog is not None:
            if self.dialog.id.remote_tag == tag and self._ack is not None:
                self.host.endpoint.send_stateless(self._ack, Destination(self.peer))
            return
        dialog = self._early.get(tag)
        if dialog is not None:  # the early dialog of a PRACKed 1xx: its CSeq goes on
            dialog.receive_response(response)
        else:
            try:
                dialog = Dialog.uac(invite, response)
            except ProtocolError as exc:
                log.info("[%s] unusable 2xx: %s", self.call_id, exc.reason)
                return
        self.dialog = dialog
        self._ack = dialog.ack_for_2xx(invite, via=self.host.via(self.transport))
        self.host.endpoint.send_stateless(self._ack, Destination(self.peer))
        if self.final or self._cancel_wanted:
            # Answered after we gave up (CANCEL crossed the 2xx): end it at once (§15).
            self.final = True
            self.host.spawn(self._bye_quietly())
            return
        self.final = True
        self.sink(self, Answered(_sdp(response), tuple(response.headers)))

    async def _bye_quietly(self) -> None:
        future = self.bye()
        if future is not None:
            try:
                await future
            except Exception as exc:  # best effort: the call is over anyway
                log.debug("[%s] BYE after CANCEL race failed: %s", self.call_id, exc)

    def on_stray_response(self, response: Response) -> None:
        if response.status < 300 and response.cseq.method == INVITE and self._ack is not None:
            self.host.endpoint.send_stateless(self._ack, Destination(self.peer))

    def cancel(self) -> None:
        """Abandon the INVITE; the CANCEL waits for a provisional response (§9.1)."""
        if self.final or self.invite is None:
            return
        self._cancel_wanted = True
        if self.provisional:
            self._send_cancel()

    def _send_cancel(self) -> None:
        assert self.invite is not None
        self._cancel_wanted = True
        self.host.endpoint.send_request(cancel_for(self.invite), Destination(self.peer),
                                        ClientCallbacks(lambda r: None, lambda s: None))

    def on_request(self, request: Request, key: TransactionKey) -> None:
        _receive_in_dialog(self, request, key)

    def on_ack(self, ack: Request) -> None:
        """ACK for a 2xx we sent to a relayed re-INVITE: nothing to do."""

    def request(self, method: str, body: bytes = b"", headers: Sequence[tuple[str, str]] = (),
                content_type: str | None = None) -> asyncio.Future[Response]:
        assert self.dialog is not None
        return _send_in_dialog(self.host, self.dialog, self.transport, method, body, headers, content_type)

    def bye(self, headers: Sequence[tuple[str, str]] = ()) -> asyncio.Future[Response] | None:
        return _bye(self, self.dialog, self.transport, headers)

    def close(self) -> None:
        self.host.detach(self.call_id, self.tag)


# -- shared in-dialog plumbing ---------------------------------------------------------------

def _receive_in_dialog(leg: InboundLeg | OutboundLeg, request: Request, key: TransactionKey) -> None:
    """An in-dialog request on either leg: 481 without a dialog, dialog checks, then dispatch."""
    endpoint = leg.host.endpoint
    if leg.dialog is None:
        endpoint.respond(key, response_to(request, 481, to_tag=leg.tag))
        return
    try:
        leg.dialog.receive_request(request)
    except ProtocolError as exc:
        endpoint.respond(key, response_to(request, exc.status, exc.reason[:60]))
        return
    _dispatch_in_dialog(leg, leg.dialog, request, key, leg.sink)


def _dispatch_in_dialog(leg: InboundLeg | OutboundLeg, dialog: Dialog, request: Request, key: TransactionKey,
                        sink: Sink) -> None:
    endpoint = leg.host.endpoint
    method = request.method
    if method == BYE:
        endpoint.respond(key, response_to(request, 200))
        dialog.terminate()
        sink(leg, HungUp(BYE, tuple(request.headers.get_all("Reason"))))
    elif method == OPTIONS:
        endpoint.respond(key, response_to(request, 200))
    elif method == ACK:
        return
    elif method == PRACK:  # hop-by-hop: never relayed; ours are answered before the dialog
        endpoint.respond(key, response_to(request, 481, "No Such Provisional Response"))
    else:
        def respond(status: int, reason: str, body: bytes, headers: Sequence[tuple[str, str]]) -> None:
            extra = list(headers)
            if method == INVITE and 200 <= status < 300:
                extra.insert(0, ("Contact", str(leg.host.contact(leg.transport))))
            try:
                endpoint.respond(key, response_to(request, status, reason, headers=extra, body=body,
                                                  content_type=SDP if body else None, copy_record_route=False))
            except UsageError as exc:
                log.debug("[%s] relayed response lost: %s", request.call_id, exc)

        sink(leg, InDialogRequest(request, respond))


def _send_in_dialog(host: LegHost, dialog: Dialog, transport: str, method: str, body: bytes,
                    headers: Sequence[tuple[str, str]], content_type: str | None = None) -> asyncio.Future[Response]:
    """Send ``method`` in ``dialog``; the future gets the final response (408/503 built locally
    on timeout or transport failure).  A 2xx to INVITE is ACKed here."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Response] = loop.create_future()
    request = dialog.create_request(method, via=host.via(transport), headers=headers, body=body,
                                    content_type=content_type or (SDP if body else None))

    def on_response(response: Response) -> None:
        if response.status < 200 or done.done():
            return
        if method != BYE:
            dialog.receive_response(response)
        if method == INVITE and response.status < 300:
            ack = dialog.ack_for_2xx(request, via=host.via(transport))
            host.spawn(_send_ack(host, dialog, transport, ack))
        done.set_result(response)

    def on_failure(status: int) -> None:
        if not done.done():
            done.set_result(response_to(request, status))

    async def go() -> None:
        try:
            dest = await host.resolve(dialog.next_hop(), transport)
        except Exception as exc:
            log.info("[%s] cannot reach %s: %s", dialog.id.call_id, dialog.next_hop(), exc)
            on_failure(503)
            return
        host.endpoint.send_request(request, Destination(dest), ClientCallbacks(on_response, on_failure))

    host.spawn(go())
    return done


async def _send_ack(host: LegHost, dialog: Dialog, transport: str, ack: Request) -> None:
    dest = await host.resolve(dialog.next_hop(), transport)
    host.endpoint.send_stateless(ack, Destination(dest))


def _bye(leg: InboundLeg | OutboundLeg, dialog: Dialog | None, transport: str,
         headers: Sequence[tuple[str, str]]) -> asyncio.Future[Response] | None:
    if dialog is None or dialog.terminated:
        return None
    future = _send_in_dialog(leg.host, dialog, transport, BYE, b"", headers)
    dialog.terminate()
    return future
