"""`sipline serve`: one process that is registrar, location service, proxy and redirect server.

The server is a transaction user that sorts incoming requests by who should handle them:

* REGISTER for one of our domains goes to the :class:`~sipline.roles.registrar.Registrar`;
* OPTIONS addressed to the server itself is answered here (§11.2) with what we support;
* everything else is routed by the :class:`~sipline.roles.proxy.ProxyRole`, whose routing
  policy is plain Python.

It also owns the lifecycle: listeners, storage, the admin endpoint for ``sipline
registrations`` / ``sipline calls``, periodic purging of expired bindings, and a graceful stop
that refuses new calls with 503 while transactions drain.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime.collector import CollectorSchedule
from ..runtime.dns import CachingResolver, DnsResolver, Resolver
from ..runtime.endpoint import Endpoint
from ..runtime.ids import SecureIdSource
from ..runtime.transport import Origin, TransportConfig, TransportManager
from ..sip.auth.header import Credentials
from ..sip.auth.nonce import NonceFactory
from ..sip.auth.server import DigestServer
from ..sip.limits import DEFAULT_LIMITS, Limits
from ..sip.message import Request, Response, SipURI
from ..sip.message.builders import response_to
from ..sip.methods import ACK, CANCEL, OPTIONS, REGISTER
from ..sip.registrar import RegistrarPolicy
from ..sip.timers import DEFAULT_TIMERS, TimerConfig
from ..sip.transaction.keys import TransactionKey
from ..sip.transport import Peer
from ..storage import Storage, open_storage
from ..storage.models import Source
from .proxy import ProxyRole, ProxySettings
from .registrar import Registrar

__all__ = ["Server", "ServerOptions", "ALLOWED_METHODS", "SUPPORTED_OPTIONS"]

log = logging.getLogger("sipline.server")

ALLOWED_METHODS = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "PRACK", "UPDATE",
                   "INFO", "REFER", "NOTIFY", "SUBSCRIBE", "MESSAGE")
SUPPORTED_OPTIONS = ("path", "outbound")


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """What the server needs to run, independent of where it came from (TOML, CLI, code)."""

    listen: tuple[Peer, ...] = (Peer("udp", "0.0.0.0", 5060), Peer("tcp", "0.0.0.0", 5060))
    domains: tuple[str, ...] = ("localhost",)
    data_dir: Path = Path("sipline-data")
    storage_url: str | None = None
    #: Where call records go instead (e.g. postgresql://...); None: storage_url's backend.
    records_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_verify: bool = True
    limits: Limits = DEFAULT_LIMITS
    timers: TimerConfig = DEFAULT_TIMERS
    admin_host: str = "127.0.0.1"
    admin_port: int = 0
    node_id: str = "node1"
    #: Digest realm (default: the first domain).
    realm: str | None = None
    auth_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    nonce_lifetime: float = 300.0
    #: HMAC key for nonces; persisted by the caller so a restart keeps nonces valid.
    secret: bytes = b""
    require_auth_for_local_callers: bool = True
    min_expires: int = 60
    default_expires: int = 3600
    max_expires: int = 7200
    max_contacts: int = 10
    #: Seconds between purges of expired bindings.
    purge_interval: float = 60.0
    proxy: ProxySettings = field(default_factory=ProxySettings)
    #: Replaces DNS (tests, or a static deployment); None uses the system's DNS.
    resolver: Resolver | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_realm(self) -> str:
        return self.realm or (self.domains[0] if self.domains else "sipline")

    def realm_for(self, domain: str) -> str:
        """The digest realm of *domain*: the configured realm, else the domain itself."""
        return self.realm or domain


class Server:
    """The sipline server process (see module docstring)."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.ids = SecureIdSource()
        self.endpoint: Endpoint | None = None
        self.listening: list[Peer] = []
        self.started_at = time.time()
        self.draining = False
        self._closed = asyncio.Event()
        self._admin: Any = None
        self.storage: Storage | None = None
        self.registrar: Registrar | None = None
        self.digest: DigestServer | None = None
        self.digests: dict[str, DigestServer] = {}
        self.registrars: dict[str, Registrar] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._purger: asyncio.Task[None] | None = None
        self._collector: CollectorSchedule | None = None
        self._own_domains = frozenset(options.domains)
        self._own_key: tuple[int, int] = (-1, -1)
        self._own: tuple[frozenset[str], frozenset[tuple[str, int]]] = (frozenset(), frozenset())
        resolver = options.resolver or CachingResolver(DnsResolver(), clock=time.monotonic)
        self.proxy = ProxyRole(self, options.proxy, resolver)

    # -- lifecycle ---------------------------------------------------------------------

    def _tls_contexts(self) -> tuple[ssl.SSLContext | None, ssl.SSLContext]:
        opts = self.options
        server_ctx = None
        if opts.tls_cert is not None:
            server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server_ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
        client_ctx = ssl.create_default_context(cafile=str(opts.tls_ca) if opts.tls_ca else None)
        if not opts.tls_verify:
            client_ctx.check_hostname = False
            client_ctx.verify_mode = ssl.CERT_NONE
        return server_ctx, client_ctx

    async def start(self) -> None:
        opts = self.options
        server_tls, client_tls = self._tls_contexts()
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        self.storage = await open_storage(opts.storage_url or (opts.data_dir / "sipline.db"),
                                          max_bindings=max(opts.max_contacts, 1),
                                          records_url=opts.records_url)
        secret = opts.secret or secrets.token_bytes(32)
        # A random salt per nonce: two challenges issued in the same millisecond must differ,
        # or the second client's nc=1 looks like a replay of the first's.
        nonces = NonceFactory(secret, opts.nonce_lifetime, make_salt=lambda: self.ids.token(4))
        policy = RegistrarPolicy(frozenset(opts.domains), default_expires=opts.default_expires,
                                 min_expires=opts.min_expires, max_expires=opts.max_expires,
                                 max_contacts=opts.max_contacts)
        # One digest realm per domain (unless one realm is configured): a subscriber's HA1 is
        # computed with the realm of its own domain.
        for domain in opts.domains or ("sipline",):
            digest = DigestServer(opts.realm_for(domain), nonces, algorithms=opts.auth_algorithms)
            self.digests[domain] = digest
            self.registrars[domain] = Registrar(self.storage, digest, policy, self.ids, node_id=opts.node_id,
                                                identity_domain=domain)
        first = next(iter(self.registrars))
        self.digest = self.digests[first]
        self.registrar = self.registrars[first]

        def factory(on_message: Any, on_error: Any) -> TransportManager:
            return TransportManager(
                on_message,
                on_error=on_error,
                config=TransportConfig(limits=opts.limits),
                server_tls=server_tls,
                client_tls=client_tls,
                tag_source=self.ids.tag,
            )

        self.endpoint = Endpoint(factory, self, ids=self.ids, timers=opts.timers)
        for spec in opts.listen:
            if spec.transport == "tls" and server_tls is None:
                log.warning("skipping %s: no TLS certificate configured", spec)
                continue
            self.listening.append(await self.endpoint.transports.listen(spec.transport, spec.host, spec.port))
        self._purger = asyncio.get_running_loop().create_task(self._purge_loop())
        # Collection on a clock while we serve: see sipline.runtime.collector.
        self._collector = CollectorSchedule(asyncio.get_running_loop())
        self._collector.start()

    async def _purge_loop(self) -> None:
        assert self.registrar is not None
        while True:
            await asyncio.sleep(self.options.purge_interval)
            try:
                purged = await self.registrar.purge(time.time())
                if purged:
                    log.info("purged %d expired bindings", purged)
            except Exception:  # pragma: no cover - storage failures are logged, not fatal
                log.exception("purging expired bindings failed")

    def spawn(self, coro: Any) -> None:
        """Run a request handler coroutine; failures become logged 500s, never crashes."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("request handler failed", exc_info=task.exception())

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Refuse new requests with 503, let transactions finish, then close."""
        self.draining = True
        if self.endpoint is not None:
            deadline = asyncio.get_running_loop().time() + drain_timeout
            # Wait for work in progress (proxied requests, registrations), not for finished
            # transactions that only absorb retransmissions.
            while (self.proxy.active or self._tasks) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            await self.endpoint.close()
        if self._purger is not None:
            self._purger.cancel()
        if self._collector is not None:
            self._collector.stop()
        for task in list(self._tasks):
            task.cancel()
        if self.storage is not None:
            await self.storage.close()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # -- helpers -----------------------------------------------------------------------

    def is_own_host(self, host: str, port: int | None = None) -> bool:
        host = host.lower().rstrip(".")
        if host in self._own_domains:
            return True
        own = self._own_addresses()
        if port is None:
            return host in own[0]
        return (host, port) in own[1]

    def _own_addresses(self) -> tuple[frozenset[str], frozenset[tuple[str, int]]]:
        """Hosts we listen on, and (host, port) pairs of our listeners and, in worker mode,
        of this worker's own port; rebuilt when the listeners change (proxy routing asks
        several times per request)."""
        private = self.endpoint.transports.private_ports if self.endpoint is not None else []
        key = (len(self.listening), len(private))
        if key != self._own_key:
            self._own_key = key
            hosts = frozenset(peer.host for peer in self.listening)
            pairs = frozenset((peer.host, peer.port) for peer in [*self.listening, *private])
            self._own = (hosts, pairs)
        return self._own

    def respond(self, key: TransactionKey, request: Request, status: int, reason: str | None = None,
                headers: Sequence[tuple[str, str]] = ()) -> None:
        assert self.endpoint is not None
        response = response_to(request, status, reason, to_tag=self.ids.tag(), headers=headers)
        self.endpoint.respond(key, response)

    # -- TransactionUser ---------------------------------------------------------------

    def on_request(self, request: Request, key: TransactionKey, origin: Origin) -> None:
        method = request.method
        if self.draining and method not in (ACK, CANCEL):
            self.respond(key, request, 503, "Service Unavailable", (("Retry-After", "30"),))
            return
        if method == OPTIONS and self._addressed_to_us(request):
            self.respond(key, request, 200, "OK", (
                ("Allow", ", ".join(ALLOWED_METHODS)),
                ("Accept", "application/sdp"),
                ("Supported", ", ".join(SUPPORTED_OPTIONS)),
            ))
            return
        if method == REGISTER and self._for_our_domain(request):
            self._start_register(request, key, origin)
            return
        self.proxy.handle_request(request, key, origin)

    def _addressed_to_us(self, request: Request) -> bool:
        uri = request.uri
        if not isinstance(uri, SipURI):
            return False
        if request.max_forwards == 0:
            return True
        return uri.user is None and self.is_own_host(uri.host, uri.port)

    def _for_our_domain(self, request: Request) -> bool:
        uri = request.uri
        return isinstance(uri, SipURI) and self.is_own_host(uri.host)

    def _start_register(self, request: Request, key: TransactionKey, origin: Origin) -> None:
        """Answer at once what needs no store (the 401 of every first REGISTER), else
        hand the rest to a task: it awaits the subscriber and location stores."""
        assert self.registrar is not None
        peer = origin.peer
        source = Source(peer.transport, peer.host, peer.port)
        try:
            uri = request.uri
            host = uri.host.lower() if isinstance(uri, SipURI) else ""
            registrar = self.registrars.get(host, self.registrar)
            early = registrar.answer_now(request, source, time.time())
        except Exception:
            log.exception("[%s] REGISTER failed", request.call_id)
            early = response_to(request, 500, "Server Internal Error", to_tag=self.ids.tag())
        if isinstance(early, Response):
            self._registered(request, key, origin, early)
        else:
            self.spawn(self._register(request, key, origin, registrar, source, early))

    async def _register(self, request: Request, key: TransactionKey, origin: Origin, registrar: Registrar,
                        source: Source, credentials: Credentials) -> None:
        connection_id = str(origin.peer) if origin.connection is not None else None
        try:
            response = await registrar.handle(request, source, time.time(), connection_id, credentials)
        except Exception:
            log.exception("[%s] REGISTER failed", request.call_id)
            response = response_to(request, 500, "Server Internal Error", to_tag=self.ids.tag())
        self._registered(request, key, origin, response)

    def _registered(self, request: Request, key: TransactionKey, origin: Origin, response: Response) -> None:
        """Send the final response to a REGISTER, with its INFO line (challenges have none)."""
        assert self.endpoint is not None
        if response.status != 401 and log.isEnabledFor(logging.INFO):
            log.info("[%s] REGISTER %s: %d %s from %s", request.call_id, request.to.uri, response.status,
                     response.reason, origin.peer)
        self.endpoint.respond(key, response)

    def on_cancel(self, cancel: Request, invite_key: TransactionKey, origin: Origin) -> None:
        self.proxy.handle_cancel(cancel, invite_key)

    def on_ack(self, ack: Request, origin: Origin | None) -> None:
        self.proxy.handle_ack(ack, origin)

    def on_stray_response(self, response: Response, origin: Origin | None) -> None:
        self.proxy.handle_stray_response(response)

    def advertised_host(self, local: Peer) -> str:
        """The address to put in Via and Record-Route for a listener (never a wildcard)."""
        if local.host not in ("0.0.0.0", "::", ""):
            return local.host
        for domain in self.options.domains:
            if domain.replace(".", "").isdigit() and not domain.startswith("127."):
                return domain
        return "127.0.0.1"

    def transports_available(self) -> tuple[str, ...]:
        have = {p.transport for p in self.listening}
        order = [t for t in ("tls", "tcp", "udp") if t in have or (t == "tls" and "tcp" in have)]
        return tuple(order) or ("udp",)
