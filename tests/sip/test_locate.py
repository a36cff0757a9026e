"""RFC 3263 §4 decisions, driven with canned DNS answers: no I/O, no randomness."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipline.sip.errors import SiplineError, UsageError
from sipline.sip.locate import (
    DEFAULT_PORTS,
    AddressRecord,
    Destination,
    NaptrRecord,
    Query,
    Record,
    ResolveError,
    SrvRecord,
    Target,
    drive,
    order_naptr,
    order_srv,
    plan,
    srv_name,
)

Zone = Mapping[tuple[str, str], Sequence[Record]]


def first(total: int) -> int:
    """Always the lowest draw: zero-weight records first, then list order."""
    return 0


def run(
    dest: Destination,
    zone: Zone,
    *,
    transports: Sequence[str] = ("tls", "tcp", "udp"),
    pick: Callable[[int], int] = first,
    prefer_ipv6: bool = False,
) -> tuple[list[Target], list[tuple[Query, ...]]]:
    """Run the plan; return the targets and the batches of queries it asked."""
    batches: list[tuple[Query, ...]] = []
    steps = plan(dest, pick=pick, transports=transports, prefer_ipv6=prefer_ipv6)
    try:
        batch = next(steps)
        while True:
            batches.append(batch)
            batch = steps.send([zone.get((q.kind, q.name), []) for q in batch])
    except StopIteration as done:
        return done.value, batches


def naptr(order: int, pref: int, service: str, replacement: str, flags: str = "s") -> NaptrRecord:
    return NaptrRecord(order, pref, flags, service, "", replacement, 300)


def srv(priority: int, weight: int, port: int, target: str) -> SrvRecord:
    return SrvRecord(priority, weight, port, target, 300)


def addr(*addresses: str) -> list[Record]:
    return [AddressRecord(a, 300) for a in addresses]


def T(transport: str, host: str, address: str, port: int, domain: str = "example.com") -> Target:
    return Target(transport, host, address, port, domain)


HOSTS: Zone = {
    ("A", "example.com"): addr("192.0.2.1"),
    ("AAAA", "example.com"): addr("2001:db8::1"),
    ("A", "a.example.com"): addr("192.0.2.10"),
    ("A", "b.example.com"): addr("192.0.2.11"),
    ("AAAA", "b.example.com"): addr("2001:db8::11"),
}

SRV_ALL: Zone = {
    **HOSTS,
    ("SRV", "_sips._tcp.example.com"): [srv(10, 0, 5061, "a.example.com")],
    ("SRV", "_sip._tcp.example.com"): [srv(10, 0, 5060, "b.example.com")],
    ("SRV", "_sip._udp.example.com"): [srv(10, 0, 5060, "a.example.com")],
}

NAPTR_ZONE: Zone = {
    **SRV_ALL,
    ("NAPTR", "example.com"): [
        naptr(20, 10, "SIP+D2U", "_sip._udp.example.com"),
        naptr(10, 20, "SIP+D2T", "_sip._tcp.example.com"),
        naptr(10, 10, "SIP+D2S", "_sip._sctp.example.com"),  # SCTP: unsupported
        naptr(10, 5, "SIP+D2T", "b.example.com", flags="a"),  # not a terminal SRV step
        naptr(30, 10, "SIP+D2W", "_sip._ws.example.com"),  # ws not enabled by default
        naptr(40, 10, "SIPS+D2T", "_sips._tcp.example.com"),
    ],
}

# Each row: id, destination, zone, expected targets, expected query batches.
CASES = [
    (
        "numeric-ipv4-sip-defaults-to-udp-5060",
        Destination("sip", "192.0.2.7"),
        {},
        [T("udp", "192.0.2.7", "192.0.2.7", 5060, "192.0.2.7")],
        [],
    ),
    (
        "numeric-ipv4-sips-is-tls-5061",
        Destination("sips", "192.0.2.7"),
        {},
        [T("tls", "192.0.2.7", "192.0.2.7", 5061, "192.0.2.7")],
        [],
    ),
    (
        "numeric-ipv6-bracketed-with-port-and-transport",
        Destination("sip", "[2001:DB8::0:7]", 5070, "TCP"),
        {},
        [T("tcp", "2001:db8::7", "2001:db8::7", 5070, "2001:db8::7")],
        [],
    ),
    (
        "numeric-sip-transport-tls-default-port",
        Destination("sip", "192.0.2.7", transport="tls"),
        {},
        [T("tls", "192.0.2.7", "192.0.2.7", 5061, "192.0.2.7")],
        [],
    ),
    (
        "numeric-maddr-overrides-hostname",
        Destination("sip", "example.com", maddr="192.0.2.9"),
        HOSTS,
        [T("udp", "192.0.2.9", "192.0.2.9", 5060, "192.0.2.9")],
        [],
    ),
    (
        "explicit-port-means-a-aaaa-only",
        Destination("sip", "Example.COM.", 5080),
        SRV_ALL,
        [T("udp", "example.com", "192.0.2.1", 5080), T("udp", "example.com", "2001:db8::1", 5080)],
        [(Query("A", "example.com"), Query("AAAA", "example.com"))],
    ),
    (
        "explicit-port-sips-is-tls",
        Destination("sips", "example.com", 5081),
        SRV_ALL,
        [T("tls", "example.com", "192.0.2.1", 5081), T("tls", "example.com", "2001:db8::1", 5081)],
        [(Query("A", "example.com"), Query("AAAA", "example.com"))],
    ),
    (
        "explicit-port-and-transport",
        Destination("sip", "example.com", 5090, "tcp"),
        SRV_ALL,
        [T("tcp", "example.com", "192.0.2.1", 5090), T("tcp", "example.com", "2001:db8::1", 5090)],
        [(Query("A", "example.com"), Query("AAAA", "example.com"))],
    ),
    (
        "maddr-hostname-is-the-target",
        Destination("sip", "elsewhere.test", 5062, maddr="a.example.com"),
        HOSTS,
        [T("udp", "a.example.com", "192.0.2.10", 5062, "a.example.com")],
        [(Query("A", "a.example.com"), Query("AAAA", "a.example.com"))],
    ),
    (
        "transport-param-uses-srv-for-that-transport",
        Destination("sip", "example.com", transport="tcp"),
        SRV_ALL,
        [T("tcp", "b.example.com", "192.0.2.11", 5060), T("tcp", "b.example.com", "2001:db8::11", 5060)],
        [
            (Query("SRV", "_sip._tcp.example.com"),),
            (Query("A", "b.example.com"), Query("AAAA", "b.example.com")),
        ],
    ),
    (
        "transport-param-without-srv-falls-back-to-a",
        Destination("sip", "example.com", transport="udp"),
        HOSTS,
        [T("udp", "example.com", "192.0.2.1", 5060), T("udp", "example.com", "2001:db8::1", 5060)],
        [
            (Query("SRV", "_sip._udp.example.com"),),
            (Query("A", "example.com"), Query("AAAA", "example.com")),
        ],
    ),
    (
        "sips-transport-tcp-means-tls",
        Destination("sips", "example.com", transport="tcp"),
        SRV_ALL,
        [T("tls", "a.example.com", "192.0.2.10", 5061)],
        [
            (Query("SRV", "_sips._tcp.example.com"),),
            (Query("A", "a.example.com"), Query("AAAA", "a.example.com")),
        ],
    ),
    (
        "sips-transport-param-without-srv-uses-5061",
        Destination("sips", "example.com", transport="tls"),
        HOSTS,
        [T("tls", "example.com", "192.0.2.1", 5061), T("tls", "example.com", "2001:db8::1", 5061)],
        [
            (Query("SRV", "_sips._tcp.example.com"),),
            (Query("A", "example.com"), Query("AAAA", "example.com")),
        ],
    ),
    (
        "naptr-ordered-by-order-then-preference-and-filtered",
        Destination("sip", "example.com"),
        NAPTR_ZONE,
        [
            T("tcp", "b.example.com", "192.0.2.11", 5060),
            T("tcp", "b.example.com", "2001:db8::11", 5060),
            T("udp", "a.example.com", "192.0.2.10", 5060),
            T("tls", "a.example.com", "192.0.2.10", 5061),
        ],
        [
            (Query("NAPTR", "example.com"),),
            (
                Query("SRV", "_sip._tcp.example.com"),
                Query("SRV", "_sip._udp.example.com"),
                Query("SRV", "_sips._tcp.example.com"),
            ),
            (
                Query("A", "b.example.com"),
                Query("AAAA", "b.example.com"),
                Query("A", "a.example.com"),
                Query("AAAA", "a.example.com"),
            ),
        ],
    ),
    (
        "sips-keeps-only-sips-naptr-services",
        Destination("sips", "example.com"),
        NAPTR_ZONE,
        [T("tls", "a.example.com", "192.0.2.10", 5061)],
        [
            (Query("NAPTR", "example.com"),),
            (Query("SRV", "_sips._tcp.example.com"),),
            (Query("A", "a.example.com"), Query("AAAA", "a.example.com")),
        ],
    ),
    (
        "no-naptr-srv-for-each-transport-in-preference-order",
        Destination("sip", "example.com"),
        SRV_ALL,
        [
            T("tls", "a.example.com", "192.0.2.10", 5061),
            T("tcp", "b.example.com", "192.0.2.11", 5060),
            T("tcp", "b.example.com", "2001:db8::11", 5060),
            T("udp", "a.example.com", "192.0.2.10", 5060),
        ],
        [
            (Query("NAPTR", "example.com"),),
            (
                Query("SRV", "_sips._tcp.example.com"),
                Query("SRV", "_sip._tcp.example.com"),
                Query("SRV", "_sip._udp.example.com"),
            ),
            (
                Query("A", "a.example.com"),
                Query("AAAA", "a.example.com"),
                Query("A", "b.example.com"),
                Query("AAAA", "b.example.com"),
            ),
        ],
    ),
    (
        "naptr-pointing-at-empty-srv-falls-back-to-srv-queries",
        Destination("sip", "example.com"),
        {
            **HOSTS,
            ("NAPTR", "example.com"): [naptr(10, 10, "SIP+D2T", "_sip._tcp.gone.example.com")],
            ("SRV", "_sip._udp.example.com"): [srv(10, 0, 5062, "a.example.com")],
        },
        [T("udp", "a.example.com", "192.0.2.10", 5062)],
        [
            (Query("NAPTR", "example.com"),),
            (Query("SRV", "_sip._tcp.gone.example.com"),),
            (
                Query("SRV", "_sips._tcp.example.com"),
                Query("SRV", "_sip._tcp.example.com"),
                Query("SRV", "_sip._udp.example.com"),
            ),
            (Query("A", "a.example.com"), Query("AAAA", "a.example.com")),
        ],
    ),
    (
        "nothing-but-a-records-sip-is-udp-5060",
        Destination("sip", "example.com"),
        HOSTS,
        [T("udp", "example.com", "192.0.2.1", 5060), T("udp", "example.com", "2001:db8::1", 5060)],
        [
            (Query("NAPTR", "example.com"),),
            (
                Query("SRV", "_sips._tcp.example.com"),
                Query("SRV", "_sip._tcp.example.com"),
                Query("SRV", "_sip._udp.example.com"),
            ),
            (Query("A", "example.com"), Query("AAAA", "example.com")),
        ],
    ),
    (
        "nothing-but-a-records-sips-is-tls-5061",
        Destination("sips", "example.com"),
        HOSTS,
        [T("tls", "example.com", "192.0.2.1", 5061), T("tls", "example.com", "2001:db8::1", 5061)],
        [
            (Query("NAPTR", "example.com"),),
            (Query("SRV", "_sips._tcp.example.com"),),
            (Query("A", "example.com"), Query("AAAA", "example.com")),
        ],
    ),
    (
        "nothing-at-all-is-an-empty-plan",
        Destination("sip", "nowhere.test"),
        {},
        [],
        [
            (Query("NAPTR", "nowhere.test"),),
            (
                Query("SRV", "_sips._tcp.nowhere.test"),
                Query("SRV", "_sip._tcp.nowhere.test"),
                Query("SRV", "_sip._udp.nowhere.test"),
            ),
            (Query("A", "nowhere.test"), Query("AAAA", "nowhere.test")),
        ],
    ),
    (
        "srv-dot-target-means-not-offered-numeric-target-used-directly",
        Destination("sip", "example.com", transport="tcp"),
        {
            ("SRV", "_sip._tcp.example.com"): [
                srv(10, 0, 5060, "."),
                srv(20, 0, 5070, "192.0.2.50"),
                srv(20, 0, 5070, "192.0.2.50"),  # duplicate: tried once
            ]
        },
        [T("tcp", "192.0.2.50", "192.0.2.50", 5070)],
        [(Query("SRV", "_sip._tcp.example.com"),)],
    ),
    (
        "bad-and-misfiled-records-are-ignored",
        Destination("sip", "example.com", 5060),
        {
            ("A", "example.com"): [
                AddressRecord("not-an-ip"),
                AddressRecord("2001:db8::5"),  # v6 in an A answer
                SrvRecord(1, 1, 1, "x"),  # wrong type altogether
                AddressRecord("192.0.2.5"),
            ],
        },
        [T("udp", "example.com", "192.0.2.5", 5060)],
        [(Query("A", "example.com"), Query("AAAA", "example.com"))],
    ),
]


@pytest.mark.parametrize(
    ("dest", "zone", "targets", "batches"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_plan(dest: Destination, zone: Zone, targets: list[Target], batches: list[tuple[Query, ...]]) -> None:
    assert run(dest, zone) == (targets, batches)


@pytest.mark.parametrize(
    ("transport", "port"), [("ws", 80), ("wss", 443), ("tcp", 5060), ("udp", 5060), ("tls", 5061)]
)
def test_numeric_default_ports(transport: str, port: int) -> None:
    dest = Destination("sip", "192.0.2.1", transport=transport)
    targets, _ = run(dest, {}, transports=("udp", "tcp", "tls", "ws", "wss"))
    assert targets == [T(transport, "192.0.2.1", "192.0.2.1", port, "192.0.2.1")]
    assert DEFAULT_PORTS[transport] == port


def test_websocket_naptr_and_srv_when_enabled() -> None:
    zone: Zone = {
        ("NAPTR", "example.com"): [
            naptr(10, 10, "SIPS+D2W", "_sips._ws.example.com"),
            naptr(10, 20, "SIP+D2W", "_sip._ws.example.com"),
        ],
        ("SRV", "_sips._ws.example.com"): [srv(1, 0, 443, "a.example.com")],
        ("SRV", "_sip._ws.example.com"): [srv(1, 0, 80, "a.example.com")],
        **HOSTS,
    }
    targets, _ = run(Destination("sip", "example.com"), zone, transports=("wss", "ws"))
    assert targets == [
        T("wss", "a.example.com", "192.0.2.10", 443),
        T("ws", "a.example.com", "192.0.2.10", 80),
    ]
    sips, _ = run(Destination("sips", "example.com"), zone, transports=("wss", "ws", "udp"))
    assert sips == [T("wss", "a.example.com", "192.0.2.10", 443)]
    assert srv_name("ws", "Example.com.") == "_sip._ws.example.com"


def test_sip_defaults_to_first_supported_when_udp_disabled() -> None:
    targets, _ = run(Destination("sip", "192.0.2.1"), {}, transports=("tcp",))
    assert targets[0].transport == "tcp"
    targets, _ = run(Destination("sip", "example.com"), HOSTS, transports=("tls",))
    assert {t.transport for t in targets} == {"tls"} and targets[0].port == 5061


def test_prefer_ipv6_orders_aaaa_first() -> None:
    targets, batches = run(Destination("sip", "example.com", 5060), HOSTS, prefer_ipv6=True)
    assert [t.address for t in targets] == ["2001:db8::1", "192.0.2.1"]
    assert batches == [(Query("AAAA", "example.com"), Query("A", "example.com"))]


@pytest.mark.parametrize(
    ("dest", "transports", "fragment"),
    [
        (Destination("sips", "example.com", transport="udp"), ("tls", "udp"), "transport=udp"),
        (Destination("sip", "example.com", transport="sctp"), ("udp",), "transport=sctp"),
        (Destination("sip", "192.0.2.1", transport="ws"), ("udp", "tcp"), "not enabled"),
        (Destination("sips", "example.com"), ("udp", "tcp"), "no secure transport"),
        (Destination("sip", "example.com"), (), "no transport"),
    ],
)
def test_unreachable_destinations(dest: Destination, transports: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(ResolveError, match=fragment) as info:
        run(dest, {}, transports=transports)
    assert info.value.status == 503
    assert isinstance(info.value, SiplineError)
    assert fragment in repr(info.value)


def test_unknown_transport_in_configuration_is_misuse() -> None:
    with pytest.raises(UsageError, match="unknown transports"):
        run(Destination("sip", "example.com"), {}, transports=("udp", "carrier-pigeon"))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"scheme": "tel", "host": "example.com"}, "scheme"),
        ({"scheme": "sip", "host": " . "}, "empty"),
        ({"scheme": "sip", "host": "example.com", "port": 0}, "out of range"),
        ({"scheme": "sip", "host": "example.com", "port": 65536}, "out of range"),
    ],
)
def test_destination_validation(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        Destination(**kwargs)  # type: ignore[arg-type]


def test_destination_properties() -> None:
    dest = Destination("SIPS", "[::1]", maddr=None)
    assert dest.secure and dest.target == "::1"
    assert not Destination("sip", "Host.Example.").secure
    assert Destination("sip", "Host.Example.").target == "host.example"


# -- RFC 2782 ordering ------------------------------------------------------------------------


def scripted(*draws: int) -> Callable[[int], int]:
    """A pick that returns the given draws in order and records the totals it was asked."""
    values = iter(draws)
    totals: list[int] = []

    def pick(total: int) -> int:
        totals.append(total)
        return next(values)

    pick.totals = totals  # type: ignore[attr-defined]
    return pick


def test_srv_priority_first_then_weight() -> None:
    records = [srv(20, 0, 1, "low"), srv(10, 60, 2, "heavy"), srv(10, 40, 3, "light"), srv(10, 0, 4, "zero")]
    # Group 10 after zero-weights-first: [zero(0), heavy(60), light(40)], total 100.
    # Draw 61 -> running sums 0, 60, 100 -> light.  Then [zero, heavy], total 60: draw 0 -> zero.
    # Then [heavy], total 60: any draw -> heavy.  Group 20: single zero weight record.
    pick = scripted(61, 0, 60, 0)
    ordered = order_srv(records, pick)
    assert [r.target for r in ordered] == ["light", "zero", "heavy", "low"]
    assert pick.totals == [100, 60, 60, 0]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("draw", "expected_first"),
    [(0, "a"), (1, "a"), (10, "a"), (11, "b"), (30, "b"), (31, "c"), (60, "c")],
)
def test_srv_weighted_boundaries(draw: int, expected_first: str) -> None:
    records = [srv(1, 10, 1, "a"), srv(1, 20, 1, "b"), srv(1, 30, 1, "c")]
    assert order_srv(records, scripted(draw, 0, 0))[0].target == expected_first


@pytest.mark.parametrize("bad", [-1, 101])
def test_srv_pick_out_of_range_is_misuse(bad: int) -> None:
    with pytest.raises(UsageError, match="outside"):
        order_srv([srv(1, 100, 1, "a")], lambda total: bad)


def test_weighted_pick_reaches_the_plan() -> None:
    zone: Zone = {
        ("SRV", "_sip._udp.example.com"): [srv(1, 1, 5060, "a.example.com"), srv(1, 3, 5060, "b.example.com")],
        **HOSTS,
    }
    dest = Destination("sip", "example.com", transport="udp")
    low, _ = run(dest, zone, pick=lambda total: 0)
    high, _ = run(dest, zone, pick=lambda total: total)
    assert [t.host for t in low][0] == "a.example.com"
    assert [t.host for t in high][0] == "b.example.com"


srv_records = st.lists(
    st.builds(
        SrvRecord,
        priority=st.integers(0, 3),
        weight=st.integers(0, 50),
        port=st.integers(1, 65535),
        target=st.sampled_from(["a", "b", "c", ".", ""]),
    ),
    max_size=8,
)


@given(records=srv_records, data=st.data())
def test_srv_order_is_a_priority_sorted_permutation(records: list[SrvRecord], data: st.DataObject) -> None:
    ordered = order_srv(records, lambda total: data.draw(st.integers(0, total)))
    live = [r for r in records if r.target not in (".", "")]
    assert sorted(ordered, key=repr) == sorted(live, key=repr)
    assert [r.priority for r in ordered] == sorted(r.priority for r in ordered)


def test_naptr_ordering_and_filtering() -> None:
    records = [
        naptr(2, 1, "sip+d2u", "_sip._udp.x"),  # service compared case-insensitively
        naptr(1, 9, "SIP+D2T", "_sip._tcp.x"),
        naptr(1, 1, "SIPS+D2T", "_sips._tcp.x", flags="S"),
        naptr(1, 1, "SIPS+D2T", "_sips._tcp.x."),  # duplicate after normalization
        naptr(0, 0, "SIP+D2T", "."),  # no replacement
        naptr(0, 0, "E2U+sip", "_sip._udp.x"),  # ENUM, not ours
    ]
    assert order_naptr(records, ("udp", "tcp", "tls")) == [
        ("tls", "_sips._tcp.x"),
        ("tcp", "_sip._tcp.x"),
        ("udp", "_sip._udp.x"),
    ]
    assert order_naptr(records, ("tls",)) == [("tls", "_sips._tcp.x")]


def test_drive_runs_a_plan_with_a_function() -> None:
    asked: list[Query] = []

    def answer(query: Query) -> Sequence[Record]:
        asked.append(query)
        return SRV_ALL.get((query.kind, query.name), [])

    targets = drive(plan(Destination("sips", "example.com"), pick=first), answer)
    assert targets == [T("tls", "a.example.com", "192.0.2.10", 5061)]
    assert asked[0] == Query("NAPTR", "example.com")
    assert drive(plan(Destination("sip", "192.0.2.1"), pick=first), answer)[0].port == 5060


def test_huge_srv_answers_are_capped_keeping_best_priorities() -> None:
    records = [srv(100, 0, 5060, f"bulk{i}.example.com") for i in range(40)]
    records.append(srv(1, 0, 5060, "a.example.com"))
    zone: Zone = {("SRV", "_sip._udp.example.com"): records, **HOSTS}
    targets, batches = run(Destination("sip", "example.com", transport="udp"), zone)
    assert targets[0] == T("udp", "a.example.com", "192.0.2.10", 5060)
    assert len(batches[1]) == 2 * 16  # A and AAAA for at most 16 SRV targets
