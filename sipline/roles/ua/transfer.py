"""In-dialog requests of a call: re-INVITE (hold/resume), INFO (DTMF), REFER/NOTIFY (transfer).

Split from :mod:`sipline.roles.ua.call` so that the call module keeps to the life cycle
of the INVITE (ringing, answer, CANCEL, BYE) while this one holds what happens inside an
established dialog.  :class:`InDialog` is a base class of :class:`~sipline.roles.ua.call.
Call`; it works on the call's dialog, offer/answer usage and media leg.

Transfer (RFC 3515, RFC 3891).  As transferor, :meth:`InDialog.transfer` sends REFER (with
Replaces for an attended transfer) and waits for the NOTIFY whose sipfrag carries a final
status.  As transferee, a REFER is accepted with 202, the target is called, each step is
reported in a NOTIFY, and the original call is hung up once the new one is answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...sip.dialog import Dialog, InviteUsage, Replaces, notify_for, parse_notify, parse_refer, refer_headers
from ...sip.errors import ProtocolError, UsageError
from ...sip.message import Request, Response
from ...sip.methods import ACK, BYE, INFO, INVITE, NOTIFY, OPTIONS, REFER
from ...sip.sdp import SessionDescription, next_version
from ...sip.transaction.keys import TransactionKey
from ...sip.transport import Peer
from .media import SDP, MediaLeg, sdp_of as _sdp_of

if TYPE_CHECKING:
    from ...runtime.transport import Origin
    from .agent import UserAgent
    from .call import Call

__all__ = ["InDialog"]

log = logging.getLogger("sipline.ua.call")

_DTMF_RELAY = ("application/dtmf-relay", "application/dtmf")


class InDialog:
    """Requests inside an established dialog, sent and received (see module docstring)."""

    # Provided by Call.
    ua: UserAgent
    call_id: str
    local_tag: str
    dialog: Dialog | None
    usage: InviteUsage
    media: MediaLeg
    transferred_to: Call | None
    _transfer: asyncio.Future[int] | None
    _last_offer_ours: bool
    final_status: int | None

    if TYPE_CHECKING:
        @property
        def answered(self) -> bool: ...
        def _emit(self, kind: str, status: int | None = None, reason: str = "", detail: Any = None) -> None: ...
        def _local_sdp(self, offer: SessionDescription | None = None) -> SessionDescription: ...
        def _send_2xx(self, key: TransactionKey, request: Request, sdp: SessionDescription | None) -> Response: ...
        async def _apply_media(self) -> None: ...
        def _on_bye(self) -> None: ...
        async def hangup(self) -> None: ...

    # -- in-dialog requests we receive ---------------------------------------------------------------

    def on_request(self, request: Request, key: TransactionKey, origin: Origin) -> None:
        ua = self.ua
        if self.dialog is None:
            ua.respond(key, request, 481, to_tag=self.local_tag)
            return
        try:
            self.dialog.receive_request(request)
        except ProtocolError as exc:
            ua.respond(key, request, exc.status, reason=exc.reason[:60])
            return
        method = request.method
        if method == BYE:
            ua.respond(key, request, 200)
            self._on_bye()
        elif method == INVITE:
            self._on_reinvite(request, key)
        elif method == INFO:
            self._on_info(request, key)
        elif method == REFER:
            self._on_refer(request, key)
        elif method == NOTIFY:
            self._on_notify(request, key)
        elif method == OPTIONS:
            ua.respond(key, request, 200)
        elif method != ACK:
            ua.respond(key, request, 501)

    def _on_reinvite(self, request: Request, key: TransactionKey) -> None:
        rejection = self.usage.check_server_invite()
        if rejection is not None:
            self.ua.respond(key, request, rejection.status, reason=rejection.reason, headers=rejection.headers)
            return
        self.usage.begin_server_invite()
        try:
            offer = _sdp_of(request)
            if offer is not None:
                self.usage.receive_offer(offer)
                previous = self.usage.local_sdp
                sdp = self._local_sdp(offer)
                if previous is not None:
                    sdp = next_version(previous, sdp)
                self.usage.send_answer(sdp)
                self._last_offer_ours = False
            else:
                sdp = self.usage.local_sdp or self._local_sdp()
                sdp = next_version(sdp, sdp)
                self.usage.send_offer(sdp)
        except ProtocolError as exc:
            self.usage.end_server_invite(exc.status)
            self.ua.respond(key, request, exc.status, reason=exc.reason[:60])
            return
        self._send_2xx(key, request, sdp)
        self.usage.end_server_invite(200)
        self.ua.spawn(self._apply_media())
        self._emit("held" if self.usage.remote_hold else "resumed", 200, "remote")

    def _on_info(self, request: Request, key: TransactionKey) -> None:
        ctype = request.content_type
        if ctype not in _DTMF_RELAY:
            self.ua.respond(key, request, 415 if request.body else 200)
            return
        text = request.body.decode("utf-8", "replace")
        digit = None
        for line in text.splitlines():
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal":
                digit = value.strip()
        if digit is None and ctype == "application/dtmf":
            digit = text.strip()
        if digit and len(digit) == 1 and digit.upper() in "0123456789*#ABCD":
            self.media.push_digit(digit.upper())
            self._emit("dtmf", detail=digit.upper())
        self.ua.respond(key, request, 200)

    # -- transfer ------------------------------------------------------------------------------------

    def _on_refer(self, request: Request, key: TransactionKey) -> None:
        try:
            refer = parse_refer(request)
        except ProtocolError as exc:
            self.ua.respond(key, request, 400, reason=exc.reason[:60])
            return
        self.ua.respond(key, request, 202, reason="Accepted")
        self.ua.spawn(self._follow_refer(str(refer.target), refer.replaces))

    async def _notify(self, status: int) -> None:
        headers, body, ctype = notify_for(status)
        try:
            await self._in_dialog(NOTIFY, headers=headers, body=body, content_type=ctype)
        except Exception as exc:  # the transferor may have hung up already
            log.debug("[%s] NOTIFY failed: %s", self.call_id, exc)

    async def _follow_refer(self, target: str, replaces: Replaces | None) -> None:
        """We are the transferee: call the target, report progress, end this call on success."""
        await self._notify(100)
        new = await self.ua.call(target, replaces=replaces)
        answered = await new.wait_answered(timeout=64 * self.ua.timers.t1)
        status = new.final_status or (200 if answered else 487)
        await self._notify(status)
        if answered:
            self.transferred_to = new
            self._emit("transferred", status, detail=new)
            await self.hangup()

    def _on_notify(self, request: Request, key: TransactionKey) -> None:
        try:
            progress = parse_notify(request)
        except ProtocolError as exc:
            self.ua.respond(key, request, exc.status, reason=exc.reason[:60])
            return
        self.ua.respond(key, request, 200)
        self._emit("transfer-progress", progress.status, progress.reason)
        if progress.status >= 200 and self._transfer is not None and not self._transfer.done():
            self._transfer.set_result(progress.status)

    async def transfer(self, target: str | Call, *, timeout: float = 32.0) -> bool:
        """Transfer the far party: blind to a URI, attended to another :class:`Call`.

        Sends REFER (with Replaces for attended transfer), then waits for the final NOTIFY.
        Returns True when the transferee reached the target.
        """
        if self.dialog is None or not self.answered:
            raise UsageError("only an answered call can be transferred")
        replaces = None
        if not isinstance(target, str):
            if target.dialog is None:
                raise UsageError("the consultation call is not established")
            replaces = Replaces.for_dialog(target.dialog.id)
            uri: Any = target.dialog.remote_target
        else:
            uri = self.ua.target_uri(target)
        self._transfer = asyncio.get_running_loop().create_future()
        headers = refer_headers(uri, referred_by=self.ua.aor, replaces=replaces)
        response = await self._in_dialog(REFER, headers=headers)
        if response.status >= 300:
            return False
        try:
            status = await asyncio.wait_for(self._transfer, timeout)
        except asyncio.TimeoutError:
            return False
        return 200 <= status < 300

    # -- in-dialog requests we send ----------------------------------------------------------------

    async def _dialog_peer(self) -> Peer:
        assert self.dialog is not None
        return await self.ua.resolve(self.dialog.next_hop(), use_proxy=False)

    async def _in_dialog(self, method: str, *, headers: Sequence[tuple[str, str]] = (), body: bytes = b"",
                         content_type: str | None = None) -> Response:
        if self.dialog is None or self.dialog.terminated:
            raise UsageError("no dialog")
        request = self.dialog.create_request(method, via=self.ua.via(), headers=headers, body=body,
                                             content_type=content_type)
        sent, response = await self.ua.request(request, await self._dialog_peer())
        if self.dialog.local_seq is not None and sent.cseq.seq > self.dialog.local_seq:
            self.dialog.local_seq = sent.cseq.seq
        if method == INVITE and 200 <= response.status < 300:
            ack = self.dialog.ack_for_2xx(sent, via=self.ua.via())
            self.ua.endpoint.send_stateless(ack, await self._dialog_peer())  # type: ignore[union-attr]
        if method != BYE:
            self.dialog.receive_response(response)
        return response

    async def _reinvite(self, offer: SessionDescription) -> bool:
        loop = asyncio.get_running_loop()
        for _ in range(3):
            if not self.usage.can_reinvite(loop.time()):
                deadline = self.usage.next_deadline()
                await asyncio.sleep(max(0.05, (deadline or loop.time()) - loop.time()))
                continue
            self.usage.begin_client_invite(loop.time())
            self.usage.send_offer(offer)
            response = await self._in_dialog(INVITE, body=bytes(offer), content_type=SDP)
            self.usage.end_client_invite(response.status, loop.time())
            if 200 <= response.status < 300:
                answer = _sdp_of(response)
                if answer is None:
                    self.usage.rollback()
                else:
                    self.usage.receive_answer(answer)
                    self._last_offer_ours = True
                    await self._apply_media()
                return True
            if response.status != 491:
                return False
        return False

    async def hold(self, *, inactive: bool = False) -> bool:
        """Put the far party on hold (re-INVITE with sendonly, or inactive)."""
        ok = await self._reinvite(self.usage.hold_offer(inactive=inactive))
        if ok:
            self._emit("held", 200, "local")
        return ok

    async def resume(self) -> bool:
        """Take the far party off hold (re-INVITE with sendrecv)."""
        ok = await self._reinvite(self.usage.resume_offer())
        if ok:
            self._emit("resumed", 200, "local")
        return ok
