"""In-process reference implementation of every store.

It defines what the other backends must do: the conformance suite runs against it first.
Atomicity comes for free from asyncio — no method awaits between reading and writing, so
nothing can interleave — which is also why none of these stores may be shared across
threads.  Useful for tests and for single-node deployments that accept losing state on
restart.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from typing import TextIO

from sipline.sip.errors import UsageError
from sipline.storage._logic import (
    ha1_of,
    merge_bindings,
    record_matches,
    refill,
    sort_bindings,
    write_csv_header,
    write_csv_row,
)
from sipline.storage.base import DEFAULT_MAX_BINDINGS
from sipline.storage.errors import (
    RecordExists,
    StaleBindingSet,
    SubscriberExists,
    SubscriberNotFound,
)
from sipline.storage.models import (
    Binding,
    BindingChanges,
    BindingSet,
    CallRecord,
    Subscriber,
    make_subscriber,
)

__all__ = [
    "MemoryLocationStore",
    "MemorySubscriberStore",
    "MemoryCounterStore",
    "MemoryCallRecordStore",
]


class MemoryLocationStore:
    """Bindings in a dict of dicts; versions from one process-wide sequence."""

    def __init__(self, max_bindings: int = DEFAULT_MAX_BINDINGS) -> None:
        if max_bindings < 1:
            raise UsageError("max_bindings must be at least 1")
        self.max_bindings = max_bindings
        self._aors: dict[str, dict[str, Binding]] = {}
        self._versions: dict[str, int] = {}
        # A global sequence, not a per-AOR one: an AOR emptied then re-registered must
        # not reuse a version an old snapshot still holds (the ABA problem).
        self._seq = itertools.count(1)

    def _set(self, aor: str, bindings: dict[str, Binding]) -> int:
        if bindings:
            self._aors[aor] = bindings
            version = self._versions[aor] = next(self._seq)
            return version
        self._aors.pop(aor, None)
        self._versions.pop(aor, None)
        return 0

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        return sort_bindings(b for b in self._aors.get(aor, {}).values() if b.alive(now))

    async def snapshot(self, aor: str, now: float) -> BindingSet:
        return BindingSet(aor, tuple(await self.lookup(aor, now)), self._versions.get(aor, 0))

    async def apply(self, aor: str, changes: BindingChanges, now: float) -> BindingSet:
        version = self._versions.get(aor, 0)
        if changes.expected_version is not None and changes.expected_version != version:
            raise StaleBindingSet(aor, changes.expected_version, version)
        stored = self._aors.get(aor, {})
        merged = merge_bindings(aor, stored.values(), changes, now, self.max_bindings)
        if merged != stored:
            version = self._set(aor, merged)
        return BindingSet(aor, tuple(sort_bindings(merged.values())), version)

    async def upsert(self, binding: Binding, now: float | None = None) -> None:
        at = binding.updated_at if now is None else now
        await self.apply(binding.aor, BindingChanges(upsert=(binding,)), at)

    async def remove(self, aor: str, contact: str) -> bool:
        stored = self._aors.get(aor, {})
        if contact not in stored:
            return False
        self._set(aor, {c: b for c, b in stored.items() if c != contact})
        return True

    async def remove_all(self, aor: str) -> int:
        count = len(self._aors.get(aor, {}))
        self._set(aor, {})
        return count

    async def purge_expired(self, now: float) -> int:
        purged = 0
        for aor, stored in list(self._aors.items()):
            alive = {c: b for c, b in stored.items() if b.alive(now)}
            if len(alive) != len(stored):
                purged += len(stored) - len(alive)
                self._set(aor, alive)
        return purged

    async def all(self, now: float) -> list[Binding]:
        result: list[Binding] = []
        for aor in sorted(self._aors):
            result.extend(await self.lookup(aor, now))
        return result

    async def count(self, now: float | None = None) -> int:
        return sum(
            1
            for stored in self._aors.values()
            for b in stored.values()
            if now is None or b.alive(now)
        )


class MemorySubscriberStore:
    """Subscribers keyed by (username, domain) with a (username, realm) index for digest."""

    def __init__(self) -> None:
        self._subs: dict[tuple[str, str], Subscriber] = {}
        self._by_realm: dict[tuple[str, str], tuple[str, str]] = {}

    async def add(self, subscriber: Subscriber) -> None:
        key = (subscriber.username, subscriber.domain)
        realm_key = (subscriber.username, subscriber.realm)
        if key in self._subs or realm_key in self._by_realm:
            raise SubscriberExists(f"{subscriber.username}@{subscriber.domain} already exists")
        self._subs[key] = subscriber
        self._by_realm[realm_key] = key

    async def get(self, username: str, domain: str) -> Subscriber | None:
        return self._subs.get((username, domain))

    async def list(self, domain: str | None = None) -> Sequence[Subscriber]:
        return [
            s
            for key, s in sorted(self._subs.items(), key=lambda item: (item[0][1], item[0][0]))
            if domain is None or s.domain == domain
        ]

    async def remove(self, username: str, domain: str) -> bool:
        sub = self._subs.pop((username, domain), None)
        if sub is None:
            return False
        del self._by_realm[(sub.username, sub.realm)]
        return True

    def _replace(self, old: Subscriber, new: Subscriber) -> None:
        realm_key = (new.username, new.realm)
        owner = self._by_realm.get(realm_key)
        if owner is not None and owner != (old.username, old.domain):
            raise SubscriberExists(f"{new.username} already exists in realm {new.realm}")
        del self._by_realm[(old.username, old.realm)]
        self._by_realm[realm_key] = (new.username, new.domain)
        self._subs[(new.username, new.domain)] = new

    def _existing(self, username: str, domain: str) -> Subscriber:
        sub = self._subs.get((username, domain))
        if sub is None:
            raise SubscriberNotFound(f"no subscriber {username}@{domain}")
        return sub

    async def set_password(
        self, username: str, domain: str, password: str, realm: str | None = None
    ) -> Subscriber:
        old = self._existing(username, domain)
        new = make_subscriber(
            username,
            domain,
            password,
            realm or old.realm,
            display_name=old.display_name,
            enabled=old.enabled,
            created_at=old.created_at,
        )
        self._replace(old, new)
        return new

    async def set_enabled(self, username: str, domain: str, enabled: bool) -> Subscriber:
        old = self._existing(username, domain)
        new = replace(old, enabled=enabled)
        self._replace(old, new)
        return new

    async def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        key = self._by_realm.get((username, realm))
        sub = None if key is None else self._subs[key]
        return ha1_of(sub, algorithm)


class MemoryCounterStore:
    """Counters and token buckets in dicts; zero counters are deleted to bound memory."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}

    async def acquire(self, key: str, limit: int) -> bool:
        value = self._counters.get(key, 0)
        if value >= limit:
            return False
        self._counters[key] = value + 1
        return True

    async def release(self, key: str) -> int:
        value = self._counters.get(key, 0) - 1
        if value <= 0:
            self._counters.pop(key, None)
            return 0
        self._counters[key] = value
        return value

    async def value(self, key: str) -> int:
        return self._counters.get(key, 0)

    async def take(self, key: str, rate: float, burst: float, now: float) -> bool:
        tokens, updated = self._buckets.get(key, (None, None))
        allowed, tokens_left, updated_at = refill(tokens, updated, rate, burst, now)
        self._buckets[key] = (tokens_left, updated_at)
        return allowed

    async def reset(self) -> None:
        self._counters.clear()
        self._buckets.clear()


class MemoryCallRecordStore:
    """The most recent ``max_records`` CDRs in insertion order (oldest dropped first)."""

    def __init__(self, max_records: int = 100_000) -> None:
        if max_records < 1:
            raise UsageError("max_records must be at least 1")
        self.max_records = max_records
        self._records: OrderedDict[str, CallRecord] = OrderedDict()

    async def add(self, record: CallRecord) -> None:
        if record.id in self._records:
            raise RecordExists(f"call record {record.id} already stored")
        self._records[record.id] = record
        while len(self._records) > self.max_records:
            self._records.popitem(last=False)

    async def get(self, record_id: str) -> CallRecord | None:
        return self._records.get(record_id)

    async def query(
        self,
        since: float | None = None,
        until: float | None = None,
        trunk: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[CallRecord]:
        found = sorted(
            (r for r in self._records.values() if record_matches(r, since, until, trunk, status)),
            key=lambda r: (r.start, r.id),
        )
        return found if limit is None else found[: max(0, limit)]

    async def export_csv(
        self,
        stream: TextIO,
        since: float | None = None,
        until: float | None = None,
        trunk: str | None = None,
        status: str | None = None,
    ) -> int:
        writer = write_csv_header(stream)
        records = await self.query(since, until, trunk, status)
        for record in records:
            write_csv_row(writer, record)
        return len(records)

    async def purge(self, before: float) -> int:
        old = [rid for rid, r in self._records.items() if r.start < before]
        for rid in old:
            del self._records[rid]
        return len(old)
