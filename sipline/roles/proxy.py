"""The stateful proxy role (RFC 3261 §16) on top of the endpoint.

All SIP decisions are made by the sans-I/O pieces in :mod:`sipline.sip.proxy`: request
validation, route preprocessing, the routing policy, request preparation and the response
context that forks and picks the best response.  This module only does what needs I/O:
location lookups and digest HA1 lookups in storage, RFC 3263 resolution of next hops,
sending branches through the endpoint and running Timer C on the event loop.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runtime.dns import Resolver
from ..runtime.endpoint import ClientCallbacks, Destination
from ..runtime.transport import Origin
from ..sip.auth_policy import (
    auth_failure_response,
    identity_matches,
)
from ..sip.errors import BadExtension, ProtocolError, SiplineError, UsageError
from ..sip.message import NameAddr, Request, Response, SipURI, parse_uri
from ..sip.message.builders import cancel_for
from ..sip.message.params import Params
from ..sip.message.uri import URI
from ..sip.methods import ACK, CANCEL, INVITE, REFER, SUBSCRIBE
from ..sip.proxy.context import (
    CancelBranch,
    Done,
    ForkTarget,
    ForwardRequest,
    ResponseContext,
    SendUpstream,
)
from ..sip.proxy.policy import (
    Continue,
    Decision,
    ProxyTo,
    Redirect,
    Relay,
    Reply,
    RouteFunction,
    RoutingContext,
    StaticRoute,
    default_route,
)
from ..sip.proxy.routing import prepare_forward, preprocess_routes, process_response
from ..sip.proxy.validate import compose_branch, loop_branch, validate_request
from ..sip.transaction.keys import TransactionKey
from ..sip.transport import Peer
from .authn import verify_digest
from .proxy_hops import HopResolver

if TYPE_CHECKING:
    from ..storage.models import Binding
    from .server import Server

__all__ = ["ProxyRole", "ProxySettings", "load_route_function"]

log = logging.getLogger("sipline.proxy")

#: Requests that may create a dialog, and so get a Record-Route.
_DIALOG_CREATING = frozenset({INVITE, SUBSCRIBE, REFER})


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Proxy behaviour from configuration."""

    record_route: bool = True
    parallel: bool = True
    static_routes: tuple[StaticRoute, ...] = ()
    redirect_domains: frozenset[str] = frozenset()
    route: RouteFunction | None = None
    require_auth: bool = True
    loop_secret: bytes = b""
    supported: frozenset[str] = field(default_factory=lambda: frozenset({"path", "outbound"}))


def load_route_function(spec: str) -> RouteFunction:
    """Import ``route(request, ctx)`` from a module path (``pkg.mod``) or a ``.py`` file."""
    if spec.endswith(".py") or "/" in spec:
        path = Path(spec)
        module_spec = importlib.util.spec_from_file_location(f"sipline_route_{path.stem}", path)
        if module_spec is None or module_spec.loader is None:
            raise UsageError(f"cannot load routing module {spec}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(spec)
    route = getattr(module, "route", None)
    if not callable(route):
        raise UsageError(f"routing module {spec} has no route(request, ctx) function")
    return route  # type: ignore[no-any-return]


class _Call:
    """One proxied request: its response context and the branches sent for it."""

    __slots__ = ("request", "key", "origin", "context", "branches", "bindings", "relay", "record_route", "timer",
                 "loop", "started", "final")

    def __init__(self, request: Request, key: TransactionKey, origin: Origin, context: ResponseContext,
                 bindings: dict[str, Binding], relay: str | None, record_route: bool, loop: str) -> None:
        self.loop = loop
        self.started = time.time()
        self.final: Response | None = None
        self.request = request
        self.key = key
        self.origin = origin
        self.context = context
        self.branches: dict[int, tuple[Request, Destination]] = {}
        self.bindings = bindings
        self.relay = relay
        self.record_route = record_route
        self.timer: asyncio.TimerHandle | None = None


class ProxyRole:
    """Routes requests that are not for the server itself."""

    def __init__(self, server: Server, settings: ProxySettings, resolver: Resolver) -> None:
        self.server = server
        self.settings = settings
        self.resolver = resolver
        self._calls: dict[TransactionKey, _Call] = {}
        self.stats: dict[str, int] = {"requests": 0, "forwarded": 0, "refused": 0}
        self._hops = HopResolver(resolver, server.transports_available)
        # Our own addresses, derived from the listeners on first use and again whenever
        # their number changes (they are fixed once the server has started).
        self._addresses_for: tuple[int, int] = (-1, -1)
        self._own_via_set: frozenset[str] = frozenset()
        self._locals: dict[str, Peer] = {}
        self._via_locals: dict[str, Peer] = {}
        self._domains: frozenset[str] = frozenset(self.server.options.domains)
        self._rr: dict[Peer, NameAddr] = {}

    # -- helpers -----------------------------------------------------------------------

    @property
    def _endpoint(self) -> Any:
        assert self.server.endpoint is not None
        return self.server.endpoint

    def _respond(self, key: TransactionKey, request: Request, status: int, reason: str | None = None,
                 headers: Sequence[tuple[str, str]] = ()) -> None:
        self.server.respond(key, request, status, reason, headers)

    def _is_own_uri(self, uri: URI) -> bool:
        return isinstance(uri, SipURI) and uri.user is None and self.server.is_own_host(uri.host, uri.port)

    def _refresh_addresses(self) -> None:
        """Forget the derived addresses when the listeners changed (see __init__)."""
        now = (len(self.server.listening), len(self._endpoint.transports.private_ports))
        if now != self._addresses_for:
            self._addresses_for = now
            self._own_via_set = frozenset(self._compute_own_vias())
            self._locals.clear()
            self._via_locals.clear()

    def _compute_own_vias(self) -> list[str]:
        own = [*self.server.listening, *self._endpoint.transports.private_ports]
        return [f"{self.server.advertised_host(p)}:{p.port}".lower() for p in own]

    def _own_vias(self) -> frozenset[str]:
        self._refresh_addresses()
        return self._own_via_set

    def _local(self, transport: str) -> Peer:
        """Our address on *transport* as others should reach it (Record-Route)."""
        self._refresh_addresses()
        found = self._locals.get(transport)
        if found is None:
            transports = self._endpoint.transports
            local = transports.local_for(transport) or transports.local_for("udp") or self.server.listening[0]
            found = self._locals[transport] = Peer(transport, self.server.advertised_host(local), local.port)
        return found

    def _via_local(self, transport: str) -> Peer:
        """Our Via sent-by for a request sent on *transport*: in worker mode this worker's
        own UDP port, so that responses come back to the process holding the transaction."""
        self._refresh_addresses()
        found = self._via_locals.get(transport)
        if found is None:
            local = self._endpoint.transports.via_local(transport)
            if local is None:
                found = self._local(transport)
            else:
                found = Peer(transport, self.server.advertised_host(local), local.port)
            self._via_locals[transport] = found
        return found

    # -- requests ----------------------------------------------------------------------

    def handle_request(self, request: Request, key: TransactionKey, origin: Origin) -> None:
        self.stats["requests"] += 1
        try:
            answer_options = validate_request(
                request,
                own_addresses=self._own_vias(),
                supported_options=self.settings.supported,
                loop_secret=self.settings.loop_secret,
            )
        except BadExtension as exc:
            self._refuse(key, request, exc, (("Unsupported", ", ".join(exc.unsupported)),))
            return
        except ProtocolError as exc:
            self._refuse(key, request, exc)
            return
        if answer_options:
            self._respond(key, request, 200, "OK")
            return
        try:
            loop = loop_branch(request, self.settings.loop_secret)
            preprocess_routes(request, self._is_own_uri)
        except ProtocolError as exc:
            self._refuse(key, request, exc)
            return
        try:
            if self._needs_stores(request):
                self.server.spawn(self._route(request, key, origin, loop))
                return
            # In-dialog and preloaded-route requests: routed at once, without a task.
            self._decide(request, key, origin, loop, {}, self._context_now(request, origin))
        except Exception:  # as a failing task would be: logged, and the transaction times out
            log.exception("[%s] routing %s failed", request.call_id, request.method)

    def _needs_stores(self, request: Request) -> bool:
        """Whether routing *request* may read storage: digest credentials of a caller from
        our domains, or the bindings of one of our AORs (see _authorized, _context)."""
        if request.routes:
            return False
        uri = request.uri
        if isinstance(uri, SipURI) and uri.user is not None and uri.host.lower() in self._domains:
            return True
        if request.to.tag is not None or not self.settings.require_auth or request.method in (ACK, CANCEL):
            return False
        from_uri = request.from_.uri
        return isinstance(from_uri, SipURI) and from_uri.host.lower() in self._domains

    def _refuse(self, key: TransactionKey, request: Request, exc: ProtocolError,
                headers: Sequence[tuple[str, str]] = ()) -> None:
        self.stats["refused"] += 1
        log.info("[%s] %s refused with %d: %s", request.call_id, request.method, exc.status, exc.reason)
        self._respond(key, request, exc.status, None, headers)

    async def _route(self, request: Request, key: TransactionKey, origin: Origin, loop: str) -> None:
        initial = request.to.tag is None
        if initial and request.routes == () and not await self._authorized(request, key):
            return
        bindings: dict[str, Binding] = {}
        ctx = await self._context(request, origin, bindings)
        self._decide(request, key, origin, loop, bindings, ctx)

    def _decide(self, request: Request, key: TransactionKey, origin: Origin, loop: str,
                bindings: dict[str, Binding], ctx: RoutingContext) -> None:
        """Ask the routing function (or the default) and carry the decision out."""
        initial = request.to.tag is None
        decision: Decision = Continue()
        if request.routes:
            # Loose routing inside a dialog, or a preloaded route: follow it.
            decision = ProxyTo((request.uri,), record_route=False)
        elif self.settings.route is not None:
            try:
                decision = self.settings.route(request, ctx)
            except Exception:
                log.exception("[%s] routing function failed", request.call_id)
                self._respond(key, request, 500, "Routing Error")
                return
        if isinstance(decision, Continue):
            decision = default_route(request, ctx)
        self._execute(decision, request, key, origin, bindings, initial, loop)

    async def _authorized(self, request: Request, key: TransactionKey) -> bool:
        """Digest-authenticate callers from our own domains (407), bind From to the user (403)."""
        if not self.settings.require_auth or request.method in (ACK, CANCEL):
            return True
        from_uri = request.from_.uri
        if not isinstance(from_uri, SipURI) or from_uri.host.lower() not in self._domains:
            return True  # calls from outside to our users need no credentials
        digest = self.server.digests.get(from_uri.host.lower(), self.server.digest)
        assert digest is not None and self.server.storage is not None
        now = time.time()
        result = await verify_digest(request, digest, self.server.storage.subscribers, now, proxy=True)
        if not result.ok:
            if "Proxy-Authorization" in request.headers:
                log.info("[%s] %s from %s not authenticated: %s", request.call_id, request.method,
                         from_uri, result.reason)
            self._endpoint.respond(key, auth_failure_response(request, result, proxy=True, to_tag=self.server.ids.tag()))
            return False
        assert result.username is not None
        if not identity_matches(request, result.username, from_uri.host.lower()):
            log.info("[%s] %s may not send as %s", request.call_id, result.username, from_uri)
            self._respond(key, request, 403, "Forbidden (From does not match the authenticated user)")
            return False
        return True

    def _context_now(self, request: Request, origin: Origin) -> RoutingContext:
        """The routing context of a request whose Request-URI is no AOR of ours."""
        return RoutingContext(
            source=origin.peer,
            local_domains=self._domains,
            redirect_domains=self.settings.redirect_domains,
            static_routes=self.settings.static_routes,
        )

    async def _context(self, request: Request, origin: Origin, bindings: dict[str, Binding]) -> RoutingContext:
        uri = request.uri
        aor_known = False
        targets: list[ForkTarget] = []
        domains = self._domains
        if isinstance(uri, SipURI) and uri.user is not None and uri.host.lower() in domains and not request.routes:
            registrar = self.server.registrar
            storage = self.server.storage
            assert registrar is not None and storage is not None
            aor = f"sip:{uri.user_unescaped}@{uri.host.lower()}"
            for binding in await registrar.lookup(aor, time.time()):
                try:
                    target = parse_uri(binding.contact)
                except ProtocolError:
                    continue
                bindings[str(target)] = binding
                targets.append(ForkTarget(target, binding.q))
            aor_known = bool(targets)
            if not aor_known:
                user = uri.user_unescaped
                assert user is not None  # uri.user was checked above
                for domain in domains:
                    if await storage.subscribers.get(user, domain) is not None:
                        aor_known = True
                        break
        return RoutingContext(
            source=origin.peer,
            local_domains=domains,
            redirect_domains=self.settings.redirect_domains,
            static_routes=self.settings.static_routes,
            aor_known=aor_known,
            bindings=tuple(targets),
        )

    def _execute(self, decision: Decision, request: Request, key: TransactionKey, origin: Origin,
                 bindings: dict[str, Binding], initial: bool, loop: str) -> None:
        if isinstance(decision, Reply):
            log.info("[%s] %s %s -> %s: %d %s (routing) from %s", request.call_id, request.method,
                     request.from_.uri, request.to.uri, decision.status, decision.reason_phrase, origin.peer)
            self._respond(key, request, decision.status, decision.reason_phrase, decision.headers)
            return
        if isinstance(decision, Redirect):
            contacts = []
            for c in decision.contacts:
                if isinstance(c, ForkTarget):
                    q = f";q={c.q}" if c.q is not None else ""
                    contacts.append(("Contact", f"<{c.uri}>{q}"))
                else:
                    contacts.append(("Contact", f"<{c}>"))
            self._respond(key, request, decision.status, None, contacts)
            return
        relay: str | None = None
        if isinstance(decision, Relay):
            relay = decision.next_hop
            targets: Sequence[ForkTarget | URI] = (request.uri,)
            record_route = decision.record_route
            parallel = True
        else:
            assert isinstance(decision, ProxyTo)
            targets = [t if isinstance(t, ForkTarget) else (parse_uri(t) if isinstance(t, str) else t)
                       for t in decision.targets]
            record_route = decision.record_route
            parallel = decision.parallel and self.settings.parallel
        record_route = record_route and self.settings.record_route and initial and request.method in _DIALOG_CREATING
        context = ResponseContext(request, targets, to_tag=self.server.ids.tag(), parallel=parallel,
                                  timers=self.server.options.timers)
        call = _Call(request, key, origin, context, bindings, relay, record_route, loop)
        self._calls[key] = call
        context.start(time.monotonic())
        self._drive(call)

    # -- the response context ------------------------------------------------------------

    def _drive(self, call: _Call) -> None:
        for action in call.context.drain_actions():
            if isinstance(action, ForwardRequest):
                # Soon, not now: sending may deliver a response that drives this call again.
                asyncio.get_running_loop().call_soon(self._forward_soon, call, action.branch_id, action.target)
            elif isinstance(action, CancelBranch):
                self._cancel_branch(call, action.branch_id)
            elif isinstance(action, SendUpstream):
                if action.response.status >= 200 and call.final is None:
                    call.final = action.response
                try:
                    self._endpoint.respond(call.key, action.response)
                except SiplineError as exc:
                    log.debug("[%s] upstream response not sent: %s", call.request.call_id, exc)
            elif isinstance(action, Done):
                self._finish(call)
                return
        self._arm(call)

    def _arm(self, call: _Call) -> None:
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        deadline = call.context.next_deadline()
        if deadline is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, deadline - time.monotonic())
            call.timer = loop.call_later(delay, self._on_timer, call)

    def _on_timer(self, call: _Call) -> None:
        call.timer = None
        call.context.handle_timer(time.monotonic())
        self._drive(call)

    def _finish(self, call: _Call) -> None:
        if call.timer is not None:
            call.timer.cancel()
        self._calls.pop(call.key, None)
        if log.isEnabledFor(logging.INFO):
            request, final = call.request, call.final
            log.info("[%s] %s %s -> %s: %s in %.3fs from %s", request.call_id, request.method,
                     request.from_.uri, request.to.uri,
                     f"{final.status} {final.reason}" if final is not None else "no final response",
                     time.time() - call.started, call.origin.peer)

    def _forward_soon(self, call: _Call, branch_id: int, target: URI) -> None:
        """Send a branch at once when its destination is known without DNS, else in a task."""
        try:
            found = self._destination_now(call, target, call.bindings.get(str(target)))
        except (ProtocolError, SiplineError) as exc:
            log.info("[%s] cannot forward to %s: %s", call.request.call_id, target, exc)
            call.context.on_branch_error(branch_id, time.monotonic())
            self._drive(call)
            return
        if found is None:
            self.server.spawn(self._forward(call, branch_id, target))
        else:
            self._send_branch(call, branch_id, target, *found)

    async def _forward(self, call: _Call, branch_id: int, target: URI) -> None:
        request = call.request
        binding = call.bindings.get(str(target))
        try:
            dest, push = await self._destination(call, target, binding)
        except (ProtocolError, SiplineError, OSError) as exc:
            log.info("[%s] cannot forward to %s: %s", request.call_id, target, exc)
            call.context.on_branch_error(branch_id, time.monotonic())
            self._drive(call)
            return
        self._send_branch(call, branch_id, target, dest, push)

    def _send_branch(self, call: _Call, branch_id: int, target: URI, dest: Destination,
                     push: tuple[str, ...]) -> None:
        request = call.request
        try:
            local = self._local(dest.peer.transport)
            branch = compose_branch(self.server.ids.branch(), call.loop)
            record_route = self._record_route(local) if call.record_route else None
            via = self._via_local(dest.peer.transport)
            out = prepare_forward(
                request, target,
                via=f"SIP/2.0/{via.transport.upper()} {_host(via.host)}:{via.port};rport",
                branch=branch,
                record_route=record_route,
                inbound_transport=call.origin.peer.transport,
                outbound_transport=dest.peer.transport,
                push_routes=push,
            )
        except (ProtocolError, SiplineError, OSError) as exc:
            log.info("[%s] cannot forward to %s: %s", request.call_id, target, exc)
            call.context.on_branch_error(branch_id, time.monotonic())
            self._drive(call)
            return
        call.branches[branch_id] = (out, dest)
        self.stats["forwarded"] += 1

        def on_response(response: Response) -> None:
            call.context.on_response(branch_id, response, time.monotonic())
            self._drive(call)

        def on_failure(status: int) -> None:
            call.context.on_branch_error(branch_id, time.monotonic(), timeout=status == 408)
            self._drive(call)

        self._endpoint.send_request(out, dest, ClientCallbacks(on_response, on_failure))

    def _record_route(self, local: Peer) -> NameAddr:
        """Our Record-Route value for requests leaving from *local*: one object per
        address, so the rendered values are cached (sipline.sip.proxy.routing)."""
        found = self._rr.get(local)
        if found is None:
            rr_params = (("lr", None),) if local.transport == "udp" else (("transport", local.transport), ("lr", None))
            found = NameAddr(SipURI("sip", None, None, local.host, local.port, Params(rr_params)))
            if len(self._rr) > 64:
                self._rr.clear()
            self._rr[local] = found
        return found

    def _hop(self, call: _Call, target: URI, binding: Binding | None) -> tuple[Destination | URI, tuple[str, ...]]:
        """Where a branch goes: the registering flow for a NATed binding, else the URI to
        resolve (RFC 3263)."""
        push: tuple[str, ...] = ()
        if binding is not None:
            push = tuple(binding.path)
            if binding.received is not None and not push:
                r = binding.received
                peer = Peer(r.transport, r.host, r.port)
                conn = self._endpoint.transports.connection_to(peer) if peer.reliable else None
                return Destination(peer, conn), push
        hop: URI
        if call.relay is not None:
            hop = parse_uri(call.relay)
        elif push:
            hop = parse_uri(push[0].strip("<>").split(">")[0])
        else:
            routes = call.request.routes
            hop = routes[0].uri if routes else target
        return hop, push

    def _destination_now(self, call: _Call, target: URI, binding: Binding | None) -> tuple[Destination, tuple[str, ...]] | None:
        hop, push = self._hop(call, target, binding)
        if isinstance(hop, Destination):
            return hop, push
        peer = self.resolve_now(hop)
        return None if peer is None else (Destination(peer), push)

    async def _destination(self, call: _Call, target: URI, binding: Binding | None) -> tuple[Destination, tuple[str, ...]]:
        hop, push = self._hop(call, target, binding)
        if isinstance(hop, Destination):
            return hop, push
        return Destination(await self.resolve(hop)), push

    def resolve_now(self, uri: URI) -> Peer | None:
        """The next hop for *uri* when it is known without DNS (see HopResolver)."""
        return self._hops.resolve_now(uri)

    async def resolve(self, uri: URI) -> Peer:
        """RFC 3263: the first transport address for *uri*."""
        return await self._hops.resolve(uri)

    def _cancel_branch(self, call: _Call, branch_id: int) -> None:
        sent = call.branches.get(branch_id)
        if sent is None:
            return
        out, dest = sent
        try:
            self._endpoint.send_request(cancel_for(out), dest, None)
        except SiplineError as exc:
            log.debug("[%s] CANCEL of branch %d not sent: %s", call.request.call_id, branch_id, exc)

    # -- CANCEL, ACK, stray responses ----------------------------------------------------

    def handle_cancel(self, cancel: Request, invite_key: TransactionKey) -> None:
        call = self._calls.get(invite_key)
        if call is None:
            return
        call.context.on_cancel(time.monotonic())
        self._drive(call)

    def handle_ack(self, ack: Request, origin: Origin | None) -> None:
        """Forward an ACK for a 2xx statelessly along its route (§16.11)."""
        try:
            if ack.max_forwards == 0:
                return
            loop = loop_branch(ack, self.settings.loop_secret)
            preprocess_routes(ack, self._is_own_uri)
        except ProtocolError as exc:
            log.info("dropping ACK: %s", exc.reason)
            return
        if not ack.routes and self._is_own_uri(ack.uri):
            return  # an ACK for a 2xx we generated ourselves
        hop = ack.routes[0].uri if ack.routes else ack.uri
        peer = self.resolve_now(hop) if ack.routes or not self._local_aor(hop) else None
        if peer is not None:
            self._send_stateless(ack, loop, peer)
        else:
            self.server.spawn(self._forward_stateless(ack, loop))

    def _local_aor(self, uri: URI) -> bool:
        return isinstance(uri, SipURI) and uri.user is not None and uri.host.lower() in self._domains

    async def _forward_stateless(self, request: Request, loop: str) -> None:
        try:
            routes = request.routes
            hop = routes[0].uri if routes else request.uri
            if isinstance(hop, SipURI) and hop.user is not None and hop.host.lower() in self._domains \
                    and not routes:
                registrar = self.server.registrar
                assert registrar is not None
                found = await registrar.lookup(f"sip:{hop.user_unescaped}@{hop.host.lower()}", time.time())
                if not found:
                    return
                hop = parse_uri(found[0].contact)
            peer = await self.resolve(hop)
        except (ProtocolError, SiplineError, OSError) as exc:
            log.info("[%s] cannot forward %s: %s", request.call_id, request.method, exc)
            return
        self._send_stateless(request, loop, peer)

    def _send_stateless(self, request: Request, loop: str, peer: Peer) -> None:
        try:
            local = self._via_local(peer.transport)
            branch = compose_branch(self.server.ids.branch(), loop)
            out = prepare_forward(request, request.uri, via=f"SIP/2.0/{local.transport.upper()} "
                                  f"{_host(local.host)}:{local.port};rport", branch=branch)
            self._endpoint.send_stateless(out, Destination(peer, self._endpoint.transports.connection_to(peer)
                                                           if peer.reliable else None))
        except (ProtocolError, SiplineError, OSError) as exc:
            log.info("[%s] cannot forward %s: %s", request.call_id, request.method, exc)

    def handle_stray_response(self, response: Response) -> None:
        """2xx retransmissions after the branch ended go upstream statelessly (§16.7)."""
        if not response.is_success or response.cseq.method != INVITE:
            return
        upstream = process_response(response)
        if upstream is not None:
            self._endpoint.send_response_stateless(upstream, None)

    @property
    def active(self) -> int:
        return len(self._calls)

    def calls(self) -> list[dict[str, Any]]:
        """Proxied requests in progress, for ``sipline calls``."""
        return [
            {
                "call_id": c.request.call_id,
                "method": c.request.method,
                "from": str(c.request.from_.uri),
                "to": str(c.request.to.uri),
                "state": c.context.state.name.lower(),
                "branches": len(c.branches),
                "started": c.started,
                "duration": time.time() - c.started,
            }
            for c in self._calls.values()
        ]


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host

