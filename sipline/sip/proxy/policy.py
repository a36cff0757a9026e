"""Routing decisions: the pure-Python API between the proxy role and routing logic (RFC 3261 §16.5).

The proxy role asks one question per request: "where does this go?".  The answer is a value,
not an action, so that routing code (the default below, or an operator's module exposing
``route(request, ctx)``) can be tested with a request and a context and nothing else, and so
that the role stays the only place that talks to the network:

* :class:`ProxyTo` -- these targets become the target set (the Request-URI is rewritten);
* :class:`Redirect` -- answer 3xx with these contacts (a redirect server, §8.3);
* :class:`Reply` -- answer with this status;
* :class:`Relay` -- send to this next hop, keeping the Request-URI (an outbound proxy, a
  trunk, or a request that carries its own Route);
* :class:`Continue` -- no opinion: apply :func:`default_route`.

Everything a decision may depend on that is not in the request comes in a read-only
:class:`RoutingContext`.  In particular location lookups are asynchronous (storage), so the
role performs the lookup for the Request-URI and passes the result in; routing code never does
I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UsageError
from ..message.model import Request
from ..message.uri import URI, SipURI, TelURI
from ..status import reason_phrase
from ..transport import Peer
from .context import ForkTarget
from .routing import next_hop

__all__ = [
    "RoutingContext",
    "StaticRoute",
    "ProxyTo",
    "Redirect",
    "Reply",
    "Relay",
    "Continue",
    "Decision",
    "RouteFunction",
    "default_route",
]


@dataclass(frozen=True, slots=True)
class StaticRoute:
    """A configured route: requests matching it are relayed to ``next_hop``.

    A route matches when every criterion given matches: ``domain`` equals the Request-URI
    host (case-insensitive), ``prefix`` starts the user part of a SIP URI or the number of a
    tel URI.  ``next_hop`` is a SIP URI text (``"sip:gw.example.net;transport=tcp"``) that the
    role resolves with RFC 3263.
    """

    next_hop: str
    domain: str | None = None
    prefix: str | None = None

    def matches(self, uri: URI) -> bool:
        if self.domain is None and self.prefix is None:
            return True
        if isinstance(uri, SipURI):
            host, user = uri.host.lower(), uri.user or ""
        elif isinstance(uri, TelURI):
            host, user = "", uri.number
        else:
            return False
        if self.domain is not None and host != self.domain.lower():
            return False
        return self.prefix is None or user.startswith(self.prefix)


@dataclass(frozen=True, slots=True)
class RoutingContext:
    """What routing may know besides the request; read-only.

    ``aor_known`` and ``bindings`` are the location lookup for the Request-URI, done by the
    role before routing: an unknown address-of-record, or a known one with no current
    registration, lead to different answers (404 and 480).
    """

    #: Transport address the request came from (None for locally generated requests).
    source: Peer | None = None
    #: The user the request was authenticated as, None if it was not.
    user: str | None = None
    #: Domains we are responsible for: requests for them are looked up in the location service.
    local_domains: frozenset[str] = frozenset()
    #: Domains we answer with a redirect (3xx) instead of proxying.
    redirect_domains: frozenset[str] = frozenset()
    #: Configured routes, first match wins; they take precedence over domain handling.
    static_routes: tuple[StaticRoute, ...] = ()
    #: The Request-URI's address-of-record exists (a subscriber of ours).
    aor_known: bool = False
    #: Its current registrations, as targets with their q-values.
    bindings: tuple[ForkTarget, ...] = ()


@dataclass(frozen=True, slots=True)
class ProxyTo:
    """Fork to ``targets`` (the target set, §16.5); strings are parsed as URIs by the role.

    ``parallel`` False tries targets sequentially by q-value groups; ``record_route`` keeps us
    on the path of a dialog created by this request (§16.6 step 4).
    """

    targets: tuple[URI | str | ForkTarget, ...]
    parallel: bool = True
    record_route: bool = True


@dataclass(frozen=True, slots=True)
class Redirect:
    """Answer with ``status`` (a 3xx) and these Contact values (§21.3)."""

    contacts: tuple[URI | str | ForkTarget, ...]
    status: int = 302

    def __post_init__(self) -> None:
        if not 300 <= self.status <= 399:
            raise UsageError(f"Redirect status must be 3xx, not {self.status}")


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the request ourselves with ``status``; ``reason`` None means the standard phrase."""

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 699:
            raise UsageError(f"Reply status must be final (200-699), not {self.status}")

    @property
    def reason_phrase(self) -> str:
        return self.reason if self.reason is not None else reason_phrase(self.status)


@dataclass(frozen=True, slots=True)
class Relay:
    """Send to ``next_hop`` (a SIP URI text, resolved with RFC 3263), Request-URI unchanged."""

    next_hop: str
    record_route: bool = True


@dataclass(frozen=True, slots=True)
class Continue:
    """No decision: the role applies :func:`default_route`."""


Decision = ProxyTo | Redirect | Reply | Relay | Continue

#: The signature of a routing function, the default one or a user module's ``route``.
RouteFunction = Callable[[Request, RoutingContext], Decision]


def _location_decision(ctx: RoutingContext, redirect: bool) -> Decision:
    if not ctx.aor_known:
        return Reply(404)
    if not ctx.bindings:
        return Reply(480)
    if redirect:
        return Redirect(ctx.bindings)
    return ProxyTo(ctx.bindings)


def default_route(request: Request, ctx: RoutingContext) -> Decision:
    """The routing a plain registrar-backed proxy does.

    In order: a request still carrying Route values (loose routing in a dialog, after
    :func:`~.routing.preprocess_routes` removed ours) follows them; a static route that
    matches wins; a redirect domain gets a 3xx to the bindings, a local domain is proxied to
    them (404 unknown user, 480 known but not registered); any other SIP domain is relayed
    towards the Request-URI, which the role resolves with RFC 3263; a tel URI without a
    static route has nowhere to go (404).
    """
    if request.routes:
        return Relay(str(next_hop(request)), record_route=False)
    uri = request.uri
    for route in ctx.static_routes:
        if route.matches(uri):
            return Relay(route.next_hop)
    if not isinstance(uri, SipURI):
        return Reply(404, "No Route To Destination")
    host = uri.host.lower()
    if host in {d.lower() for d in ctx.redirect_domains}:
        return _location_decision(ctx, redirect=True)
    if host in {d.lower() for d in ctx.local_domains}:
        return _location_decision(ctx, redirect=False)
    return Relay(str(uri))

