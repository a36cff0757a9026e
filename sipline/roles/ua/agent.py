"""The user agent: one SIP identity on one listener, placing and receiving many calls.

:class:`UserAgent` is the transaction user of an :class:`~sipline.runtime.endpoint.Endpoint`.
It owns what is shared by every call of the identity -- listener, Via/Contact, digest
credentials, DNS, the RTP port range -- and sorts incoming requests to the
:class:`~sipline.roles.ua.call.Call` they belong to (by Call-ID and our tag).  Dialog and
offer/answer rules live in :mod:`sipline.sip.dialog`; this module only does I/O plumbing.

Example::

    async with UserAgent("alice@example.com", password="s3cret", proxy="sip:127.0.0.1:5060") as ua:
        await ua.register()
        call = await ua.call("sip:bob@example.com")
        await call.wait_answered()
        await call.play("hello.wav")
        await call.hangup()
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...media.ports import PortAllocator
from ...media.rtp_session import SendFilter
from ...runtime.dns import DnsResolver, Resolver, locate
from ...runtime.endpoint import ClientCallbacks, Endpoint
from ...runtime.ids import SecureIdSource
from ...runtime.transport import Origin, TransportManager
from ...sip.auth import DigestClient, parse_challenges
from ...sip.auth.header import Credentials
from ...sip.errors import ProtocolError
from ...sip.locate import Destination
from ...sip.message import NameAddr, Request, Response, SipURI, parse_uri
from ...sip.message.builders import response_to
from ...sip.methods import BYE, CANCEL, INFO, INVITE, NOTIFY, OPTIONS, REFER
from ...sip.timers import DEFAULT_TIMERS, TimerConfig
from ...sip.transaction.keys import TransactionKey
from ...sip.transport import Peer
from .media import DEFAULT_CODECS

__all__ = ["UserAgent", "ALLOW"]

log = logging.getLogger("sipline.ua")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY"


@dataclass(frozen=True, slots=True)
class _Identity:
    user: str
    domain: str
    display_name: str | None


def _parse_identity(user: str, display_name: str | None) -> _Identity:
    text = user[4:] if user.startswith("sip:") else user
    name, _, domain = text.partition("@")
    return _Identity(name, domain or "localhost", display_name)


def _local_address_towards(host: str) -> str:
    """The local address the OS would use to reach *host* (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


class UserAgent:
    """A SIP user agent (see module docstring).

    ``user`` is ``"alice@example.com"`` or ``"alice"``; ``proxy`` an outbound proxy /
    registrar URI (``"sip:127.0.0.1:5060"``) or None to locate targets with RFC 3263.
    ``listen_port`` 0 picks an ephemeral port.  ``codecs`` orders the G.711 variants.
    ``media_filter`` (tests) sees every outgoing RTP packet and may drop or duplicate it.
    ``early_media`` answers incoming INVITEs with 183 + SDP instead of 180, so the
    application can play to the caller before (or without) answering.
    """

    def __init__(
        self,
        user: str = "sipline",
        *,
        password: str | None = None,
        proxy: str | None = None,
        transport: str = "udp",
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        advertise: str | None = None,
        rtp_ports: tuple[int, int] = (20000, 29999),
        codecs: Sequence[str] = DEFAULT_CODECS,
        display_name: str | None = None,
        auth_user: str | None = None,
        resolver: Resolver | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
        tls_context: ssl.SSLContext | None = None,
        server_tls: ssl.SSLContext | None = None,
        user_agent: str = "sipline-ua/0.1",
        media_filter: SendFilter | None = None,
        auto_answer: bool = False,
        early_media: bool = False,
    ) -> None:
        self.identity = _parse_identity(user, display_name)
        self.password = password
        self.proxy = parse_uri(proxy) if proxy else None
        self.transport = transport.lower()
        if self.transport not in ("udp", "tcp", "tls"):
            raise ValueError(f"unsupported transport {transport!r}")
        self.listen_host = listen_host
        self.listen_port = listen_port
        self._advertise = advertise
        self.ports = PortAllocator(*rtp_ports)
        self.codecs = tuple(c.upper() for c in codecs)
        self.ids = SecureIdSource()
        self.resolver: Resolver = resolver or DnsResolver()
        self.timers = timers
        self.tls_context = tls_context
        self.server_tls = server_tls
        self.user_agent = user_agent
        self.media_filter = media_filter
        self.auto_answer = auto_answer
        self.early_media = early_media
        self.endpoint: Endpoint | None = None
        self.local: Peer | None = None
        self.on_incoming: Callable[[Any], Awaitable[None] | None] | None = None
        self._incoming: asyncio.Queue[Any] = asyncio.Queue()
        self._calls: dict[tuple[str, str], Any] = {}
        self._server_invites: dict[TransactionKey, Any] = {}
        self._digest: DigestClient | None = None
        if password is not None:
            self._digest = DigestClient(auth_user or self.identity.user, password=password,
                                        make_cnonce=lambda: self.ids.token(8))
        self._registration: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rng = random.Random()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the SIP listener.  Idempotent."""
        if self.endpoint is not None:
            return

        def factory(on_message: Any, on_error: Any) -> TransportManager:
            return TransportManager(on_message, on_error=on_error, client_tls=self.tls_context,
                                    server_tls=self.server_tls, tag_source=self.ids.tag)

        self.endpoint = Endpoint(factory, self, ids=self.ids, timers=self.timers)
        listen_transport = self.transport
        if self.transport == "tls" and self.server_tls is None:
            # A TLS client without a certificate still needs a local port for its Via.
            listen_transport = "tcp"
        self.local = await self.endpoint.transports.listen(listen_transport, self.listen_host, self.listen_port)

    async def close(self) -> None:
        """Hang up every call, unregister, close the listener."""
        for call in list(self._calls.values()):
            try:
                await asyncio.wait_for(call.hangup(), 2.0)
            except (asyncio.TimeoutError, Exception) as exc:  # best effort on shutdown
                log.debug("hangup on close failed: %s", exc)
        if self._registration is not None:
            await self._registration.close()
        for task in list(self._tasks):
            task.cancel()
        if self.endpoint is not None:
            await self.endpoint.close()
            self.endpoint = None
        self._incoming.put_nowait(None)

    async def __aenter__(self) -> UserAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run a background task owned by the UA (cancelled on close)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- identity and addressing ----------------------------------------------------------

    @property
    def host(self) -> str:
        """The address we put in Via, Contact and SDP."""
        if self._advertise:
            return self._advertise
        if self.listen_host not in ("0.0.0.0", "::", ""):
            return self.listen_host
        target = self.proxy.host if isinstance(self.proxy, SipURI) else "192.0.2.1"
        self._advertise = _local_address_towards(target)
        return self._advertise

    @property
    def port(self) -> int:
        assert self.local is not None, "call start() first"
        return self.local.port

    @property
    def aor(self) -> NameAddr:
        ident = self.identity
        return NameAddr(SipURI("sip", ident.user, None, ident.domain, None), ident.display_name)

    def contact(self) -> NameAddr:
        params = () if self.transport == "udp" else (("transport", self.transport),)
        from ...sip.message import Params

        return NameAddr(SipURI("sip", self.identity.user, None, self.host, self.port, Params(params)))

    def via(self) -> str:
        return f"SIP/2.0/{self.transport.upper()} {self.host}:{self.port};branch={self.ids.branch()};rport"

    def target_uri(self, target: str) -> SipURI:
        """``bob``, ``bob@host`` or ``sip:bob@host`` as a SIP URI (our domain by default)."""
        if target.startswith(("sip:", "sips:")):
            text = target
        elif "@" in target:
            text = f"sip:{target}"
        else:
            text = f"sip:{target}@{self.identity.domain}"
        uri = parse_uri(text)
        if not isinstance(uri, SipURI):
            raise ValueError(f"not a SIP URI: {target!r}")
        return uri

    async def resolve(self, uri: SipURI | Any, *, use_proxy: bool = True) -> Peer:
        """The transport address for a request to *uri* (outbound proxy, else RFC 3263)."""
        hop = self.proxy if use_proxy and self.proxy is not None else uri
        if not isinstance(hop, SipURI):
            raise ProtocolError(f"cannot route to {hop}", status=416)
        dest = Destination(hop.scheme, hop.host, hop.port, hop.transport, hop.maddr)
        targets = await locate(dest, self.resolver, transports=(self.transport,))
        first = targets[0]
        return Peer(first.transport, first.address, first.port)

    # -- sending with authentication ---------------------------------------------------------

    def send(self, request: Request, peer: Peer, on_response: Callable[[Response], None]) -> TransactionKey:
        """Start a client transaction; timeouts and transport errors come back as 408/503."""
        assert self.endpoint is not None

        def failure(status: int) -> None:
            on_response(response_to(request, status))

        return self.endpoint.send_request(request, peer, ClientCallbacks(on_response, failure))

    def authorize(self, request: Request, challenge: Response, previous: Credentials | None) -> tuple[Request, Credentials] | None:
        """A copy of *request* answering the 401/407 *challenge*, or None to give up.

        The copy gets a new branch and the next CSeq (§22.2); the caller updates its dialog.
        """
        if self._digest is None:
            return None
        header = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
        challenges = []
        for value in challenge.headers.get_all(header):
            try:
                challenges.extend(parse_challenges(value, header=header))
            except ProtocolError:
                continue
        if not self._digest.should_retry(challenges, previous):
            return None
        creds = self._digest.authorize(challenges, request.method, request.uri_text, request.body)
        if creds is None:
            return None
        retry = request.copy()
        retry.headers.pop_first("Via")
        retry.headers.prepend("Via", self.via())
        retry.headers.set("CSeq", f"{request.cseq.seq + 1} {request.method}")
        retry.headers.set("Authorization" if challenge.status == 401 else "Proxy-Authorization", str(creds))
        return retry, creds

    async def request(self, request: Request, peer: Peer | None = None,
                      on_provisional: Callable[[Response], None] | None = None) -> tuple[Request, Response]:
        """Send *request* (answering digest challenges) and wait for its final response.

        Returns the request actually sent last (it may carry credentials) and the response.
        """
        if peer is None:
            peer = await self.resolve(request.uri)
        previous: Credentials | None = None
        for _ in range(4):
            response = await self._one_request(request, peer, on_provisional)
            if response.status not in (401, 407):
                return request, response
            answer = self.authorize(request, response, previous)
            if answer is None:
                return request, response
            request, previous = answer
        return request, response

    async def _one_request(self, request: Request, peer: Peer,
                           on_provisional: Callable[[Response], None] | None) -> Response:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Response] = loop.create_future()

        def on_response(response: Response) -> None:
            if response.status < 200:
                if on_provisional is not None:
                    on_provisional(response)
            elif not done.done():
                done.set_result(response)

        self.send(request, peer, on_response)
        return await done

    def respond(self, key: TransactionKey, request: Request, status: int, *, to_tag: str | None = None,
                headers: Sequence[tuple[str, str]] = (), body: bytes = b"", content_type: str | None = None,
                reason: str | None = None) -> Response:
        assert self.endpoint is not None
        response = response_to(request, status, reason, to_tag=to_tag or self.ids.tag(), headers=headers,
                                body=body, content_type=content_type)
        try:
            self.endpoint.respond(key, response)
        except Exception as exc:  # the transaction may be gone (peer gave up)
            log.debug("cannot respond %d: %s", status, exc)
        return response

    # -- registration -------------------------------------------------------------------------

    async def register(self, expires: int = 3600) -> Any:
        """Register our Contact (refreshed before expiry, retried after failures)."""
        from .registration import Registration

        await self.start()
        if self._registration is None:
            self._registration = Registration(self, expires=expires)
        await self._registration.register()
        return self._registration

    async def unregister(self) -> None:
        if self._registration is not None:
            await self._registration.close()
            self._registration = None

    # -- calls ----------------------------------------------------------------------------------

    async def call(self, target: str, *, replaces: Any = None, headers: Sequence[tuple[str, str]] = ()) -> Any:
        """Place a call; returns the :class:`Call` at once (its INVITE is on its way)."""
        from .call import Call

        await self.start()
        call = Call.new_outgoing(self, self.target_uri(target), replaces=replaces, headers=headers)
        self._calls[call.key] = call
        await call.start_outgoing()
        return call

    async def incoming(self) -> Any:
        """Async iterator over incoming calls (``async for call in ua.incoming()``)."""
        while (call := await self._incoming.get()) is not None:
            yield call

    async def next_call(self, timeout: float | None = None) -> Any:
        """The next incoming call (or raise TimeoutError)."""
        call = await asyncio.wait_for(self._incoming.get(), timeout)
        if call is None:
            raise ConnectionError("user agent closed")
        return call

    @property
    def calls(self) -> list[Any]:
        """Live calls."""
        return list(self._calls.values())

    def forget(self, call: Any) -> None:
        self._calls.pop(call.key, None)

    def deliver(self, call: Any) -> None:
        """Hand a new incoming call to the application."""
        if self.on_incoming is not None:
            result = self.on_incoming(call)
            if asyncio.iscoroutine(result):
                self.spawn(result)
        else:
            self._incoming.put_nowait(call)

    # -- TransactionUser -------------------------------------------------------------------------

    def on_request(self, request: Request, key: TransactionKey, origin: Origin) -> None:
        method = request.method
        try:
            to_tag = request.to.tag
            call = self._calls.get((request.call_id, to_tag)) if to_tag else None
        except ProtocolError as exc:
            self.respond(key, request, exc.status)
            return
        if call is not None:
            call.on_request(request, key, origin)
            return
        if to_tag:
            self.respond(key, request, 481, reason="Call/Transaction Does Not Exist")
            return
        if method == INVITE:
            from .call import Call

            try:
                new = Call.new_incoming(self, request, key, origin)
            except ProtocolError as exc:
                self.respond(key, request, exc.status, reason=exc.reason[:60])
                return
            self._calls[new.key] = new
            self._server_invites[key] = new
            new.start_incoming()
        elif method == OPTIONS:
            self.respond(key, request, 200, headers=(("Allow", ALLOW), ("Accept", "application/sdp")))
        elif method in (BYE, CANCEL, NOTIFY, INFO, REFER):
            self.respond(key, request, 481, reason="Call/Transaction Does Not Exist")
        else:
            self.respond(key, request, 405, headers=(("Allow", ALLOW),))

    def on_cancel(self, cancel: Request, invite_key: TransactionKey, origin: Origin) -> None:
        call = self._server_invites.get(invite_key)
        if call is not None:
            call.on_cancel()

    def on_ack(self, ack: Request, origin: Origin | None) -> None:
        tag = ack.to.tag
        call = self._calls.get((ack.call_id, tag)) if tag else None
        if call is not None:
            call.on_ack(ack)

    def on_stray_response(self, response: Response, origin: Origin | None) -> None:
        try:
            call = self._calls.get((response.call_id, response.from_.tag or ""))
        except ProtocolError:
            return
        if call is not None:
            call.on_stray_response(response)

    def invite_done(self, key: TransactionKey) -> None:
        self._server_invites.pop(key, None)
