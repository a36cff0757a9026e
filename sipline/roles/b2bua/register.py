"""REGISTER to carriers that want it (``register = true`` on a digest carrier trunk).

Some carriers only route DID calls to an account that keeps a registration, and answer
calls from it only while it is registered.  For each such trunk one task keeps a binding
alive: REGISTER to the first host that is up (the OPTIONS monitor decides), answer the
401/407 with the trunk's digest credentials (a fresh branch and the next CSeq, one
Call-ID for the life of the binding as RFC 3261 §10.2.4 asks), then refresh before the
granted lifetime runs out.  Failures retry after a pause that grows up to five minutes, so
a carrier that is down is not hammered.  The state of each registration is shown by
``sipline trunks``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...runtime.endpoint import ClientCallbacks, Destination
from ...sip.auth import DigestClient, parse_challenges
from ...sip.auth.header import Credentials
from ...sip.b2bua.trunk import CarrierTrunk
from ...sip.errors import ProtocolError
from ...sip.message import NameAddr, Response, SipURI, parse_uri
from ...sip.message.builders import make_request
from ...sip.methods import REGISTER
from ...sip.transport import Peer

if TYPE_CHECKING:
    from .sbc import Sbc

__all__ = ["CarrierRegistrations", "refresh_delay", "granted_expires"]

log = logging.getLogger("sipline.b2bua.register")

#: Longest pause between failed attempts.
MAX_RETRY = 300.0
#: First pause after a failure.
FIRST_RETRY = 5.0


def refresh_delay(granted: int) -> float:
    """When to refresh a binding granted for ``granted`` seconds: well before it lapses
    (at most 80% of it, and at least 32 s early for a long lifetime, minimum 1 s)."""
    return max(1.0, min(granted * 0.8, granted - 32.0 if granted > 64 else granted * 0.5))


def granted_expires(response: Response, contact_user: str, asked: int) -> int:
    """The lifetime the registrar granted: our Contact's ``expires``, else Expires, else asked."""
    for contact in response.contacts:
        uri = contact.uri
        if isinstance(uri, SipURI) and uri.user == contact_user:
            value = contact.params.get("expires")
            if value is not None and value.isdigit():
                return int(value)
    header = response.headers.get("Expires")
    if header is not None and header.strip().isdigit():
        return int(header.strip())
    return asked


@dataclass(slots=True)
class _State:
    trunk: CarrierTrunk
    call_id: str
    cseq: int = 0
    registered: bool = False
    expires_at: float = 0.0
    last_status: int | None = None
    failures: int = 0


class CarrierRegistrations:
    """One refresh loop per carrier trunk with ``register = true``."""

    def __init__(self, sbc: Sbc) -> None:
        self.sbc = sbc
        self._states = {
            t.name: _State(t, sbc.ids.call_id())
            for t in sbc.trunks.carriers if t.auth is not None and t.auth.register
        }
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for state in self._states.values():
            self._tasks.append(asyncio.ensure_future(self._loop(state)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping anyway
                pass
        self._tasks.clear()

    def state(self, name: str) -> dict[str, Any] | None:
        state = self._states.get(name)
        if state is None:
            return None
        return {
            "registered": state.registered and state.expires_at > time.time(),
            "expires_in": max(0, int(state.expires_at - time.time())) if state.registered else 0,
            "last_status": state.last_status,
        }

    async def _loop(self, state: _State) -> None:
        while True:
            try:
                granted = await self._register(state)
            except (OSError, ProtocolError) as exc:
                log.warning("REGISTER to %s failed: %s", state.trunk.name, exc)
                granted = 0
            if granted > 0:
                state.failures = 0
                await asyncio.sleep(refresh_delay(granted))
            else:
                state.failures += 1
                await asyncio.sleep(min(MAX_RETRY, FIRST_RETRY * 2 ** (state.failures - 1)))

    def _host(self, trunk: CarrierTrunk) -> int:
        for index in range(len(trunk.hosts)):
            if self.sbc._host_up(trunk, index):
                return index
        return 0

    async def _register(self, state: _State) -> int:
        sbc = self.sbc
        trunk = state.trunk
        auth = trunk.auth
        assert auth is not None
        host = trunk.hosts[self._host(trunk)]
        peer = Peer(host.transport, await sbc._address(host.host), host.port)
        domain = trunk.domain or (f"{host.host}:{host.port}" if ":" not in host.host else f"[{host.host}]:{host.port}")
        aor = NameAddr(parse_uri(f"sip:{auth.username}@{domain}"))
        local = sbc.contact(host.transport).uri
        assert isinstance(local, SipURI)
        contact = NameAddr(local.replace(user=auth.username))
        digest = DigestClient(auth.username, password=auth.password, realm=auth.realm,
                              make_cnonce=lambda: sbc.ids.token(8))
        credentials: Credentials | None = None
        auth_header: tuple[str, str] | None = None
        for _ in range(3):
            state.cseq += 1
            headers = [("Expires", str(auth.register_expires))]
            if auth_header is not None:
                headers.append(auth_header)
            request = make_request(REGISTER, f"sip:{domain}", from_=aor.with_tag(sbc.ids.tag()), to=aor,
                                   call_id=state.call_id, cseq=state.cseq, via=sbc.via(host.transport),
                                   contact=contact, headers=headers)
            response = await self._send(request, peer)
            state.last_status = response.status if response is not None else 408
            if response is None:
                break
            if 200 <= response.status < 300:
                granted = granted_expires(response, auth.username, auth.register_expires)
                state.registered = granted > 0
                state.expires_at = time.time() + granted
                log.info("registered to %s for %d s", trunk.name, granted)
                return granted
            if response.status not in (401, 407):
                break
            name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
            challenges = []
            for value in response.headers.get_all(name):
                try:
                    challenges.extend(parse_challenges(value, header=name))
                except ProtocolError:
                    continue
            if not digest.should_retry(challenges, credentials):
                break
            credentials = digest.authorize(challenges, REGISTER, request.uri_text, b"")
            if credentials is None:
                break
            auth_header = ("Authorization" if response.status == 401 else "Proxy-Authorization", str(credentials))
        state.registered = False
        log.warning("REGISTER to %s refused: %s", trunk.name, state.last_status)
        return 0

    async def _send(self, request: Any, peer: Peer) -> Response | None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Response | None] = loop.create_future()

        def on_response(response: Response) -> None:
            if response.status >= 200 and not done.done():
                done.set_result(response)

        def on_failure(status: int) -> None:
            if not done.done():
                done.set_result(None)

        self.sbc.endpoint.send_request(request, Destination(peer), ClientCallbacks(on_response, on_failure))
        return await done
