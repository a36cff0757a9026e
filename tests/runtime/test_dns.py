"""Resolvers, the TTL cache and the asyncio locate driver.

The last group runs the real dnspython path against a tiny authoritative server on
127.0.0.1 (ephemeral UDP port) built from dnspython's message API.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import dns.asyncresolver
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

from sipline.runtime.dns import CachingResolver, DnsResolver, StaticResolver, locate
from sipline.sip.locate import (
    AddressRecord,
    Destination,
    NaptrRecord,
    Query,
    ResolveError,
    SrvRecord,
    Target,
)

# -- StaticResolver -------------------------------------------------------------------------

STATIC = StaticResolver(
    naptr={"Example.com.": [NaptrRecord(10, 10, "s", "SIP+D2T", "", "_sip._tcp.example.com")]},
    srv={"_sip._tcp.example.com": [SrvRecord(10, 0, 5070, "pbx.example.com")]},
    hosts={"pbx.example.com": ["192.0.2.20", "2001:db8::20"], "v6only.example.com": ["2001:db8::6"]},
)


@pytest.mark.asyncio
async def test_static_resolver_answers_from_tables() -> None:
    resolver = StaticResolver(
        hosts={"PBX.example.com.": ["192.0.2.20", "2001:db8::20"]}, failing=["down.test"], ttl=7
    )
    assert await resolver.a("pbx.example.com") == [AddressRecord("192.0.2.20", 7)]
    assert await resolver.aaaa("pbx.example.com.") == [AddressRecord("2001:db8::20", 7)]
    assert await resolver.naptr("pbx.example.com") == []
    assert await resolver.srv("pbx.example.com") == []
    with pytest.raises(ResolveError, match="static failure"):
        await resolver.a("Down.Test.")
    assert resolver.queries[0] == Query("A", "pbx.example.com")
    assert len(resolver.queries) == 5


@pytest.mark.asyncio
async def test_locate_with_static_resolver_follows_naptr() -> None:
    targets = await locate(Destination("sip", "example.com"), STATIC, pick=lambda total: 0)
    domain = "example.com"
    assert targets == [
        Target("tcp", "pbx.example.com", "192.0.2.20", 5070, domain),
        Target("tcp", "pbx.example.com", "2001:db8::20", 5070, domain),
    ]


@pytest.mark.asyncio
async def test_locate_default_randomness_and_ipv6_preference() -> None:
    targets = await locate(Destination("sip", "example.com"), STATIC, prefer_ipv6=True)
    assert [t.address for t in targets] == ["2001:db8::20", "192.0.2.20"]


@pytest.mark.asyncio
async def test_locate_numeric_needs_no_resolver() -> None:
    resolver = StaticResolver()
    targets = await locate(Destination("sips", "192.0.2.1"), resolver)
    assert targets == [Target("tls", "192.0.2.1", "192.0.2.1", 5061, "192.0.2.1")]
    assert resolver.queries == []


@pytest.mark.asyncio
async def test_failed_naptr_does_not_hide_srv() -> None:
    resolver = StaticResolver(
        srv={"_sip._udp.example.org": [SrvRecord(1, 0, 5060, "pbx.example.com")]},
        hosts={"pbx.example.com": ["192.0.2.20"]},
        failing=["example.org"],  # NAPTR (and A/AAAA) for the domain itself time out
    )
    targets = await locate(Destination("sip", "example.org"), resolver)
    assert targets == [Target("udp", "pbx.example.com", "192.0.2.20", 5060, "example.org")]


@pytest.mark.asyncio
async def test_locate_raises_with_the_failures_when_nothing_found() -> None:
    with pytest.raises(ResolveError, match=r"no server found for 'down\.test' \(NAPTR down\.test") as info:
        await locate(Destination("sip", "down.test"), StaticResolver(failing=["down.test"]))
    assert info.value.status == 503
    with pytest.raises(ResolveError, match=r"no server found for 'empty\.test'$"):
        await locate(Destination("sip", "empty.test"), StaticResolver())


@pytest.mark.asyncio
async def test_locate_rejects_impossible_destinations() -> None:
    with pytest.raises(ResolveError, match="transport=udp"):
        await locate(Destination("sips", "example.com", transport="udp"), StaticResolver())


# -- CachingResolver ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.asyncio
async def test_cache_hits_until_smallest_ttl_expires() -> None:
    inner = StaticResolver(
        srv={"_sip._udp.x": [SrvRecord(1, 0, 5060, "a.x", ttl=60), SrvRecord(2, 0, 5060, "b.x", ttl=30)]}
    )
    clock = FakeClock()
    cache = CachingResolver(inner, clock=clock)
    first = await cache.srv("_sip._udp.x")
    clock.now += 29.9
    assert await cache.srv("_SIP._udp.X.") == first  # same key after normalization
    assert len(inner.queries) == 1
    clock.now += 0.1  # 30 s: the smallest TTL is over
    assert await cache.srv("_sip._udp.x") == first
    assert len(inner.queries) == 2
    assert len(cache) == 1


@pytest.mark.asyncio
async def test_cache_keeps_kinds_apart_and_caps_ttl() -> None:
    inner = StaticResolver(
        naptr={"x": [NaptrRecord(1, 1, "s", "SIP+D2U", "", "_sip._udp.x", ttl=86400)]},
        hosts={"x": ["192.0.2.1", "2001:db8::1"]},
        ttl=86400,
    )
    clock = FakeClock()
    cache = CachingResolver(inner, clock=clock, max_ttl=100)
    for _ in range(2):
        assert len(await cache.naptr("x")) == 1
        assert await cache.a("x") == [AddressRecord("192.0.2.1", 86400)]
        assert await cache.aaaa("x") == [AddressRecord("2001:db8::1", 86400)]
    assert [q.kind for q in inner.queries] == ["NAPTR", "A", "AAAA"]
    clock.now += 100
    await cache.a("x")
    assert len(inner.queries) == 4


@pytest.mark.asyncio
async def test_negative_answers_cached_briefly() -> None:
    inner = StaticResolver()
    clock = FakeClock()
    cache = CachingResolver(inner, clock=clock, negative_ttl=5)
    assert await cache.naptr("nothing.test") == []
    clock.now += 4.9
    assert await cache.naptr("nothing.test") == []
    assert len(inner.queries) == 1
    clock.now += 0.1
    await cache.naptr("nothing.test")
    assert len(inner.queries) == 2


@pytest.mark.asyncio
async def test_errors_and_zero_ttls_are_not_cached() -> None:
    inner = StaticResolver(failing=["down.test"], hosts={"volatile.test": ["192.0.2.9"]}, ttl=0)
    cache = CachingResolver(inner, clock=FakeClock(), negative_ttl=0)
    for _ in range(2):
        with pytest.raises(ResolveError):
            await cache.srv("down.test")
        assert await cache.a("volatile.test") == [AddressRecord("192.0.2.9", 0)]
        assert await cache.aaaa("volatile.test") == []
    assert len(inner.queries) == 6
    assert len(cache) == 0


@pytest.mark.asyncio
async def test_cache_is_bounded_least_recently_used_first() -> None:
    inner = StaticResolver(hosts={n: ["192.0.2.1"] for n in ("a", "b", "c")})
    cache = CachingResolver(inner, clock=FakeClock(), max_entries=2)
    await cache.a("a")
    await cache.a("b")
    await cache.a("a")  # a is now the most recently used
    await cache.a("c")  # evicts b
    assert len(cache) == 2
    inner.queries.clear()
    await cache.a("a")
    await cache.a("b")
    assert inner.queries == [Query("A", "b")]
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError):
        CachingResolver(inner, clock=FakeClock(), max_entries=0)


@pytest.mark.asyncio
async def test_locate_through_cache_asks_dns_once() -> None:
    inner = StaticResolver(
        srv={"_sip._tcp.example.com": [SrvRecord(10, 0, 5070, "pbx.example.com", ttl=300)]},
        hosts={"pbx.example.com": ["192.0.2.20"]},
    )
    cache = CachingResolver(inner, clock=FakeClock())
    dest = Destination("sip", "example.com", transport="tcp")
    first = await locate(dest, cache)
    asked = len(inner.queries)
    assert await locate(dest, cache) == first
    assert len(inner.queries) == asked


# -- DnsResolver against a real server on 127.0.0.1 ------------------------------------------

Zone = Mapping[tuple[str, str], tuple[int, Sequence[str]]]

ZONE: Zone = {
    ("example.test.", "NAPTR"): (
        300,
        [
            '10 50 "s" "SIPS+D2T" "" _sips._tcp.example.test.',
            '20 50 "s" "SIP+D2U" "" _sip._udp.example.test.',
        ],
    ),
    ("_sips._tcp.example.test.", "SRV"): (120, ["0 10 5061 pbx1.example.test.", "1 10 5061 pbx2.example.test."]),
    ("_sip._udp.example.test.", "SRV"): (120, ["0 0 5060 pbx1.example.test."]),
    ("_sip._tcp.gone.test.", "SRV"): (60, ["0 0 0 ."]),
    ("pbx1.example.test.", "A"): (60, ["127.0.0.1"]),
    ("pbx1.example.test.", "AAAA"): (60, ["::1"]),
    ("pbx2.example.test.", "A"): (60, ["127.0.0.2"]),
}
SERVFAIL_NAMES = {"broken.test."}


class _DnsServer(asyncio.DatagramProtocol):
    """Answers from ZONE: NOERROR with data, NOERROR/no data if the name exists, NXDOMAIN."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.names = {name for name, _ in zone}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector transport does not subclass DatagramTransport on 3.11.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower()
        kind = dns.rdatatype.to_text(question.rdtype)
        if name in SERVFAIL_NAMES:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif (name, kind) in self.zone:
            ttl, texts = self.zone[(name, kind)]
            response.answer.append(dns.rrset.from_text(question.name, ttl, "IN", kind, *texts))
        elif name not in self.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@asynccontextmanager
async def dns_server(zone: Zone = ZONE) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _DnsServer(zone), local_addr=("127.0.0.1", 0))
    try:
        yield transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


def real(port: int, **kwargs: Any) -> DnsResolver:
    return DnsResolver(nameservers=["127.0.0.1"], port=port, timeout=1.0, lifetime=2.0, **kwargs)


@pytest.mark.asyncio
async def test_real_dns_records_with_ttls() -> None:
    async with dns_server() as port:
        resolver = real(port)
        naptrs = await resolver.naptr("Example.Test")
        assert sorted(naptrs, key=lambda r: r.order) == [
            NaptrRecord(10, 50, "s", "SIPS+D2T", "", "_sips._tcp.example.test", 300),
            NaptrRecord(20, 50, "s", "SIP+D2U", "", "_sip._udp.example.test", 300),
        ]
        assert await resolver.srv("_sip._udp.example.test") == [SrvRecord(0, 0, 5060, "pbx1.example.test", 120)]
        assert await resolver.srv("_sip._tcp.gone.test") == [SrvRecord(0, 0, 0, ".", 60)]
        assert await resolver.a("pbx1.example.test.") == [AddressRecord("127.0.0.1", 60)]
        assert await resolver.aaaa("pbx1.example.test") == [AddressRecord("::1", 60)]


@pytest.mark.asyncio
async def test_real_dns_locate_end_to_end() -> None:
    async with dns_server() as port:
        resolver = CachingResolver(real(port), clock=asyncio.get_running_loop().time)
        targets = await locate(Destination("sip", "example.test"), resolver, pick=lambda total: 0)
    domain = "example.test"
    assert targets == [
        Target("tls", "pbx1.example.test", "127.0.0.1", 5061, domain),
        Target("tls", "pbx1.example.test", "::1", 5061, domain),
        Target("tls", "pbx2.example.test", "127.0.0.2", 5061, domain),
        Target("udp", "pbx1.example.test", "127.0.0.1", 5060, domain),
        Target("udp", "pbx1.example.test", "::1", 5060, domain),
    ]


@pytest.mark.asyncio
async def test_real_dns_negative_answers_and_failures() -> None:
    async with dns_server() as port:
        resolver = real(port, system_fallback=False)
        assert await resolver.naptr("missing.test") == []  # NXDOMAIN
        assert await resolver.a("pbx2.example.test") == [AddressRecord("127.0.0.2", 60)]
        assert await resolver.aaaa("pbx2.example.test") == []  # name exists, no AAAA
        assert await resolver.naptr("pbx1.example.test") == []
        with pytest.raises(ResolveError, match="SRV broken.test"):
            await resolver.srv("broken.test")
        with pytest.raises(ResolveError, match="A broken.test"):
            await resolver.a("broken.test")
        with pytest.raises(ResolveError, match="EmptyLabel|A a..b"):
            await resolver.a("a..b")


@pytest.mark.asyncio
async def test_system_fallback_finds_hosts_file_names() -> None:
    async with dns_server() as port:
        resolver = real(port)
        # DNS says NXDOMAIN for localhost; getaddrinfo reads /etc/hosts.
        assert await resolver.a("localhost") == [AddressRecord("127.0.0.1", 30)]
        targets = await locate(Destination("sip", "localhost", 5070), resolver)
    assert targets[0] == Target("udp", "localhost", "127.0.0.1", 5070, "localhost")


@pytest.mark.asyncio
async def test_system_fallback_after_dns_failure_and_when_it_knows_nothing() -> None:
    calls: list[tuple[str, int]] = []

    async def fake_getaddrinfo(host: str, port: Any, *, family: int, type: int) -> list[tuple[Any, ...]]:
        calls.append((host, family))
        if host == "broken.test":
            return [
                (socket.AF_INET6, type, 17, "", ("2001:db8::9", 0, 0, 0)),
                (socket.AF_INET6, type, 17, "", ("2001:db8::9", 0, 0, 0)),  # duplicate
            ]
        raise socket.gaierror(socket.EAI_NONAME, "unknown")

    async with dns_server() as port:
        resolver = real(port, getaddrinfo=fake_getaddrinfo, fallback_ttl=5)
        # SERVFAIL from DNS, but the system knows the name: its answer wins.
        assert await resolver.aaaa("broken.test") == [AddressRecord("2001:db8::9", 5)]
        # SERVFAIL and the system knows nothing: the DNS failure is what the caller sees.
        with pytest.raises(ResolveError, match="A broken.test"):
            await resolver.a("broken.test")
        # NXDOMAIN and the system knows nothing: an ordinary empty answer.
        assert await resolver.a("missing.test") == []
    assert calls == [
        ("broken.test", socket.AF_INET6),
        ("broken.test", socket.AF_INET),
        ("missing.test", socket.AF_INET),
    ]


def test_system_configuration_and_its_absence(monkeypatch: pytest.MonkeyPatch) -> None:
    DnsResolver()  # reads /etc/resolv.conf when present, or falls back silently

    class Unconfigured(dns.asyncresolver.Resolver):
        def __init__(self, filename: str = "/etc/resolv.conf", configure: bool = True) -> None:
            if configure:
                raise dns.resolver.NoResolverConfiguration
            super().__init__(filename, configure)

    monkeypatch.setattr(dns.asyncresolver, "Resolver", Unconfigured)
    resolver = DnsResolver()
    assert isinstance(resolver._resolver, Unconfigured)
