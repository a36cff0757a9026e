"""Registration (RFC 3261 §10.2): bind our Contact, keep it fresh, remove it on close.

The binding is refreshed before it expires (at 80% of the granted time, and no later than
10 s before the end), with the same Call-ID and a growing CSeq (§10.2.4).  A failed
attempt -- timeout, 5xx, refused credentials -- is retried with exponential back-off
(``retry_min`` doubling up to ``retry_max``) rather than hammering the registrar.  Digest
challenges (401/407) are answered by the user agent's shared :class:`DigestClient`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ...sip.message import Response
from ...sip.message.builders import make_request

if TYPE_CHECKING:
    from .agent import UserAgent

__all__ = ["Registration", "RegistrationError"]

log = logging.getLogger("sipline.ua.registration")


class RegistrationError(Exception):
    """The registrar refused us; ``status`` is its final response code."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"registration failed: {status} {reason}")
        self.status = status
        self.reason = reason


class Registration:
    """One binding of the UA's Contact at its registrar."""

    def __init__(self, ua: UserAgent, *, expires: int = 3600, retry_min: float = 2.0, retry_max: float = 300.0) -> None:
        self.ua = ua
        self.expires = expires
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.call_id = ua.ids.call_id()
        self.tag = ua.ids.tag()
        self.cseq = 0
        #: Seconds granted by the registrar for the last successful registration.
        self.granted: int | None = None
        self.registered = False
        self.last_status: int | None = None
        self.failures = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def _registrar_uri(self) -> str:
        return f"sip:{self.ua.identity.domain}"

    async def _send(self, expires: int) -> Response:
        ua = self.ua
        self.cseq += 1
        request = make_request(
            "REGISTER", self._registrar_uri(), from_=ua.aor.with_tag(self.tag), to=ua.aor, call_id=self.call_id,
            cseq=self.cseq, via=ua.via(), contact=ua.contact(),
            headers=[("Expires", str(expires)), ("User-Agent", ua.user_agent)],
        )
        sent, response = await ua.request(request)
        self.cseq = max(self.cseq, sent.cseq.seq)
        return response

    def _granted(self, response: Response) -> int:
        mine = self.ua.contact().uri
        for contact in response.contacts:
            if str(contact.uri) == str(mine) and contact.expires is not None:
                return contact.expires
        return response.expires if response.expires is not None else self.expires

    async def register(self) -> None:
        """Register now; raises :class:`RegistrationError` when refused (retries continue)."""
        self._cancel_timer()
        try:
            response = await self._send(self.expires)
        except Exception as exc:  # DNS or transport failure: treat as 503 (§8.1.3.1)
            response = None
            log.warning("REGISTER failed: %s", exc)
        self.last_status = response.status if response is not None else 503
        if response is not None and 200 <= response.status < 300:
            self.failures = 0
            self.registered = True
            self.granted = self._granted(response)
            refresh = max(1.0, min(self.granted * 0.8, self.granted - 10))
            self._schedule(refresh)
            return
        self.registered = False
        self.failures += 1
        delay = min(self.retry_max, self.retry_min * 2 ** (self.failures - 1))
        self._schedule(delay)
        raise RegistrationError(self.last_status, response.reason if response is not None else "unreachable")

    def _schedule(self, delay: float) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, lambda: self.ua.spawn(self._refresh()))

    async def _refresh(self) -> None:
        try:
            await self.register()
        except RegistrationError as exc:
            log.warning("%s; retrying", exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def close(self) -> None:
        """Remove the binding (Expires: 0) and stop refreshing."""
        self._closed = True
        self._cancel_timer()
        if self.registered:
            try:
                await asyncio.wait_for(self._send(0), 5.0)
            except Exception as exc:
                log.info("unregister failed: %s", exc)
            self.registered = False
