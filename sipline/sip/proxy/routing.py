"""Route preprocessing, request forwarding and response forwarding (RFC 3261 §16.4-§16.7).

These are the message edits a proxy makes, as pure functions over the lossless message
model.  The rule that shapes them: change only what the RFC tells a proxy to change, and
leave every other byte as received.  A proxy that re-renders a header it did not need to
touch breaks peers that compare header text (Via, To, Record-Route are matched as text by
many user agents), so edits go through :class:`~sipline.sip.message.headers.Headers`
operations that replace single values and keep the rest of each field.

Who is "us" is the caller's knowledge, passed as ``is_own_uri``: it must answer True for
URIs this proxy places in Record-Route (and in Route of its users' route sets), i.e. its own
host/port, not the domains it is responsible for.

Strict routers (RFC 2543 elements, RFC 3261 §12.2.1.1, §16.4, §16.6 step 6) put the next hop
in the Request-URI instead of the Route header.  We handle them in both directions: a request
arriving with our Record-Route URI as Request-URI is restored from the last Route value, and a
request whose next hop lacks ``lr`` is rewritten the strict way before it leaves.

Multi-homed and transport-switching proxies use double Record-Route (RFC 5658 §4.2): one
value per interface, each with ``lr`` and an explicit ``transport``, so each side of the
dialog reaches us on the interface it can use; responses then need no Record-Route rewriting.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from ..errors import UsageError
from ..ids import BRANCH_MAGIC
from ..message._scan import split_commas
from ..message.address import NameAddr, parse_name_addr
from ..message.builders import DEFAULT_MAX_FORWARDS
from ..message.fields import Via, parse_via
from ..message.headers import Headers, canonical_key
from ..message.model import Request, Response
from ..message.params import Params
from ..message.uri import URI, SipURI, parse_uri

__all__ = [
    "preprocess_routes",
    "prepare_forward",
    "record_route_values",
    "next_hop",
    "is_own_record_route",
    "process_response",
    "rewrite_record_route",
]


# -- small header edits the Headers API does not offer -----------------------------------------
# Like Headers.pop_first they rewrite only the field that changes.  They use the storage
# primitives of Headers (_keys/_values/_raws, _insert, _delete, _changed); public
# Headers.pop_last / append_value / replace_value would let them go.


def _last_index(headers: Headers, key: str) -> int:
    keys = headers._keys
    for i in range(len(keys) - 1, -1, -1):
        if keys[i] == key:
            return i
    return -1


def _pop_last(headers: Headers, name: str) -> str | None:
    """Remove and return the last value of list header *name*."""
    key = canonical_key(name)
    i = _last_index(headers, key)
    if i < 0:
        return None
    values = split_commas(headers._values[i])
    if len(values) <= 1:
        headers._delete(i)
    else:
        headers._values[i] = ", ".join(v.strip() for v in values[:-1])
        headers._raws[i] = None
    headers._changed(key)
    return values[-1].strip() if values else None


def _append_value(headers: Headers, name: str, value: str) -> None:
    """Add *value* as the last value of *name*, in a new field right after the last one."""
    key = canonical_key(name)
    i = _last_index(headers, key)
    if i < 0:
        headers.add(name, value)
        return
    headers._insert(i + 1, key, headers._names[i], value)
    headers._changed(key)


def _replace_field_value(headers: Headers, i: int, value: str) -> None:
    headers._values[i] = value
    headers._raws[i] = None
    headers._changed(headers._keys[i])


def _uri_text(value: str) -> str:
    """The URI inside a Route/Record-Route value, exactly as written."""
    lt = value.find("<")
    if lt >= 0:
        gt = value.find(">", lt)
        if gt > lt:
            return value[lt + 1 : gt]
    return str(parse_name_addr(value).uri)


# -- §16.4 ---------------------------------------------------------------------------------------


def preprocess_routes(request: Request, is_own_uri: Callable[[URI], bool]) -> None:
    """Apply RFC 3261 §16.4 to a received request, in place.

    1. Strict router upstream: the Request-URI is a URI we put in Record-Route, so the real
       Request-URI travelled as the last Route value; restore it and remove that value.
    2. ``maddr`` naming us (with the URI's port and transport): strip maddr, port and
       transport and route as if they had never been there.
    3. Top Route naming us: remove it.  The next value is removed too when it also names us,
       the second half of an RFC 5658 double Record-Route.

    Call it after :func:`~.validate.validate_request` (the loop hash covers the Route header as
    received).
    """
    headers = request.headers
    if is_own_uri(request.uri) and "Route" in headers:
        last = _pop_last(headers, "Route")
        if last:
            request.uri = _uri_text(last)

    uri = request.uri
    if isinstance(uri, SipURI) and uri.maddr is not None:
        maddr = uri.maddr.strip("[]")
        transport = uri.params.get("transport")
        probe_params = Params(() if transport is None else (("transport", transport),))
        probe = SipURI(uri.scheme, None, None, maddr, uri.port, probe_params)
        if is_own_uri(probe):
            params = uri.params.without("maddr").without("transport")
            request.uri = uri.replace(port=None, params=params)

    for _ in range(2):
        routes = request.routes
        if not routes or not is_own_uri(routes[0].uri):
            break
        headers.pop_first("Route")


def is_own_record_route(uri: URI, own: Iterable[URI]) -> bool:
    """True if *uri* names one of *own* (our Record-Route URIs): same host and port.

    Hosts compare case-insensitively and IP literals by value; an absent port equals the
    default port of the scheme and transport, so ``sip:p.example.com`` matches
    ``sip:p.example.com:5060``.  Other parameters (``lr``, ``transport``, cookies) and the user
    part are ignored: they vary between our own values (double Record-Route).
    """
    if not isinstance(uri, SipURI):
        return False
    host, port = _host_key(uri), _effective_port(uri)
    return any(
        isinstance(o, SipURI) and _host_key(o) == host and _effective_port(o) == port for o in own
    )


def _host_key(uri: SipURI) -> str:
    host = uri.host.lower().rstrip(".")
    if uri.is_ip_host:
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:  # RFC 5118 three-colon spelling: compare as written
            return host
    return host


def _effective_port(uri: SipURI) -> int:
    if uri.port is not None:
        return uri.port
    return 5061 if uri.scheme == "sips" or uri.transport == "tls" else 5060


# -- §16.6 ---------------------------------------------------------------------------------------


def _with_lr(addr: NameAddr, transport: str | None = None) -> NameAddr:
    uri = addr.uri
    if not isinstance(uri, SipURI):
        raise UsageError(f"Record-Route URI must be a SIP URI, not {uri}")
    params = uri.params
    if transport is not None:
        params = params.with_("transport", transport.lower())
    if "lr" not in params:
        params = params.with_("lr")
    return replace(addr, uri=uri.replace(params=params))


def _secure(addr: NameAddr) -> NameAddr:
    uri = addr.uri
    if isinstance(uri, SipURI) and uri.scheme == "sip":
        return replace(addr, uri=uri.replace(scheme="sips"))
    return addr


def record_route_values(
    record_route: NameAddr,
    *,
    inbound_record_route: NameAddr | None = None,
    inbound_transport: str | None = None,
    outbound_transport: str | None = None,
    double_rr: bool = True,
    secure: bool = False,
) -> list[NameAddr]:
    """The Record-Route value(s) to insert, topmost first.

    One value when the request leaves on the interface and transport it arrived on.  Two
    (RFC 5658 §4.2) when *double_rr* and the transport changes or *inbound_record_route*
    names another interface: the outbound value on top (the downstream side sees it first in
    its route set), the inbound one below, both with ``lr`` and an explicit ``transport``.
    *secure* makes them ``sips`` (§16.6 step 4: the Request-URI or next Route is sips).
    """
    inbound = inbound_record_route if inbound_record_route is not None else record_route
    changes_transport = (
        inbound_transport is not None
        and outbound_transport is not None
        and inbound_transport.lower() != outbound_transport.lower()
    )
    changes_interface = inbound_record_route is not None and str(inbound.uri) != str(record_route.uri)
    if double_rr and (changes_transport or changes_interface):
        values = [
            _with_lr(record_route, outbound_transport),
            _with_lr(inbound, inbound_transport),
        ]
    else:
        values = [_with_lr(record_route)]
    return [_secure(v) for v in values] if secure else values


def next_hop(request: Request) -> URI:
    """Where the request goes next (§16.6 step 7): the top Route URI, else the Request-URI."""
    routes = request.routes
    return routes[0].uri if routes else request.uri


def prepare_forward(
    request: Request,
    target: URI | str,
    *,
    via: Via | str,
    branch: str,
    record_route: NameAddr | None = None,
    inbound_record_route: NameAddr | None = None,
    inbound_transport: str | None = None,
    outbound_transport: str | None = None,
    double_rr: bool = True,
    push_routes: Sequence[NameAddr | str] = (),
    extra_headers: Iterable[tuple[str, str]] = (),
) -> Request:
    """The copy of *request* to send to *target* (RFC 3261 §16.6 steps 1-9).

    1. copy (the received request stays intact for the other branches);
    2. Request-URI := *target*;
    3. Max-Forwards decremented, or set to 70 when absent;
    4. Record-Route: :func:`record_route_values` when *record_route* is given;
    5. *extra_headers* appended;
    6. *push_routes* (a local policy's route, e.g. an outbound proxy) pushed on top of Route,
       then the strict-router rewrite: if the top Route lacks ``lr`` the Request-URI becomes
       the last Route value and that top Route becomes the Request-URI;
    7. the next hop is then :func:`next_hop` of the result;
    8. our Via on top: *via* (our sent-by) with *branch*.  *branch* must carry the magic
       cookie; the caller builds it with :func:`~.validate.compose_branch`, and for a CANCEL
       or non-2xx ACK passes the branch of the INVITE it belongs to (§16.6 step 8);
    9. Content-Length added if missing (a stream transport needs it).

    Every other header field keeps its original bytes and position.
    """
    if not branch.startswith(BRANCH_MAGIC):
        raise UsageError(f"branch {branch!r} lacks the RFC 3261 magic cookie")
    top_via = _via_with_branch(via, branch)

    out = request.copy()
    headers = out.headers
    out.uri = target

    max_forwards = out.max_forwards
    if max_forwards is None:
        headers.set("Max-Forwards", str(DEFAULT_MAX_FORWARDS))
    elif max_forwards <= 0:
        raise UsageError("cannot forward a request whose Max-Forwards is 0 (§16.3 answers 483)")
    else:
        out.max_forwards = max_forwards - 1

    for name, value in extra_headers:
        headers.add(name, value)

    for route in reversed(push_routes):
        headers.prepend("Route", str(route))
    routes = out.routes
    if routes and not (isinstance(routes[0].uri, SipURI) and routes[0].uri.lr):
        _append_value(headers, "Route", f"<{out.uri_text}>")
        first = headers.pop_first("Route")
        assert first is not None
        out.uri = _uri_text(first)

    # Step 4 needs the outcome of step 6 (sips next hop), so Record-Route goes in now; header
    # positions do not depend on the order of the two steps.
    if record_route is not None:
        hop = next_hop(out)
        secure = _is_sips(out.uri) or _is_sips(hop)
        texts = _record_route_texts(record_route, inbound_record_route, inbound_transport,
                                    outbound_transport, double_rr, secure)
        for rr in reversed(texts):
            headers.prepend("Record-Route", rr)

    headers.prepend("Via", top_via)
    if "Content-Length" not in headers:
        headers.add("Content-Length", str(len(out.body)))
    return out


@functools.lru_cache(maxsize=256)
def _record_route_texts(
    record_route: NameAddr,
    inbound_record_route: NameAddr | None,
    inbound_transport: str | None,
    outbound_transport: str | None,
    double_rr: bool,
    secure: bool,
) -> tuple[str, ...]:
    """:func:`record_route_values` rendered; a proxy asks the same question for every
    request it record-routes (its own addresses, a couple of transports)."""
    values = record_route_values(
        record_route,
        inbound_record_route=inbound_record_route,
        inbound_transport=inbound_transport,
        outbound_transport=outbound_transport,
        double_rr=double_rr,
        secure=secure,
    )
    return tuple(str(rr) for rr in values)


@functools.lru_cache(maxsize=64)
def _via_text(via: str) -> tuple[str, bool]:
    """A Via text as rendered after parsing, and whether it has a branch.  A proxy passes
    the same few sent-by texts for every request it forwards: parsed once each."""
    parsed = parse_via(via)
    return str(parsed), "branch" in parsed.params


def _via_with_branch(via: Via | str, branch: str) -> str:
    """Our Via value with *branch*: ``str(parse_via(via).with_param("branch", branch))``."""
    if isinstance(via, str):
        text, has_branch = _via_text(via)
        if not has_branch:  # with_param appends a missing parameter: the same text
            return f"{text};branch={branch}"
        via = parse_via(via)
    return str(via.with_param("branch", branch))


def _is_sips(uri: URI) -> bool:
    return isinstance(uri, SipURI) and uri.scheme == "sips"


# -- §16.7 ---------------------------------------------------------------------------------------


def process_response(response: Response) -> Response | None:
    """The copy of a downstream *response* to send upstream: our top Via removed (§16.7 step 3).

    Returns None when no Via is left: the response answered a request this element
    originated and must not be forwarded.  Everything else keeps its bytes, including the
    rest of a Via field that carried several values.
    """
    out = response.copy()
    out.headers.pop_first("Via")
    if "Via" not in out.headers:
        return None
    return out


def rewrite_record_route(
    response: Response,
    is_own_uri: Callable[[URI], bool],
    replacement: NameAddr,
) -> bool:
    """Replace our Record-Route value in *response* by *replacement* (§16.7 step 8).

    For a proxy that record-routed with a single value but must show upstream another URI
    (another interface or transport).  With double Record-Route nothing needs rewriting.
    Only the field holding our value is rewritten; returns True if a value was replaced.
    """
    headers = response.headers
    for i, key in enumerate(headers._keys):
        if key != "record-route":
            continue
        values = [v.strip() for v in split_commas(headers._values[i])]
        for j, value in enumerate(values):
            if is_own_uri(parse_uri(_uri_text(value))):
                values[j] = str(replacement)
                _replace_field_value(headers, i, ", ".join(values))
                return True
    return False
