"""Conformance of every LocationStore backend (memory, sqlite, redis)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from sipline.sip.errors import UsageError
from sipline.storage import (
    Binding,
    BindingChanges,
    BindingSet,
    Source,
    StaleBindingSet,
    Storage,
    TooManyBindings,
    transact,
)

pytestmark = pytest.mark.asyncio

AOR = "sip:alice@example.com"
NOW = 1_700_000_000.0
MAX_BINDINGS = 8  # what conftest opens every backend with


def b(contact: str, expires: float = 3600, *, q: float = 1.0, updated: float = NOW,
      aor: str = AOR, cseq: int = 1, call_id: str = "cid") -> Binding:
    return Binding(aor=aor, contact=contact, expires_at=NOW + expires, q=q,
                   updated_at=updated, cseq=cseq, call_id=call_id)


async def test_round_trip_keeps_every_field(storage: Storage) -> None:
    full = Binding(
        aor=AOR,
        contact="<sip:alice@[2001:db8::1]:5070;transport=tcp;ob>",
        expires_at=NOW + 600.25,
        q=0.7,
        call_id="a84b4c76e66710@pc33",
        cseq=314159,
        path=("<sip:edge1.example.com;lr>", "<sip:edge2.example.com;lr>"),
        instance_id="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>",
        reg_id=1,
        received=Source("tls", "2001:db8::1", 5061),
        connection_id="conn-42",
        node_id="node-a",
        user_agent="Acme/1.0",
        updated_at=NOW + 0.125,
    )
    await storage.location.upsert(full, NOW)
    assert await storage.location.lookup(AOR, NOW) == [full]


async def test_lookup_orders_by_q_then_recency(storage: Storage) -> None:
    loc = storage.location
    await loc.upsert(b("sip:low@h", q=0.1), NOW)
    await loc.upsert(b("sip:old@h", q=0.9, updated=NOW - 10), NOW)
    await loc.upsert(b("sip:new@h", q=0.9, updated=NOW), NOW)
    await loc.upsert(b("sip:top@h", q=1.0, updated=NOW - 100), NOW)
    got = [x.contact for x in await loc.lookup(AOR, NOW)]
    assert got == ["sip:top@h", "sip:new@h", "sip:old@h", "sip:low@h"]
    assert await loc.lookup("sip:nobody@example.com", NOW) == []


async def test_upsert_replaces_same_contact(storage: Storage) -> None:
    loc = storage.location
    await loc.upsert(b("sip:a@h", cseq=1))
    await loc.upsert(b("sip:a@h", cseq=2, expires=60))
    [only] = await loc.lookup(AOR, NOW)
    assert (only.cseq, only.expires_at) == (2, NOW + 60)


async def test_expired_bindings_hidden_then_purged(storage: Storage) -> None:
    loc = storage.location
    await loc.upsert(b("sip:short@h", expires=10), NOW)
    await loc.upsert(b("sip:long@h", expires=100), NOW)
    await loc.upsert(b("sip:x@h", expires=5, aor="sip:bob@example.com"), NOW)
    later = NOW + 50
    assert [x.contact for x in await loc.lookup(AOR, later)] == ["sip:long@h"]
    assert await loc.count() == 3
    assert await loc.count(later) == 1
    # Exactly at expires_at the binding is dead.
    assert await loc.lookup("sip:bob@example.com", NOW + 5) == []
    assert await loc.purge_expired(later) == 2
    assert await loc.count() == 1
    assert await loc.purge_expired(later) == 0
    assert (await loc.snapshot("sip:bob@example.com", later)).version == 0


async def test_remove_and_remove_all(storage: Storage) -> None:
    loc = storage.location
    for name in ("a", "b", "c"):
        await loc.upsert(b(f"sip:{name}@h"), NOW)
    assert await loc.remove(AOR, "sip:a@h") is True
    assert await loc.remove(AOR, "sip:a@h") is False
    assert await loc.remove("sip:ghost@example.com", "sip:a@h") is False
    assert await loc.remove_all(AOR) == 2
    assert await loc.remove_all(AOR) == 0
    assert await loc.lookup(AOR, NOW) == []
    assert (await loc.snapshot(AOR, NOW)).version == 0
    await loc.upsert(b("sip:d@h"), NOW)
    assert await loc.remove(AOR, "sip:d@h") is True
    assert await loc.count() == 0


async def test_all_groups_by_aor(storage: Storage) -> None:
    loc = storage.location
    await loc.upsert(b("sip:z@h", aor="sip:zed@example.com"), NOW)
    await loc.upsert(b("sip:a2@h", q=0.5), NOW)
    await loc.upsert(b("sip:a1@h", q=0.9), NOW)
    await loc.upsert(b("sip:gone@h", expires=1, aor="sip:bob@example.com"), NOW)
    got = [(x.aor, x.contact) for x in await loc.all(NOW + 2)]
    assert got == [
        (AOR, "sip:a1@h"),
        (AOR, "sip:a2@h"),
        ("sip:zed@example.com", "sip:z@h"),
    ]


async def test_apply_versions_and_cas(storage: Storage) -> None:
    loc = storage.location
    empty = await loc.snapshot(AOR, NOW)
    assert empty == BindingSet(AOR, (), 0)
    first = await loc.apply(AOR, BindingChanges(upsert=(b("sip:a@h"),), expected_version=0), NOW)
    assert first.version != 0 and [x.contact for x in first.bindings] == ["sip:a@h"]
    assert (await loc.snapshot(AOR, NOW)) == first
    # A writer holding the old (empty) snapshot loses and writes nothing.
    with pytest.raises(StaleBindingSet) as info:
        await loc.apply(AOR, BindingChanges(remove_all=True, expected_version=0), NOW)
    assert (info.value.expected, info.value.actual) == (0, first.version)
    assert await loc.snapshot(AOR, NOW) == first
    # A change that changes nothing keeps the version.
    same = await loc.apply(AOR, BindingChanges(remove=("sip:nope@h",)), NOW)
    assert same.version == first.version


async def test_versions_never_come_back(storage: Storage) -> None:
    """Empty, then re-registered: an old snapshot must not match the new set (ABA)."""
    loc = storage.location
    old = await loc.apply(AOR, BindingChanges(upsert=(b("sip:x@h"),)), NOW)
    await loc.remove_all(AOR)
    new = await loc.apply(AOR, BindingChanges(upsert=(b("sip:y@h"),)), NOW)
    assert new.version != old.version
    with pytest.raises(StaleBindingSet):
        await loc.apply(AOR, BindingChanges(expected_version=old.version), NOW)


async def test_apply_order_remove_all_remove_upsert(storage: Storage) -> None:
    loc = storage.location
    await loc.upsert(b("sip:a@h"), NOW)
    await loc.upsert(b("sip:b@h"), NOW)
    result = await loc.apply(
        AOR,
        BindingChanges(upsert=(b("sip:c@h"), b("sip:b@h", expires=0)), remove=("sip:a@h",)),
        NOW,
    )
    assert [x.contact for x in result.bindings] == ["sip:c@h"]
    result = await loc.apply(AOR, BindingChanges(remove_all=True, upsert=(b("sip:d@h"),)), NOW)
    assert [x.contact for x in result.bindings] == ["sip:d@h"]
    result = await loc.apply(AOR, BindingChanges(remove_all=True), NOW)
    assert result == BindingSet(AOR, (), 0)


async def test_apply_drops_expired_while_writing(storage: Storage) -> None:
    loc = storage.location
    await loc.upsert(b("sip:old@h", expires=10), NOW)
    await loc.apply(AOR, BindingChanges(upsert=(b("sip:new@h", expires=1000),)), NOW + 20)
    assert await loc.count() == 1


async def test_max_bindings_enforced_without_writing(storage: Storage) -> None:
    loc = storage.location
    for i in range(MAX_BINDINGS):
        await loc.upsert(b(f"sip:{i}@h"), NOW)
    before = await loc.snapshot(AOR, NOW)
    with pytest.raises(TooManyBindings) as info:
        await loc.upsert(b("sip:one-too-many@h"), NOW)
    assert info.value.limit == MAX_BINDINGS
    assert await loc.snapshot(AOR, NOW) == before
    # Expired bindings do not count against the limit.
    await loc.upsert(b("sip:fresh@h", expires=7200), NOW + 3600)
    assert await loc.count(NOW + 3600) == 1


async def test_binding_for_other_aor_is_misuse(storage: Storage) -> None:
    with pytest.raises(UsageError):
        await storage.location.apply(AOR, BindingChanges(upsert=(b("sip:a@h", aor="sip:x@y"),)), NOW)


async def test_transact_rejects_out_of_order_cseq(storage: Storage) -> None:
    """The registrar's §10.3 step 7 check: a decision may abort and nothing is written."""

    def register(contact: str, call_id: str, cseq: int):  # type: ignore[no-untyped-def]
        def decide(current: BindingSet) -> BindingChanges:
            old = current.find(contact)
            if old is not None and old.call_id == call_id and old.cseq >= cseq:
                raise ValueError("500 out of order")
            return BindingChanges(upsert=(b(contact, cseq=cseq, call_id=call_id),))

        return decide

    loc = storage.location
    result = await transact(loc, AOR, register("sip:a@h", "c1", 5), NOW)
    assert result.find("sip:a@h") is not None
    with pytest.raises(ValueError):
        await transact(loc, AOR, register("sip:a@h", "c1", 5), NOW)
    assert (await loc.snapshot(AOR, NOW)) == result


async def test_concurrent_transacts_all_land(storage: Storage) -> None:
    loc = storage.location

    def adder(i: int):  # type: ignore[no-untyped-def]
        def decide(current: BindingSet) -> BindingChanges:
            return BindingChanges(upsert=(b(f"sip:{i}@h", updated=NOW + i),))

        return decide

    await asyncio.gather(*(transact(loc, AOR, adder(i), NOW, attempts=20) for i in range(6)))
    assert sorted(x.contact for x in await loc.lookup(AOR, NOW)) == [f"sip:{i}@h" for i in range(6)]


async def test_concurrent_cas_has_one_winner(storage: Storage) -> None:
    loc = storage.location
    base = await loc.snapshot(AOR, NOW)
    changes = [
        BindingChanges(upsert=(b(f"sip:{i}@h"),), expected_version=base.version) for i in range(5)
    ]
    results = await asyncio.gather(*(loc.apply(AOR, c, NOW) for c in changes), return_exceptions=True)
    assert sum(isinstance(r, BindingSet) for r in results) == 1
    assert all(isinstance(r, (BindingSet, StaleBindingSet)) for r in results)
    assert await loc.count() == 1


class _AlwaysStale:
    """A store that always loses the race, to exercise transact's give-up path."""

    def __init__(self) -> None:
        self.applies = 0

    async def snapshot(self, aor: str, now: float) -> BindingSet:
        return BindingSet(aor, (), self.applies)

    async def apply(self, aor: str, changes: BindingChanges, now: float) -> BindingSet:
        self.applies += 1
        raise StaleBindingSet(aor, changes.expected_version or 0, self.applies)


async def test_transact_gives_up_after_attempts() -> None:
    store = _AlwaysStale()
    with pytest.raises(StaleBindingSet):
        await transact(store, AOR, lambda cur: BindingChanges(), NOW, attempts=3)  # type: ignore[arg-type]
    assert store.applies == 3


async def test_transact_passes_snapshot_version(storage: Storage) -> None:
    seen: list[int] = []

    def decide(current: BindingSet) -> BindingChanges:
        seen.append(current.version)
        return dataclasses.replace(BindingChanges(upsert=(b("sip:a@h"),)), expected_version=999)

    await transact(storage.location, AOR, decide, NOW)  # its own version wins over 999
    assert seen == [0]
