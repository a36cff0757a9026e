"""Locating SIP servers (RFC 3263 §4) as a pure, resumable plan.

Turning a SIP URI into "which transport, address and port do I try, and in which order" is
mostly decisions: is the target numeric, is there a port, a transport parameter, which NAPTR
services do we support, how do SRV priorities and weights order the servers.  Only the DNS
answers come from outside.  So the decisions live here, free of I/O, as a generator that
*yields* the batch of DNS queries it needs next and is *sent* the answers back:

    steps = plan(dest, pick=...)
    queries = next(steps)            # (Query('NAPTR', 'example.com'),)
    queries = steps.send(answers)    # one sequence of records per query, same order
    ...                              # StopIteration.value is the list of Targets

The asyncio driver (``sipline.runtime.dns.locate``) answers each batch concurrently; tests and
static configurations use :func:`drive` with a plain function.  Randomness for RFC 2782
weighted selection is injected as ``pick(total) -> int in [0, total]`` so that the order is
reproducible under test.

Strategy (RFC 3263 §4.1/§4.2, TARGET is maddr if present, else the host):

1. numeric TARGET                   -> that address; port from the URI or the default.
2. explicit port                    -> A/AAAA of TARGET with that port, no NAPTR/SRV.
3. transport parameter, no port     -> SRV for that transport, else A/AAAA + default port.
4. neither                          -> NAPTR, filtered to supported services, then SRV of each
                                       replacement; else SRV for every supported transport in
                                       our preference order; else A/AAAA with UDP (sip) or
                                       TLS (sips) on the default port.

A ``sips`` URI only ever yields TLS or secure WebSocket targets (RFC 3261 §26.2.2).
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Final, Literal, TypeVar

from sipline.sip.errors import SiplineError, UsageError

__all__ = [
    "ResolveError",
    "TRANSPORTS",
    "DEFAULT_TRANSPORTS",
    "DEFAULT_PORTS",
    "NaptrRecord",
    "SrvRecord",
    "AddressRecord",
    "Record",
    "Query",
    "QueryKind",
    "Destination",
    "Target",
    "Plan",
    "Pick",
    "plan",
    "drive",
    "order_naptr",
    "order_srv",
    "srv_name",
]


class ResolveError(SiplineError):
    """A SIP destination could not be turned into any server to contact.

    Raised for destinations that cannot be resolved by construction (a ``sips`` URI with
    ``transport=udp``, a transport we do not speak) and by the runtime when DNS produced no
    usable target.  ``status`` is 503 because RFC 3261 §8.1.3.1 tells a client to treat a
    failure to reach the next hop as a 503 (Service Unavailable) response.
    """

    status: int = 503

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __repr__(self) -> str:
        return f"ResolveError({self.reason!r})"


# Transport names as used in Target.transport and in our own configuration.  "tls" is TLS
# over TCP; "ws"/"wss" are RFC 7118 WebSocket.  SCTP is deliberately absent: we never
# produce a target we cannot send on.
TRANSPORTS: Final[tuple[str, ...]] = ("udp", "tcp", "tls", "ws", "wss")

# What a SIP-to-SIP client tries when DNS leaves the choice to it, best first.  RFC 3263
# §4.1 lets the client order SRV queries by its own preference; secure and reliable first.
DEFAULT_TRANSPORTS: Final[tuple[str, ...]] = ("tls", "tcp", "udp")

# RFC 3261 §19.1.2: 5060 for sip over UDP/TCP, 5061 for TLS.  WebSocket has no SIP-specific
# port; RFC 7118 runs over ordinary HTTP(S) ports (RFC 6455 §3).
DEFAULT_PORTS: Final[Mapping[str, int]] = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443}

_SECURE: Final = frozenset({"tls", "wss"})

# NAPTR service field (RFC 3263 §4.1, RFC 7118 §9) -> our transport name.
_NAPTR_SERVICES: Final[Mapping[str, str]] = {
    "SIP+D2U": "udp",
    "SIP+D2T": "tcp",
    "SIPS+D2T": "tls",
    "SIP+D2W": "ws",
    "SIPS+D2W": "wss",
}

# SRV owner-name prefix per transport (RFC 3263 §4.2, RFC 7118 §9).
_SRV_PREFIXES: Final[Mapping[str, str]] = {
    "udp": "_sip._udp",
    "tcp": "_sip._tcp",
    "tls": "_sips._tcp",
    "ws": "_sip._ws",
    "wss": "_sips._ws",
}

# URI transport parameter -> our transport name, per scheme.  Under sips the parameter names
# the layer *below* TLS (RFC 3261 §26.2.2: sips with transport=tcp means TLS over TCP), and
# UDP is impossible.  "tls" is the deprecated RFC 2543 spelling, still seen on the wire.
_PARAM_TRANSPORTS: Final[Mapping[str, Mapping[str, str]]] = {
    "sip": {"udp": "udp", "tcp": "tcp", "tls": "tls", "ws": "ws", "wss": "wss"},
    "sips": {"tcp": "tls", "tls": "tls", "ws": "wss", "wss": "wss"},
}

# When the URI leaves the transport open and DNS gives no hint (RFC 3263 §4.1): UDP for sip,
# TLS for sips; the rest is our fallback for clients configured without those.
_DEFAULT_CHOICE: Final[Mapping[str, tuple[str, ...]]] = {
    "sip": ("udp", "tcp", "tls", "ws", "wss"),
    "sips": ("tls", "wss"),
}

# Bounds against hostile or broken zones: at most this many SRV records per owner name and
# this many distinct host names to look up addresses for.
_MAX_SRV_PER_NAME: Final = 16
_MAX_HOSTS: Final = 32

QueryKind = Literal["NAPTR", "SRV", "A", "AAAA"]


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    """One NAPTR resource record (RFC 3403 §4.1); ``replacement`` has no trailing dot."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str
    ttl: int = 0


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """One SRV resource record (RFC 2782); ``target`` "." means "no service here"."""

    priority: int
    weight: int
    port: int
    target: str
    ttl: int = 0


@dataclass(frozen=True, slots=True)
class AddressRecord:
    """One A or AAAA record, or an address the system resolver returned."""

    address: str
    ttl: int = 0


Record = NaptrRecord | SrvRecord | AddressRecord


@dataclass(frozen=True, slots=True)
class Query:
    """A DNS question the plan needs answered; ``name`` is lower case, without final dot."""

    kind: QueryKind
    name: str


@dataclass(frozen=True, slots=True)
class Destination:
    """The parts of a SIP/SIPS URI that RFC 3263 looks at.

    Kept independent of the URI model so any caller (Request-URI, Route header, outbound
    proxy setting) can build one.  ``host`` may be an IPv6 reference in brackets.
    ``transport`` is the raw URI parameter value; unknown values are kept and rejected by
    :func:`plan` with a :class:`ResolveError`, because they come from the wire.
    """

    scheme: str
    host: str
    port: int | None = None
    transport: str | None = None
    maddr: str | None = None

    def __post_init__(self) -> None:
        if self.scheme.lower() not in ("sip", "sips"):
            raise UsageError(f"cannot locate servers for scheme {self.scheme!r}")
        if not _normalize(self.host):
            raise UsageError("destination host is empty")
        if self.port is not None and not 0 < self.port < 65536:
            raise UsageError(f"destination port {self.port} out of range")

    @property
    def secure(self) -> bool:
        """True for sips: every hop must then be TLS (RFC 3261 §26.2.2)."""
        return self.scheme.lower() == "sips"

    @property
    def target(self) -> str:
        """RFC 3263 §4 TARGET: maddr if present, else host; normalized for DNS."""
        return _normalize(self.maddr or self.host)


@dataclass(frozen=True, slots=True)
class Target:
    """One next hop to try, in the order :func:`plan` returns them.

    ``host`` is the name that resolved to ``address`` (an SRV target, or TARGET itself);
    ``domain`` is the URI's TARGET, the identity a TLS certificate must match (RFC 5922 §4).
    """

    transport: str
    host: str
    address: str
    port: int
    domain: str


Pick = Callable[[int], int]
"""``pick(total)`` returns a uniformly random integer in ``[0, total]`` (RFC 2782)."""

Plan = Generator[tuple[Query, ...], Sequence[Sequence[Record]], list[Target]]


def srv_name(transport: str, domain: str) -> str:
    """SRV owner name for ``transport`` at ``domain`` ("_sips._tcp.example.com" for tls)."""
    return f"{_SRV_PREFIXES[transport]}.{_normalize(domain)}"


def order_naptr(
    records: Iterable[NaptrRecord], transports: Sequence[str]
) -> list[tuple[str, str]]:
    """``(transport, srv owner name)`` pairs to try, from NAPTR records (RFC 3263 §4.1).

    Keeps only terminal "s" records whose service maps to one of ``transports`` and sorts by
    order, then preference.  A caller resolving a sips URI passes only secure transports,
    which leaves exactly the ``SIPS+`` services.
    """
    usable = [
        r
        for r in records
        if r.flags.lower() == "s"
        and _NAPTR_SERVICES.get(r.service.upper()) in transports
        and _normalize(r.replacement)
    ]
    usable.sort(key=lambda r: (r.order, r.preference))
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str]] = []
    for r in usable:
        pair = (_NAPTR_SERVICES[r.service.upper()], _normalize(r.replacement))
        if pair not in seen:
            seen.add(pair)
            out.append(pair)
    return out


def order_srv(records: Iterable[SrvRecord], pick: Pick) -> list[SrvRecord]:
    """Order SRV records: lowest priority first, weighted random within a priority (RFC 2782).

    Records whose target is "." are dropped: they say the service is not offered.  Within a
    priority, zero-weight records go first so they keep a small chance of being chosen, then
    repeatedly: draw ``n = pick(sum of weights)`` and take the first record whose running
    weight sum reaches ``n``.
    """
    live = [r for r in records if _normalize(r.target)]
    out: list[SrvRecord] = []
    for priority in sorted({r.priority for r in live}):
        group = [r for r in live if r.priority == priority]
        remaining = [r for r in group if r.weight == 0] + [r for r in group if r.weight != 0]
        while remaining:
            total = sum(r.weight for r in remaining)
            n = pick(total)
            if not 0 <= n <= total:
                raise UsageError(f"pick({total}) returned {n}, outside [0, {total}]")
            # First record whose running weight sum reaches n; exists because n <= total.
            index = bisect_left(list(accumulate(r.weight for r in remaining)), n)
            out.append(remaining.pop(index))
    return out


def plan(
    dest: Destination,
    *,
    pick: Pick,
    transports: Sequence[str] = DEFAULT_TRANSPORTS,
    prefer_ipv6: bool = False,
) -> Plan:
    """The RFC 3263 §4 procedure for ``dest`` as a generator of query batches.

    ``transports`` lists what the caller can send on, best first; it both filters NAPTR
    services and orders the SRV fallback.  Raises :class:`ResolveError` (on the first
    ``next()``) when the destination can never be reached with those transports.
    """
    unknown = [t for t in transports if t not in TRANSPORTS]
    if unknown:
        raise UsageError(f"unknown transports {unknown}")
    scheme = dest.scheme.lower()
    allowed = [t for t in transports if t in _SECURE] if dest.secure else list(transports)
    if not allowed:
        kind = "secure transport" if dest.secure else "transport"
        raise ResolveError(f"no {kind} configured for {dest.target!r}")
    explicit = _explicit_transport(dest, scheme, allowed)
    domain = dest.target
    ctx = _Context(domain, pick, prefer_ipv6)

    if _is_ip(domain):
        # §4.1/§4.2: a numeric TARGET needs no DNS at all.
        transport = explicit or _default_transport(scheme, allowed)
        port = dest.port or DEFAULT_PORTS[transport]
        address = str(ipaddress.ip_address(domain))
        return [Target(transport, address, address, port, address)]

    if dest.port is not None:
        # §4.2: an explicit port means plain A/AAAA; SRV would override the port.
        transport = explicit or _default_transport(scheme, allowed)
        return (yield from ctx.by_address([(transport, domain, dest.port)]))

    if explicit is not None:
        # §4.2: the transport is fixed, only the SRV for it remains to be tried.
        found = yield from ctx.by_srv([(explicit, srv_name(explicit, domain))])
        if found:
            return found
        return (yield from ctx.by_address([(explicit, domain, DEFAULT_PORTS[explicit])]))

    (naptrs,) = yield (Query("NAPTR", domain),)
    choices = order_naptr(_only(naptrs, NaptrRecord), allowed)
    if choices:
        found = yield from ctx.by_srv(choices)
        if found:
            return found
    # §4.1: no (usable) NAPTR: SRV for every transport we support, in our preference order.
    found = yield from ctx.by_srv([(t, srv_name(t, domain)) for t in allowed])
    if found:
        return found
    transport = _default_transport(scheme, allowed)
    return (yield from ctx.by_address([(transport, domain, DEFAULT_PORTS[transport])]))


def drive(steps: Plan, answer: Callable[[Query], Sequence[Record]]) -> list[Target]:
    """Run a plan to completion with a synchronous ``answer(query)`` function.

    For tests and static configurations; the asyncio runtime has its own driver that answers
    each batch concurrently.
    """
    try:
        batch = next(steps)
        while True:
            batch = steps.send([answer(q) for q in batch])
    except StopIteration as done:
        result: list[Target] = done.value
        return result


# -- internals -----------------------------------------------------------------------------


class _Context:
    """What the sub-steps of one plan share: the domain, randomness and family order."""

    __slots__ = ("domain", "pick", "prefer_ipv6")

    def __init__(self, domain: str, pick: Pick, prefer_ipv6: bool) -> None:
        self.domain = domain
        self.pick = pick
        self.prefer_ipv6 = prefer_ipv6

    def by_srv(self, choices: Sequence[tuple[str, str]]) -> Plan:
        """SRV-query every ``(transport, owner)`` at once, then resolve the SRV targets."""
        answers = yield tuple(Query("SRV", name) for _, name in choices)
        hops: list[tuple[str, str, int]] = []
        for (transport, _), records in zip(choices, answers):
            # Keep the best priorities when a zone lists absurdly many servers.
            srvs = sorted(_only(records, SrvRecord), key=lambda r: r.priority)[:_MAX_SRV_PER_NAME]
            hops.extend(
                (transport, _normalize(r.target), r.port) for r in order_srv(srvs, self.pick)
            )
        if not hops:
            return []
        return (yield from self.by_address(hops))

    def by_address(self, hops: Sequence[tuple[str, str, int]]) -> Plan:
        """A/AAAA-query each distinct host of ``hops`` and expand hops into Targets."""
        hosts = list(dict.fromkeys(h for _, h, _ in hops if not _is_ip(h)))[:_MAX_HOSTS]
        kinds: tuple[QueryKind, QueryKind] = ("AAAA", "A") if self.prefer_ipv6 else ("A", "AAAA")
        queries = tuple(Query(kind, host) for host in hosts for kind in kinds)
        addresses: dict[str, list[str]] = {}
        if queries:
            answers = yield queries
            for query, records in zip(queries, answers):
                family = 4 if query.kind == "A" else 6
                addresses.setdefault(query.name, []).extend(
                    a for a in (_address(r, family) for r in _only(records, AddressRecord)) if a
                )
        seen: set[tuple[str, str, int]] = set()
        out: list[Target] = []
        for transport, host, port in hops:
            for address in [host] if _is_ip(host) else addresses.get(host, []):
                key = (transport, address, port)
                if key not in seen:
                    seen.add(key)
                    out.append(Target(transport, host, address, port, self.domain))
        return out


def _explicit_transport(dest: Destination, scheme: str, allowed: Sequence[str]) -> str | None:
    """Map the URI transport parameter to a transport we can use, or fail."""
    if dest.transport is None:
        return None
    param = dest.transport.lower()
    transport = _PARAM_TRANSPORTS[scheme].get(param)
    if transport is None:
        raise ResolveError(f"{scheme} URI with transport={param} cannot be reached")
    if transport not in allowed:
        raise ResolveError(f"transport {transport} for {dest.target!r} is not enabled")
    return transport


def _default_transport(scheme: str, allowed: Sequence[str]) -> str:
    # Never empty: ``allowed`` is non-empty and, under sips, only holds secure transports.
    return next(t for t in _DEFAULT_CHOICE[scheme] if t in allowed)


_R = TypeVar("_R", NaptrRecord, SrvRecord, AddressRecord)


def _only(records: Sequence[Record], kind: type[_R]) -> list[_R]:
    """Records of one type: the plan never trusts a resolver to answer the right question."""
    return [r for r in records if isinstance(r, kind)]


def _address(record: AddressRecord, family: int) -> str | None:
    """The canonical text of ``record`` if it is a valid address of ``family``."""
    try:
        ip = ipaddress.ip_address(record.address)
    except ValueError:
        return None
    return str(ip) if ip.version == family else None


def _normalize(name: str) -> str:
    """DNS-comparable form: lower case, no brackets, no final dot ("." becomes "")."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name.rstrip(".")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
