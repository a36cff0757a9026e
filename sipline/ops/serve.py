"""Turn a :class:`~sipline.ops.config.Config` into a running server with its admin endpoint.

The roles know nothing about TOML, environment variables or the admin protocol; this module
is where operator-facing configuration meets them: it converts config sections into the
roles' option objects, loads the routing module, composes configured static routes with the
user's routing function, and serves ``GET /registrations`` and ``GET /calls`` (protocol in
:mod:`sipline.ops.admin`) on loopback for ``sipline registrations`` / ``sipline calls``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from ..roles.proxy import ProxySettings, load_route_function
from ..roles.server import Server, ServerOptions
from ..sip.message import Request, SipURI, TelURI
from ..sip.proxy.policy import Continue, Decision, Redirect, Relay, RouteFunction, RoutingContext
from ..sip.transport import Peer
from .admin import registration_row, remove_port_file, write_port_file
from .config import Config, StaticRoute, load_secret

__all__ = ["ConfiguredServer", "server_options", "build_route_function"]

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


class ConfiguredServer:
    """The server plus its admin endpoint, with the lifecycle the CLI drives."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.server = Server(server_options(config))
        self._admin: asyncio.AbstractServer | None = None

    @property
    def listening(self) -> list[Peer]:
        return self.server.listening

    async def start(self) -> None:
        await self.server.start()
        if self.config.admin.enabled:
            host = self.config.admin.host
            self._admin = await asyncio.start_server(self._admin_client, host, self.config.admin.port)
            bound = self._admin.sockets[0].getsockname()
            write_port_file(self.config.data_dir, host, int(bound[1]))

    async def stop(self, drain_timeout: float) -> None:
        if self._admin is not None:
            self._admin.close()
            remove_port_file(self.config.data_dir)
        await self.server.stop(drain_timeout)

    async def wait_closed(self) -> None:
        await self.server.wait_closed()

    async def reload(self, config: Config) -> None:
        """SIGHUP: routing changes apply to new requests; listeners stay as they are."""
        options = server_options(config)
        self.server.proxy.settings = options.proxy
        self.config = config
        log.info("configuration reloaded")

    # -- admin HTTP (tiny, loopback only) ------------------------------------------------

    async def _admin_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            parts = head.split(b"\r\n", 1)[0].split()
            path = parts[1].decode() if len(parts) >= 2 else "/"
            status, body = await self._admin_route(path)
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
            return "200 OK", rows
        return "404 Not Found", {"error": f"no such path {path}"}
