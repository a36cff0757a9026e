"""One call: the INVITE dialog, its media leg and what the application does with it.

The call drives the sans-I/O pieces -- :class:`~sipline.sip.dialog.Dialog` for routing and
CSeq, :class:`~sipline.sip.dialog.InviteUsage` for offer/answer and glare, :mod:`sipline.
sip.dialog.refer` for transfer -- and turns what happens into a state (``call.state``) and
a stream of :class:`CallEvent` (``async for ev in call.events()``).  Media goes through a
:class:`~sipline.roles.ua.media.MediaLeg`.

UAC: INVITE with an offer; 1xx -> ``ringing`` / ``early-media`` (183 with SDP); 2xx -> ACK,
``answered``; 3xx-6xx -> ``failed`` with the status.  UAS: 180 at once (or 183 with our
SDP answer for early media, :meth:`Call.early_media`), then :meth:`Call.answer` (200 +
answer, retransmitted until the ACK, §13.3.1.4) or :meth:`Call.reject`.  A CANCEL ends an
unanswered incoming call with 487.  Requests inside the established dialog (re-INVITE,
INFO, REFER, NOTIFY) are handled by the :class:`~sipline.roles.ua.transfer.InDialog` base.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...media.codecs.base import Pcm
from ...media.rtp_session import SessionStats
from ...sip.dialog import Dialog, InviteUsage, OfferState, Replaces, find_replaced, parse_replaces
from ...sip.errors import ProtocolError, UsageError
from ...sip.message import NameAddr, Request, Response, SipURI
from ...sip.message.builders import cancel_for, make_request
from ...sip.methods import BYE, INFO, INVITE
from ...sip.sdp import SessionDescription, build_answer, build_offer, negotiate
from ...sip.transaction.keys import TransactionKey
from ...sip.transport import Peer
from .media import SDP, MediaLeg, local_session
from .media import sdp_of as _sdp_of
from .transfer import InDialog

if TYPE_CHECKING:
    from ...runtime.transport import Origin
    from .agent import UserAgent

__all__ = ["Call", "CallState", "CallEvent", "CallSummary"]

log = logging.getLogger("sipline.ua.call")



class CallState(str, enum.Enum):
    CALLING = "calling"
    RINGING = "ringing"
    EARLY_MEDIA = "early-media"
    INCOMING = "incoming"
    ANSWERED = "answered"
    ENDED = "ended"
    FAILED = "failed"


_UNANSWERED = (CallState.CALLING, CallState.RINGING, CallState.EARLY_MEDIA, CallState.INCOMING)


@dataclass(frozen=True, slots=True)
class CallEvent:
    """Something that happened: ``kind`` is trying, ringing, early-media, answered, held,
    resumed, dtmf, transfer-progress, transferred, ended or failed."""

    kind: str
    status: int | None = None
    reason: str = ""
    detail: Any = None


@dataclass(frozen=True, slots=True)
class CallSummary:
    """The call after the fact: final SIP status, who ended it, duration and media figures."""

    call_id: str
    direction: str
    remote: str
    final_status: int | None
    reason: str
    answered: bool
    ended_by: str
    duration: float
    stats: SessionStats | None


class Call(InDialog):
    """A call (see module docstring).  Created by :meth:`UserAgent.call` or delivered by
    :meth:`UserAgent.incoming`; never constructed directly."""

    def __init__(self, ua: UserAgent, *, outgoing: bool, call_id: str, local_tag: str, remote: NameAddr) -> None:
        self.ua = ua
        self.outgoing = outgoing
        self.call_id = call_id
        self.local_tag = local_tag
        #: The far party (To of our INVITE, From of theirs).
        self.remote = remote
        self.state = CallState.CALLING if outgoing else CallState.INCOMING
        self.dialog: Dialog | None = None
        self.usage = InviteUsage(owner=outgoing, draw=ua._rng.randrange)
        self.media = MediaLeg(ua.ports, ua.listen_host, ua.codecs, ua.media_filter)
        #: The INVITE that created the call (ours, with credentials if challenged, or theirs).
        self.invite: Request | None = None
        self.final_status: int | None = None
        self.reason = ""
        self.ended_by = ""
        self.replaces: Call | None = None
        self.transferred_to: Call | None = None
        self._server_key: TransactionKey | None = None
        self._invite_peer: Peer | None = None
        self._provisional = False
        self._cancel_pending = False
        self._ack: tuple[Request, Peer] | None = None
        self._early_answer: SessionDescription | None = None
        self._ok: Response | None = None
        self._ok_key: TransactionKey | None = None
        self._retransmit: asyncio.TimerHandle | None = None
        self._events: asyncio.Queue[CallEvent | None] = asyncio.Queue()
        self._answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._ended = asyncio.Event()
        self._transfer: asyncio.Future[int] | None = None
        self._sdp_version = 1
        self.started_at = asyncio.get_running_loop().time()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self._replaces_header: Replaces | None = None
        self._extra_headers: tuple[tuple[str, str], ...] = ()
        #: SDP o= session id: digits only (RFC 8866 §5.2).
        self._session_id = str(int(ua.ids.token(6), 16))

    @property
    def key(self) -> tuple[str, str]:
        return (self.call_id, self.local_tag)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def new_outgoing(cls, ua: UserAgent, uri: SipURI, *, replaces: Replaces | None = None,
                 headers: Sequence[tuple[str, str]] = ()) -> Call:
        call = cls(ua, outgoing=True, call_id=ua.ids.call_id(), local_tag=ua.ids.tag(), remote=NameAddr(uri))
        call._replaces_header = replaces
        call._extra_headers = tuple(headers)
        return call

    @classmethod
    def new_incoming(cls, ua: UserAgent, request: Request, key: TransactionKey, origin: Origin) -> Call:
        call = cls(ua, outgoing=False, call_id=request.call_id, local_tag=ua.ids.tag(), remote=request.from_)
        call.invite = request
        call._server_key = key
        offer = _sdp_of(request)
        if offer is not None:
            call.usage.receive_offer(offer)
        value = request.headers.get("Replaces")
        if value is not None:
            wanted = parse_replaces(value)
            dialogs = [c.dialog for c in ua.calls if c.dialog is not None]
            found = find_replaced(wanted, dialogs)
            if found is None:
                raise ProtocolError("no dialog to replace", status=481)
            call.replaces = next(c for c in ua.calls if c.dialog is found)
        return call

    # -- application API: state and events ------------------------------------------------------

    def _emit(self, kind: str, status: int | None = None, reason: str = "", detail: Any = None) -> None:
        self._events.put_nowait(CallEvent(kind, status, reason, detail))

    async def events(self) -> AsyncIterator[CallEvent]:
        """Every event until the call is over."""
        while (event := await self._events.get()) is not None:
            yield event

    async def wait_answered(self, timeout: float | None = None) -> bool:
        """True once answered; False if the call failed or ended first."""
        return await asyncio.wait_for(asyncio.shield(self._answered), timeout)

    async def wait_ended(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._ended.wait(), timeout)

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    @property
    def remote_identity(self) -> str:
        """Display name and URI of the far party (P-Asserted-Identity when present)."""
        pai = self.invite.headers.get("P-Asserted-Identity") if self.invite is not None and not self.outgoing else None
        return pai or str(self.remote)

    def summary(self) -> CallSummary:
        now = asyncio.get_running_loop().time()
        end = self.ended_at or now
        return CallSummary(
            call_id=self.call_id,
            direction="outgoing" if self.outgoing else "incoming",
            remote=str(self.remote.uri),
            final_status=self.final_status,
            reason=self.reason,
            answered=self.answered,
            ended_by=self.ended_by,
            duration=(end - self.answered_at) if self.answered_at is not None else 0.0,
            stats=self.media.stats(),
        )

    def stats(self) -> SessionStats | None:
        return self.media.stats()

    # -- media API ---------------------------------------------------------------------------

    async def play(self, path: str | Path | Pcm) -> None:
        """Send a WAV file (or int16 samples) to the far side; returns when sent."""
        await self.media.play(path)

    def record(self, path: str | Path) -> None:
        """Record the far side into *path* (written when the call ends)."""
        self.media.record(path)

    def audio_frames(self) -> AsyncIterator[Pcm]:
        """Incoming audio as 20 ms int16 frames until the call ends."""
        return self.media.frames()

    async def send_audio(self, frame: Pcm | bytes) -> None:
        """Send one 20 ms frame (160 int16 samples); paced by the RTP clock."""
        await self.media.send_audio(frame)

    async def send_dtmf(self, digits: str, *, method: str = "rfc4733") -> None:
        """Send digits as RFC 4733 events, or as SIP INFO ``application/dtmf-relay``."""
        if method == "info":
            for digit in digits:
                body = f"Signal={digit}\r\nDuration=160\r\n".encode()
                await self._in_dialog(INFO, body=body, content_type="application/dtmf-relay")
            return
        await self.media.send_dtmf(digits)

    def dtmf(self) -> AsyncIterator[str]:
        """Digits from the far side (RFC 4733 or SIP INFO), in order."""
        return self.media.digits()

    # -- outgoing call -------------------------------------------------------------------------

    def _local_sdp(self, offer: SessionDescription | None = None) -> SessionDescription:
        session = local_session(self.ua.host, self.media.port, self.ua.codecs, self._session_id, self._sdp_version)
        if offer is not None:
            return build_answer(offer, session)
        return build_offer(session)

    def _common_headers(self) -> list[tuple[str, str]]:
        return [("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY"),
                ("User-Agent", self.ua.user_agent)]

    async def start_outgoing(self) -> None:
        ua = self.ua
        await self.media.open()
        offer = self._local_sdp()
        self.usage.send_offer(offer)
        headers = self._common_headers() + list(self._extra_headers)
        if self._replaces_header is not None:
            headers.append(("Replaces", str(self._replaces_header)))
        uri = self.remote.uri
        self.invite = make_request(
            INVITE, uri, from_=ua.aor.with_tag(self.local_tag), to=self.remote, call_id=self.call_id,
            cseq=1, via=ua.via(), contact=ua.contact(), headers=headers, body=bytes(offer), content_type=SDP,
        )
        ua.spawn(self._run_invite())

    async def _run_invite(self) -> None:
        assert self.invite is not None
        try:
            peer = await self.ua.resolve(self.invite.uri)
        except Exception as exc:
            log.info("[%s] cannot locate %s: %s", self.call_id, self.invite.uri, exc)
            await self._finish(CallState.FAILED, 503, f"cannot locate target: {exc}", "network")
            return
        self._invite_peer = peer
        previous = None
        for _ in range(4):
            done: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
            invite = self.invite
            self.ua.send(invite, peer, self._invite_callback(invite, done))
            response = await done
            if response.status in (401, 407) and not self._cancel_pending:
                answer = self.ua.authorize(invite, response, previous)
                if answer is not None:
                    self.invite, previous = answer
                    continue
            break
        if response.status >= 300 and self.state in _UNANSWERED:
            await self._finish(CallState.FAILED, response.status, response.reason, "remote")

    def _invite_callback(self, invite: Request, done: asyncio.Future[Response]) -> Callable[[Response], None]:
        return lambda response: self._on_invite_response(invite, response, done)

    def _on_invite_response(self, invite: Request, response: Response, done: asyncio.Future[Response]) -> None:
        status = response.status
        if status < 200:
            self._on_provisional(response)
            return
        if status < 300:
            self._on_2xx(invite, response)
        if not done.done():
            done.set_result(response)

    def _on_provisional(self, response: Response) -> None:
        if self.state not in _UNANSWERED:
            return
        self._provisional = True
        if self._cancel_pending:
            self._send_cancel()
        if response.status == 100:
            self._emit("trying", 100, response.reason)
            return
        answer = _sdp_of(response) if self.usage.offer_state is OfferState.LOCAL_OFFER else None
        if answer is not None and self.usage.pending_offer is not None:
            self._early_answer = answer
            streams = negotiate(self.usage.pending_offer, answer, we_offered=True)
            self.ua.spawn(self.media.apply(streams[0]))
            if self.state is not CallState.EARLY_MEDIA:
                self.state = CallState.EARLY_MEDIA
                self._emit("early-media", response.status, response.reason)
        elif self.state is CallState.CALLING:
            self.state = CallState.RINGING
            self._emit("ringing", response.status, response.reason)

    def _on_2xx(self, invite: Request, response: Response) -> None:
        tag = response.to.tag or ""
        if self.dialog is not None:
            if self.dialog.id.remote_tag == tag and self._ack is not None:
                self.ua.endpoint.send_stateless(*self._ack)  # type: ignore[union-attr]
            elif self.dialog.id.remote_tag != tag:
                # A second fork answered: acknowledge it and hang it up (§13.2.2.4).
                other = Dialog.uac(invite, response)
                self.ua.spawn(self._ack_and_bye(other, invite))
            return
        self.dialog = Dialog.uac(invite, response)
        self.invite = invite
        answer = _sdp_of(response) or self._early_answer
        ack_body = b""
        try:
            if self.usage.offer_state is OfferState.LOCAL_OFFER and answer is not None:
                self.usage.receive_answer(answer)
            elif self.usage.offer_state is OfferState.STABLE and answer is not None:
                # The 2xx carried an offer (our INVITE had none): answer it in the ACK.
                self.usage.receive_offer(answer)
                mine = self._local_sdp(answer)
                self.usage.send_answer(mine)
                ack_body = bytes(mine)
        except ProtocolError as exc:
            log.info("[%s] bad answer: %s", self.call_id, exc.reason)
        self.ua.spawn(self._ack_and_start(invite, ack_body))
        self.final_status, self.reason = response.status, response.reason
        if self.state in _UNANSWERED:
            self._mark_answered(response.status, response.reason)

    async def _ack_and_start(self, invite: Request, body: bytes) -> None:
        assert self.dialog is not None
        ack = self.dialog.ack_for_2xx(invite, via=self.ua.via(), body=body, content_type=SDP if body else None)
        peer = await self._dialog_peer()
        self._ack = (ack, peer)
        self.ua.endpoint.send_stateless(ack, peer)  # type: ignore[union-attr]
        await self._apply_media()
        if self._cancel_pending and self.state is CallState.ANSWERED:
            await self.hangup()

    async def _ack_and_bye(self, dialog: Dialog, invite: Request) -> None:
        ack = dialog.ack_for_2xx(invite, via=self.ua.via())
        peer = await self.ua.resolve(dialog.next_hop(), use_proxy=False)
        self.ua.endpoint.send_stateless(ack, peer)  # type: ignore[union-attr]
        await self.ua.request(dialog.bye(via=self.ua.via()), peer)

    def _mark_answered(self, status: int, reason: str) -> None:
        self.state = CallState.ANSWERED
        self.answered_at = asyncio.get_running_loop().time()
        if not self._answered.done():
            self._answered.set_result(True)
        self._emit("answered", status, reason)

    async def _apply_media(self) -> None:
        local, remote = self.usage.local_sdp, self.usage.remote_sdp
        if local is None or remote is None:
            return
        we_offered = self.usage.owner if not self.answered else self._last_offer_ours
        offer, answer = (local, remote) if we_offered else (remote, local)
        try:
            streams = negotiate(offer, answer, we_offered=we_offered)
        except ProtocolError as exc:
            log.info("[%s] negotiation failed: %s", self.call_id, exc.reason)
            return
        if streams:
            await self.media.apply(streams[0])

    _last_offer_ours = True

    def _send_cancel(self) -> None:
        if self.invite is None or self._invite_peer is None:
            return
        self._cancel_pending = False
        self.ua.send(cancel_for(self.invite), self._invite_peer, lambda r: None)

    def cancel(self) -> None:
        """Abandon an unanswered outgoing call (CANCEL, §9.1); the INVITE then fails with 487.

        Before any provisional response the CANCEL waits for one, as the RFC asks.
        """
        if not self.outgoing or self.state not in _UNANSWERED:
            return
        self.ended_by = "local"
        if self._provisional:
            self._send_cancel()
        else:
            self._cancel_pending = True

    # -- incoming call ---------------------------------------------------------------------------

    def _ringing(self) -> bool:
        """An incoming call not answered yet (with or without early media)."""
        return not self.outgoing and self.state in (CallState.INCOMING, CallState.EARLY_MEDIA)

    def start_incoming(self) -> None:
        assert self.invite is not None and self._server_key is not None
        if self.ua.early_media and self.usage.pending_offer is not None and self.replaces is None:
            self.ua.spawn(self.early_media())
        else:
            self.ua.respond(self._server_key, self.invite, 180, to_tag=self.local_tag,
                            headers=[("Contact", str(self.ua.contact()))])
            self._emit("ringing", 180)
        if self.replaces is not None:
            self.ua.spawn(self._take_over())
        elif self.ua.auto_answer:
            self.ua.spawn(self.answer())
        self.ua.deliver(self)

    async def _take_over(self) -> None:
        """INVITE with Replaces (RFC 3891): answer it and end the call it replaces."""
        old = self.replaces
        await self.answer()
        if old is not None:
            await old.hangup()

    async def early_media(self) -> None:
        """Send 183 Session Progress with our SDP answer before answering (RFC 3960 style
        early media): the caller hears what we :meth:`play` while the call is unanswered.

        The 183 is sent unreliably (no 100rel) and the later 200 repeats the same answer.
        Needs an offer in the INVITE; does nothing once early media already started.
        """
        if not self._ringing():
            raise UsageError(f"cannot start early media in state {self.state.value}")
        if self.state is CallState.EARLY_MEDIA:
            return
        assert self.invite is not None and self._server_key is not None
        offer = self.usage.pending_offer
        if offer is None:
            raise UsageError("early media needs an offer in the INVITE")
        await self.media.open()
        if self.state is not CallState.INCOMING:  # cancelled (or answered) meanwhile
            return
        try:
            sdp = self._local_sdp(offer)
        except ProtocolError as exc:
            self.reject(exc.status)
            return
        self.usage.send_answer(sdp)
        self._last_offer_ours = False
        headers = [("Contact", str(self.ua.contact())), *self._common_headers()]
        self.ua.respond(self._server_key, self.invite, 183, to_tag=self.local_tag, headers=headers,
                        body=bytes(sdp), content_type=SDP, reason="Session Progress")
        self.state = CallState.EARLY_MEDIA
        self._emit("early-media", 183, "Session Progress")
        await self._apply_media()

    async def answer(self) -> None:
        """Accept an incoming call: 200 with our SDP answer, retransmitted until the ACK."""
        if not self._ringing():
            raise UsageError(f"cannot answer a call in state {self.state.value}")
        assert self.invite is not None and self._server_key is not None
        await self.media.open()
        if not self._ringing():  # cancelled while the port was opening
            return
        if self.state is CallState.EARLY_MEDIA:
            # Offer/answer completed in the 183: the 200 carries the very same answer.
            sdp = self.usage.local_sdp
        else:
            offer = self.usage.pending_offer
            try:
                sdp = self._local_sdp(offer)
            except ProtocolError as exc:
                self.reject(exc.status)
                return
            if offer is not None:
                self.usage.send_answer(sdp)
                self._last_offer_ours = False
            else:
                self.usage.send_offer(sdp)
        response = self._send_2xx(self._server_key, self.invite, sdp)
        self.dialog = Dialog.uas(self.invite, response)
        self.final_status, self.reason = 200, "OK"
        self.ua.invite_done(self._server_key)
        self._mark_answered(200, "OK")
        await self._apply_media()

    def _send_2xx(self, key: TransactionKey, request: Request, sdp: SessionDescription | None) -> Response:
        headers = [("Contact", str(self.ua.contact())), *self._common_headers()]
        response = self.ua.respond(key, request, 200, to_tag=self.local_tag, headers=headers,
                                   body=bytes(sdp) if sdp is not None else b"",
                                   content_type=SDP if sdp is not None else None)
        self._ok, self._ok_key = response, key
        self._arm_retransmit(self.ua.timers.t1, 0.0)
        return response

    def _arm_retransmit(self, interval: float, elapsed: float) -> None:
        """§13.3.1.4: resend the 2xx at T1, 2*T1 ... capped at T2, until ACK or 64*T1."""
        if self.ua.transport != "udp":
            return
        loop = asyncio.get_running_loop()
        self._retransmit = loop.call_later(interval, self._retransmit_2xx, interval, elapsed + interval)

    def _retransmit_2xx(self, interval: float, elapsed: float) -> None:
        self._retransmit = None
        if self._ok is None or self._ok_key is None or self.ended:
            return
        if elapsed >= 64 * self.ua.timers.t1:
            log.info("[%s] no ACK for our 2xx: ending the call", self.call_id)
            self.ua.spawn(self.hangup())
            return
        try:
            self.ua.endpoint.respond(self._ok_key, self._ok)  # type: ignore[union-attr]
        except Exception:
            return
        self._arm_retransmit(min(2 * interval, self.ua.timers.t2), elapsed)

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse an incoming call (486 Busy Here, 603 Decline, 404 ...)."""
        if not self._ringing():
            raise UsageError(f"cannot reject a call in state {self.state.value}")
        assert self.invite is not None and self._server_key is not None
        response = self.ua.respond(self._server_key, self.invite, status, to_tag=self.local_tag, reason=reason)
        self.ua.spawn(self._finish(CallState.FAILED, status, response.reason, "local"))

    def on_cancel(self) -> None:
        if self._ringing() and self.invite is not None and self._server_key is not None:
            self.ua.respond(self._server_key, self.invite, 487, to_tag=self.local_tag)
            self.ua.spawn(self._finish(CallState.FAILED, 487, "Request Terminated", "remote"))

    def on_ack(self, ack: Request) -> None:
        if self._retransmit is not None:
            self._retransmit.cancel()
            self._retransmit = None
        self._ok = None
        if self.usage.offer_state is OfferState.LOCAL_OFFER:
            try:
                answer = _sdp_of(ack)
                if answer is not None:
                    self.usage.receive_answer(answer)
                    self._last_offer_ours = True
                    self.ua.spawn(self._apply_media())
                else:
                    self.usage.rollback()
            except ProtocolError as exc:
                log.info("[%s] bad SDP in ACK: %s", self.call_id, exc.reason)

    def on_stray_response(self, response: Response) -> None:
        """A 2xx retransmission after the INVITE transaction ended: ACK it again."""
        if response.status < 300 and response.cseq.method == INVITE and self._ack is not None:
            self.ua.endpoint.send_stateless(*self._ack)  # type: ignore[union-attr]

    def _on_bye(self) -> None:
        self.ua.spawn(self._finish(CallState.ENDED, self.final_status, "remote hangup", "remote"))

    async def hangup(self) -> None:
        """End the call whatever its state: CANCEL, reject (603) or BYE."""
        if self.ended:
            return
        if self.state in _UNANSWERED:
            if self.outgoing:
                self.cancel()
                try:
                    await self.wait_ended(timeout=64 * self.ua.timers.t1)
                except asyncio.TimeoutError:
                    await self._finish(CallState.FAILED, 487, "cancelled", "local")
            else:
                self.reject(603)
                await self.wait_ended()
            return
        self.ended_by = self.ended_by or "local"
        dialog = self.dialog
        if dialog is not None and not dialog.terminated:
            try:
                await asyncio.wait_for(self._in_dialog(BYE), 64 * self.ua.timers.t1)
            except (asyncio.TimeoutError, UsageError, OSError) as exc:
                log.info("[%s] BYE failed: %s", self.call_id, exc)
        await self._finish(CallState.ENDED, self.final_status, "local hangup", "local")

    async def _finish(self, state: CallState, status: int | None, reason: str, by: str) -> None:
        if self.ended:
            return
        self.state = state
        if status is not None and (self.final_status is None or state is CallState.FAILED):
            self.final_status = status
        self.reason = self.reason if state is CallState.ENDED and self.answered else reason
        self.ended_by = self.ended_by or by
        self.ended_at = asyncio.get_running_loop().time()
        if self.dialog is not None:
            self.dialog.terminate()
        if self._retransmit is not None:
            self._retransmit.cancel()
        self._ended.set()
        if not self._answered.done():
            self._answered.set_result(False)
        if self._transfer is not None and not self._transfer.done():
            self._transfer.set_result(487)
        if self._server_key is not None:
            self.ua.invite_done(self._server_key)
        self.ua.forget(self)
        await self.media.close()
        self._emit("failed" if state is CallState.FAILED else "ended", self.final_status, reason)
        self._events.put_nowait(None)

    def __repr__(self) -> str:
        return f"<Call {self.call_id} {self.state.value} {self.remote.uri}>"
