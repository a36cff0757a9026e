"""Turn a :class:`~sipline.ops.config.Config` into a running server with its admin endpoint.

The roles know nothing about TOML, environment variables or the admin protocol; this module
is where operator-facing configuration meets them: it converts config sections into the
roles' option objects, loads the routing module, composes configured static routes with the
user's routing function, and serves ``GET /registrations``, ``GET /calls`` and ``GET /trunks``
(protocol in :mod:`sipline.ops.admin`) on loopback for ``sipline registrations`` / ``calls`` /
``trunks``.

When ``[[trunks]]`` are configured the B2BUA/SBC runs in the same process.  How requests
reach it:

* with ``[sbc] listen`` set, the SBC has sockets of its own and every request arriving on
  them is the SBC's (the simplest layout to reason about: trunks point at one port,
  phones at another);
* otherwise (the default) it shares the server's listeners and one transaction layer.
  :class:`_Dispatch` sits between that layer and the two transaction users: a request
  goes to the SBC when :meth:`Sbc.claims` it -- a new INVITE from a carrier host, from an
  address in a customer trunk's ACL, with credentials of a customer trunk's user, or to
  a number listed in ``[[dids]]``; an in-dialog request, ACK, CANCEL or stray response
  of one of the SBC's calls -- and to the registrar/proxy otherwise.  Phones registered
  here keep calling each other through the proxy, while trunk traffic is bridged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from ..roles.b2bua.sbc import Sbc, SbcOptions
from ..roles.proxy import ProxySettings, load_route_function
from ..roles.server import Server, ServerOptions
from ..runtime import dispatch
from ..runtime.transport import Origin
from ..sip.message import Request, Response, SipURI, TelURI
from ..sip.transaction.keys import TransactionKey
from ..sip.proxy.policy import Continue, Decision, Redirect, Relay, RouteFunction, RoutingContext
from ..sip.transport import Peer
from .admin import merge_rows, registration_row, remove_port_file, write_port_file
from .config import Config, StaticRoute, build_routes, build_trunks, load_secret
from .gather import gather_workers

__all__ = ["ConfiguredServer", "server_options", "sbc_options", "build_route_function"]

log = logging.getLogger("sipline.serve")


def build_route_function(routes: tuple[StaticRoute, ...], user: RouteFunction | None) -> RouteFunction | None:
    """Static routes first (relay or redirect), then the user's function, then the default."""
    if not routes:
        return user

    def route(request: Request, ctx: RoutingContext) -> Decision:
        uri = request.uri
        if isinstance(uri, SipURI):
            user_part, host = uri.user_unescaped if uri.user is not None else None, uri.host
        elif isinstance(uri, TelURI):
            user_part, host = uri.number, ""
        else:
            user_part, host = None, ""
        if not request.routes:
            for static in routes:
                if static.matches(user_part, host):
                    if static.redirect:
                        return Redirect((static.next_hop,))
                    return Relay(static.next_hop)
        return user(request, ctx) if user is not None else Continue()

    return route


def server_options(config: Config) -> ServerOptions:
    """The roles' view of the configuration."""
    user_route = load_route_function(config.proxy.routing_module) if config.proxy.routing_module else None
    secret = load_secret(config)
    proxy = ProxySettings(
        record_route=config.proxy.record_route,
        parallel=config.proxy.fork_mode == "parallel",
        redirect_domains=frozenset(d.lower() for d in config.proxy.redirect_domains),
        route=build_route_function(config.proxy.static_routes, user_route),
        require_auth=config.auth.require_auth_for_local_callers,
        loop_secret=secret,
    )
    return ServerOptions(
        listen=tuple(Peer(s.transport, s.host, s.port) for s in config.listen),
        domains=tuple(d.lower() for d in config.domains),
        data_dir=config.data_dir,
        storage_url=config.storage_url or None,
        records_url=config.storage.cdr or None,
        tls_cert=config.tls.cert,
        tls_key=config.tls.key,
        tls_ca=config.tls.ca_file,
        limits=config.limits.to_limits(),
        timers=config.timers.to_timer_config(),
        node_id=config.node_id or "node1",
        realm=config.auth.realm or None,
        auth_algorithms=tuple(config.auth.algorithms),
        nonce_lifetime=float(config.auth.nonce_lifetime),
        secret=secret,
        require_auth_for_local_callers=config.auth.require_auth_for_local_callers,
        min_expires=config.registrar.min_expires,
        default_expires=config.registrar.default_expires,
        max_expires=config.registrar.max_expires,
        max_contacts=config.registrar.max_contacts_per_aor,
        proxy=proxy,
    )


def sbc_options(config: Config, advertise: str | None = None) -> SbcOptions | None:
    """The SBC's options, or None when no trunk is configured."""
    trunks = build_trunks(config)
    if not trunks.carriers and not trunks.customers:
        return None
    sbc = config.sbc
    host, _, port = sbc.rtpengine.rpartition(":")
    return SbcOptions(
        trunks=trunks,
        routes=build_routes(config),
        listen=tuple(Peer(s.transport, s.host, s.port) for s in sbc.listen),
        advertise=sbc.advertise or advertise,
        realm=sbc.realm,
        user_domain=config.domains[0] if config.domains else "localhost",
        timers=config.timers.to_timer_config(),
        ring_timeout=sbc.ring_timeout,
        retry_after=sbc.retry_after,
        auth_algorithms=tuple(config.auth.algorithms),
        storage_url=config.storage_url,
        health_checks=sbc.health_checks,
        secret=load_secret(config),
        media=sbc.media,
        media_address=sbc.media_address or None,
        rtp_ports=(sbc.rtp_port_min, sbc.rtp_port_max),
        rtpengine=(host.strip("[]") or "127.0.0.1", int(port or 2223)),
        media_timeout=sbc.media_timeout,
    )


class _Dispatch:
    """The transaction user of a shared endpoint: the SBC's traffic to the SBC, the rest to
    the server (see the module docstring)."""

    def __init__(self, server: Server, sbc: Sbc) -> None:
        self.server = server
        self.sbc = sbc

    def on_request(self, request: Request, key: TransactionKey, origin: Origin) -> None:
        if not self.server.draining and self.sbc.claims(request, origin):
            self.sbc.on_request(request, key, origin)
        else:
            self.server.on_request(request, key, origin)

    def on_cancel(self, cancel: Request, invite_key: TransactionKey, origin: Origin) -> None:
        if self.sbc.claims_invite(invite_key):
            self.sbc.on_cancel(cancel, invite_key, origin)
        else:
            self.server.on_cancel(cancel, invite_key, origin)

    def on_ack(self, ack: Request, origin: Origin | None) -> None:
        if self.sbc.claims_ack(ack):
            self.sbc.on_ack(ack, origin)
        else:
            self.server.on_ack(ack, origin)

    def on_stray_response(self, response: Response, origin: Origin | None) -> None:
        if self.sbc.claims_response(response):
            self.sbc.on_stray_response(response, origin)
        else:
            self.server.on_stray_response(response, origin)


class ConfiguredServer:
    """The server plus its admin endpoint (and the SBC when trunks are configured), with the
    lifecycle the CLI drives."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.server = Server(server_options(config))
        self.sbc: Sbc | None = None
        self._admin: asyncio.AbstractServer | None = None
        #: Worker mode: this worker's local-state admin socket (sipline.ops.gather).
        self._worker_admin: asyncio.AbstractServer | None = None

    @property
    def listening(self) -> list[Peer]:
        own = self.sbc.listening if self.sbc is not None and self.config.sbc.listen else []
        return [*self.server.listening, *own]

    async def _start_sbc(self) -> None:
        server = self.server
        advertise = server.advertised_host(server.listening[0]) if server.listening else None
        options = sbc_options(self.config, advertise)
        if options is None:
            return
        self.sbc = Sbc(options, storage=server.storage)
        if options.listen:
            await self.sbc.start()
        else:
            assert server.endpoint is not None
            await self.sbc.start(endpoint=server.endpoint, listening=server.listening)
            server.endpoint.user = _Dispatch(server, self.sbc)
        trunks = options.trunks
        log.info("SBC: %d carrier and %d customer trunks, %d routes, media %s%s", len(trunks.carriers),
                 len(trunks.customers), len(options.routes), options.media,
                 f", listening on {', '.join(map(str, self.sbc.listening))}" if options.listen else "")

    async def start(self) -> None:
        await self.server.start()
        if self.config.storage.cdr:
            from sipline.storage._logic import redact_url

            log.info("call records go to %s", redact_url(self.config.storage.cdr))
        await self._start_sbc()
        if self.config.admin.enabled:
            host = self.config.admin.host
            self._admin = await asyncio.start_server(self._admin_client, host, self.config.admin.port)
            bound = self._admin.sockets[0].getsockname()
            write_port_file(self.config.data_dir, host, int(bound[1]))
        group = dispatch.current()
        if group is not None and group.admin:
            self._worker_admin = await asyncio.start_server(
                self._worker_admin_client, sock=group.admin[group.index])

    async def stop(self, drain_timeout: float) -> None:
        if self._admin is not None:
            self._admin.close()
            remove_port_file(self.config.data_dir)
        if self._worker_admin is not None:
            self._worker_admin.close()
        if self.sbc is not None:
            await self.sbc.stop()
        await self.server.stop(drain_timeout)

    async def wait_closed(self) -> None:
        await self.server.wait_closed()

    async def reload(self, config: Config) -> None:
        """SIGHUP: routing changes apply to new requests; listeners stay as they are."""
        options = server_options(config)
        self.server.proxy.settings = options.proxy
        if (config.trunks, config.dids, config.routes, config.route_table, config.sbc) != (
                self.config.trunks, self.config.dids, self.config.routes, self.config.route_table, self.config.sbc):
            log.warning("trunk, DID, route and [sbc] changes take effect after a restart")
        self.config = config
        log.info("configuration reloaded")

    # -- admin HTTP (tiny, loopback only) ------------------------------------------------

    async def _worker_admin_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Worker mode: this worker's own rows, for the worker serving the endpoint."""
        await self._admin_client(reader, writer, local=True)

    async def _admin_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                            local: bool = False) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            parts = head.split(b"\r\n", 1)[0].split()
            path = parts[1].decode() if len(parts) >= 2 else "/"
            status, body = await self._admin_route(path)
            group = dispatch.current()
            shared = not (self.config.storage_url or "").startswith("memory:")
            if not local and group is not None and group.admin and status.startswith("200") \
                    and not (path == "/registrations" and shared):
                # Worker mode: answer for the whole server (sipline.ops.gather).
                per_worker = await gather_workers(group, path, body)
                body = merge_rows(path, per_worker, shared_store=shared)
            payload = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n".encode() + payload
            )
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _admin_route(self, path: str) -> tuple[str, Any]:
        now = time.time()
        if path == "/registrations":
            storage = self.server.storage
            assert storage is not None
            return "200 OK", [registration_row(b, now) for b in await storage.location.all(now)]
        if path == "/calls":
            rows = []
            for call in self.server.proxy.calls():
                rows.append({
                    "call_id": call["call_id"], "from": call["from"], "to": call["to"],
                    "state": call["state"], "started": call.get("started", now), "duration": call.get("duration", 0.0),
                })
            if self.sbc is not None:
                for b2b in list(self.sbc.calls.values()):
                    invite = b2b.inbound.invite  # the original caller's INVITE, even after a transfer
                    rows.append({
                        "call_id": b2b.call_id, "from": str(invite.from_.uri), "to": invite.uri_text,
                        "state": "answered" if b2b.answer else ("ringing" if b2b.ring else "trying"),
                        "started": b2b.started, "duration": now - b2b.started,
                        "from_trunk": b2b.info.from_trunk, "to_trunk": b2b.to_trunk,
                    })
            return "200 OK", rows
        if path == "/trunks":
            return "200 OK", await self.sbc.trunk_rows() if self.sbc is not None else []
        return "404 Not Found", {"error": f"no such path {path}"}
