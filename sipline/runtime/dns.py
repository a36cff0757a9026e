"""DNS for RFC 3263 server location: resolvers, a TTL cache and the asyncio driver.

The decisions of RFC 3263 live in :mod:`sipline.sip.locate`; this module only answers the
questions that plan asks.  Everything that answers is a :class:`Resolver`, so layers stack:

* :class:`DnsResolver` asks real DNS through ``dns.asyncresolver`` and, for A/AAAA only,
  falls back to the operating system (``loop.getaddrinfo``) when DNS has nothing.  Without
  that, names that only exist in ``/etc/hosts`` (``localhost``, container aliases) would be
  unreachable, which surprises every operator exactly once.
* :class:`CachingResolver` keeps answers for their TTL on an injected clock, remembers
  "no such records" for a short time (a domain without NAPTR is asked on every request
  otherwise), and is bounded in size.
* :class:`StaticResolver` answers from dictionaries: tests, and deployments that want fixed
  routes without touching DNS.

Contract shared by all resolvers: an empty list means "the name or the records do not
exist" (NXDOMAIN / NoAnswer) and may be cached; anything else that goes wrong (timeout,
SERVFAIL, no reachable server) raises :class:`ResolveError` and is never cached.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from sipline.sip.locate import (
    DEFAULT_TRANSPORTS,
    AddressRecord,
    Destination,
    NaptrRecord,
    Pick,
    Query,
    Record,
    ResolveError,
    SrvRecord,
    Target,
    plan,
)

__all__ = [
    "Resolver",
    "DnsResolver",
    "CachingResolver",
    "StaticResolver",
    "GetAddrInfo",
    "locate",
]

_R = TypeVar("_R", NaptrRecord, SrvRecord, AddressRecord)

GetAddrInfo = Callable[..., Awaitable[list[tuple[Any, ...]]]]
"""Signature of ``loop.getaddrinfo(host, port, family=..., type=...)``."""


class Resolver(Protocol):
    """Answers the four questions RFC 3263 asks; names carry no final dot.

    Return ``[]`` when the records do not exist; raise :class:`ResolveError` when the
    question could not be answered at all.
    """

    async def naptr(self, name: str) -> list[NaptrRecord]: ...

    async def srv(self, name: str) -> list[SrvRecord]: ...

    async def a(self, name: str) -> list[AddressRecord]: ...

    async def aaaa(self, name: str) -> list[AddressRecord]: ...


class DnsResolver:
    """A :class:`Resolver` backed by dnspython's asyncio stub resolver.

    ``nameservers=None`` reads the system configuration (``/etc/resolv.conf``); when that
    is missing the resolver still works for names the system fallback knows.  ``port``,
    ``timeout`` (per server) and ``lifetime`` (per question) go straight to dnspython.
    ``system_fallback`` enables ``getaddrinfo`` for A/AAAA when DNS fails or has nothing;
    those answers carry ``fallback_ttl`` since the system resolver does not report one.
    """

    def __init__(
        self,
        *,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
        timeout: float = 2.0,
        lifetime: float = 5.0,
        system_fallback: bool = True,
        fallback_ttl: int = 30,
        getaddrinfo: GetAddrInfo | None = None,
    ) -> None:
        if nameservers is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=True)
            except dns.resolver.NoResolverConfiguration:
                resolver = dns.asyncresolver.Resolver(configure=False)
        else:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = list(nameservers)
        resolver.port = port
        resolver.timeout = timeout
        resolver.lifetime = lifetime
        self._resolver = resolver
        self._system_fallback = system_fallback
        self._fallback_ttl = fallback_ttl
        self._getaddrinfo = getaddrinfo

    async def naptr(self, name: str) -> list[NaptrRecord]:
        answer = await self._query(name, dns.rdatatype.NAPTR)
        return [
            NaptrRecord(
                order=rd.order,
                preference=rd.preference,
                flags=rd.flags.decode("ascii", "replace"),
                service=rd.service.decode("ascii", "replace"),
                regexp=rd.regexp.decode("ascii", "replace"),
                replacement=_text(rd.replacement),
                ttl=ttl,
            )
            for rd, ttl in answer
        ]

    async def srv(self, name: str) -> list[SrvRecord]:
        answer = await self._query(name, dns.rdatatype.SRV)
        return [
            SrvRecord(rd.priority, rd.weight, rd.port, _text(rd.target), ttl) for rd, ttl in answer
        ]

    async def a(self, name: str) -> list[AddressRecord]:
        return await self._addresses(name, dns.rdatatype.A, socket.AF_INET)

    async def aaaa(self, name: str) -> list[AddressRecord]:
        return await self._addresses(name, dns.rdatatype.AAAA, socket.AF_INET6)

    async def _addresses(
        self, name: str, rdtype: dns.rdatatype.RdataType, family: socket.AddressFamily
    ) -> list[AddressRecord]:
        failure: ResolveError | None = None
        try:
            answer = await self._query(name, rdtype)
        except ResolveError as exc:
            failure, answer = exc, []
        if answer:
            return [AddressRecord(rd.address, ttl) for rd, ttl in answer]
        if self._system_fallback:
            found = await self._system(name, family)
            if found:
                return found
        if failure is not None:
            raise failure
        return []

    async def _query(self, name: str, rdtype: dns.rdatatype.RdataType) -> list[tuple[Any, int]]:
        """Rdatas with their TTL; ``[]`` for NXDOMAIN/NoAnswer, ResolveError otherwise."""
        kind = dns.rdatatype.to_text(rdtype)
        try:
            # Absolute name: a SIP domain is never subject to the resolv.conf search list.
            qname = dns.name.from_text(name.rstrip(".") + ".")
            answer = await self._resolver.resolve(qname, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise ResolveError(f"{kind} {name}: {type(exc).__name__}: {exc}") from exc
        rrset = answer.rrset
        if rrset is None:  # pragma: no cover - raise_on_no_answer makes this impossible
            return []
        return [(rd, rrset.ttl) for rd in rrset]

    async def _system(self, name: str, family: socket.AddressFamily) -> list[AddressRecord]:
        """Addresses from the OS resolver (hosts file, mDNS ...), or ``[]``."""
        getaddrinfo = self._getaddrinfo or asyncio.get_running_loop().getaddrinfo
        try:
            infos = await getaddrinfo(name, None, family=family, type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError):
            return []
        addresses = dict.fromkeys(str(info[4][0]) for info in infos if info[0] == family)
        return [AddressRecord(address, self._fallback_ttl) for address in addresses]


class CachingResolver:
    """Caches another resolver's answers by TTL, on an injected clock.

    ``clock()`` returns seconds on any monotonic origin (``loop.time`` in production).
    Positive answers live for the smallest TTL among their records, capped at ``max_ttl``;
    empty answers live for ``negative_ttl``.  Errors are not cached, so a transient outage
    is retried on the next request.  At most ``max_entries`` answers are kept; the least
    recently used goes first.
    """

    def __init__(
        self,
        inner: Resolver,
        *,
        clock: Callable[[], float],
        max_entries: int = 4096,
        negative_ttl: float = 30.0,
        max_ttl: float = 3600.0,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._inner = inner
        self._clock = clock
        self._max_entries = max_entries
        self._negative_ttl = negative_ttl
        self._max_ttl = max_ttl
        self._entries: OrderedDict[tuple[str, str], tuple[float, tuple[Record, ...]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget everything, e.g. after a configuration reload."""
        self._entries.clear()

    async def naptr(self, name: str) -> list[NaptrRecord]:
        return await self._cached("NAPTR", name, self._inner.naptr, NaptrRecord)

    async def srv(self, name: str) -> list[SrvRecord]:
        return await self._cached("SRV", name, self._inner.srv, SrvRecord)

    async def a(self, name: str) -> list[AddressRecord]:
        return await self._cached("A", name, self._inner.a, AddressRecord)

    async def aaaa(self, name: str) -> list[AddressRecord]:
        return await self._cached("AAAA", name, self._inner.aaaa, AddressRecord)

    async def _cached(
        self,
        kind: str,
        name: str,
        fetch: Callable[[str], Awaitable[list[_R]]],
        record_type: type[_R],
    ) -> list[_R]:
        key = (kind, _key(name))
        entry = self._entries.get(key)
        if entry is not None:
            expires, records = entry
            if self._clock() < expires:
                self._entries.move_to_end(key)
                return [r for r in records if isinstance(r, record_type)]
            del self._entries[key]
        fresh = await fetch(name)
        ttl = min((r.ttl for r in fresh), default=0) if fresh else self._negative_ttl
        ttl = min(ttl, self._max_ttl)
        if ttl > 0:
            self._entries[key] = (self._clock() + ttl, tuple(fresh))
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return list(fresh)


class StaticResolver:
    """A :class:`Resolver` answering from dictionaries instead of DNS.

    ``hosts`` maps a name to its addresses, IPv4 and IPv6 mixed; ``naptr`` and ``srv`` map
    owner names to records.  Names listed in ``failing`` raise :class:`ResolveError` for
    every question, standing in for a timeout.  Every question asked is appended to
    ``queries``, which lets tests see what a cache spared.
    """

    def __init__(
        self,
        *,
        naptr: Mapping[str, Sequence[NaptrRecord]] | None = None,
        srv: Mapping[str, Sequence[SrvRecord]] | None = None,
        hosts: Mapping[str, Sequence[str]] | None = None,
        failing: Iterable[str] = (),
        ttl: int = 300,
    ) -> None:
        self._naptr = {_key(k): list(v) for k, v in (naptr or {}).items()}
        self._srv = {_key(k): list(v) for k, v in (srv or {}).items()}
        self._v4: dict[str, list[AddressRecord]] = {}
        self._v6: dict[str, list[AddressRecord]] = {}
        for name, addresses in (hosts or {}).items():
            for address in addresses:
                table = self._v6 if ":" in address else self._v4
                table.setdefault(_key(name), []).append(AddressRecord(address, ttl))
        self._failing = {_key(n) for n in failing}
        self.queries: list[Query] = []

    async def naptr(self, name: str) -> list[NaptrRecord]:
        return self._answer(Query("NAPTR", _key(name)), self._naptr)

    async def srv(self, name: str) -> list[SrvRecord]:
        return self._answer(Query("SRV", _key(name)), self._srv)

    async def a(self, name: str) -> list[AddressRecord]:
        return self._answer(Query("A", _key(name)), self._v4)

    async def aaaa(self, name: str) -> list[AddressRecord]:
        return self._answer(Query("AAAA", _key(name)), self._v6)

    def _answer(self, query: Query, table: Mapping[str, list[_R]]) -> list[_R]:
        self.queries.append(query)
        if query.name in self._failing:
            raise ResolveError(f"{query.kind} {query.name}: static failure")
        return list(table.get(query.name, ()))


async def locate(
    dest: Destination,
    resolver: Resolver,
    *,
    transports: Sequence[str] = DEFAULT_TRANSPORTS,
    pick: Pick | None = None,
    prefer_ipv6: bool = False,
) -> list[Target]:
    """Servers to try for ``dest``, best first (RFC 3263 §4), never empty.

    Each batch of questions from the plan is asked concurrently.  A question that fails
    counts as "no records" so that the plan can move on to its fallbacks (a broken NAPTR
    server must not hide working SRV records); only if nothing usable is found does this
    raise :class:`ResolveError`, listing the failures.  ``pick`` defaults to
    :func:`random.randint`-based selection.
    """
    steps = plan(dest, pick=pick or _random_pick, transports=transports, prefer_ipv6=prefer_ipv6)
    failures: list[str] = []
    try:
        batch = next(steps)
        while True:
            answers = await asyncio.gather(*(_ask(resolver, q, failures) for q in batch))
            batch = steps.send(answers)
    except StopIteration as done:
        targets: list[Target] = done.value
    if not targets:
        detail = f" ({'; '.join(failures)})" if failures else ""
        raise ResolveError(f"no server found for {dest.target!r}{detail}")
    return targets


async def _ask(resolver: Resolver, query: Query, failures: list[str]) -> Sequence[Record]:
    ask: dict[str, Callable[[str], Awaitable[Sequence[Record]]]] = {
        "NAPTR": resolver.naptr,
        "SRV": resolver.srv,
        "A": resolver.a,
        "AAAA": resolver.aaaa,
    }
    try:
        return await ask[query.kind](query.name)
    except ResolveError as exc:
        failures.append(exc.reason)
        return []


def _random_pick(total: int) -> int:
    return random.randint(0, total)


def _key(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _text(name: dns.name.Name) -> str:
    """Name without the final dot; the root name (SRV "no service") becomes "."."""
    return "." if name == dns.name.root else name.to_text(omit_final_dot=True)
