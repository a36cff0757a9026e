"""The storage contracts the roles program against.

Every method is a coroutine even when the memory backend could answer at once: callers
must never assume the data is in-process, because with the Redis backend several sipline
nodes share it and any call may cross the network.  The protocols are structural
(:class:`typing.Protocol`), so tests can substitute a fake without inheriting anything.

Concurrency is the interesting part.  A REGISTER is a read-modify-write of one AOR
(RFC 3261 §10.3 step 7 compares the stored Call-ID/CSeq of each contact), and two
REGISTERs for the same AOR may arrive on two nodes at once.  Rather than locking, the
registrar takes a :class:`BindingSet` snapshot, runs its pure decision function on it and
hands the resulting :class:`BindingChanges` to ``apply`` with the snapshot's version; the
store applies them only if the version is unchanged (compare-and-swap).  :func:`transact`
wraps that loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol, TextIO, runtime_checkable

from sipline.storage.errors import StaleBindingSet
from sipline.storage.models import Binding, BindingChanges, BindingSet, CallRecord, Subscriber

__all__ = [
    "DEFAULT_MAX_BINDINGS",
    "LocationStore",
    "SubscriberStore",
    "CounterStore",
    "CallRecordStore",
    "Decision",
    "transact",
]

#: Default bound on contacts per AOR; a runaway UA cannot grow one AOR without limit.
DEFAULT_MAX_BINDINGS = 16


@runtime_checkable
class LocationStore(Protocol):
    """Bindings of address-of-record to contacts (the location service, RFC 3261 §10)."""

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of ``aor`` at ``now``: q descending, then most recently updated."""
        ...

    async def snapshot(self, aor: str, now: float) -> BindingSet:
        """Live bindings plus the version to pass back in ``BindingChanges.expected_version``."""
        ...

    async def apply(self, aor: str, changes: BindingChanges, now: float) -> BindingSet:
        """Apply one REGISTER's changes atomically and return the resulting set.

        Raises StaleBindingSet when ``changes.expected_version`` no longer matches and
        TooManyBindings when the AOR would exceed the store's bound; neither writes.
        """
        ...

    async def upsert(self, binding: Binding, now: float | None = None) -> None:
        """Insert or replace the binding ``(binding.aor, binding.contact)`` unconditionally.

        ``now`` (default: ``binding.updated_at``) decides which other bindings count as
        expired for the per-AOR bound.
        """
        ...

    async def remove(self, aor: str, contact: str) -> bool:
        """Delete one binding; False when there was none."""
        ...

    async def remove_all(self, aor: str) -> int:
        """Delete every binding of ``aor`` (``Contact: *``); returns how many were stored."""
        ...

    async def purge_expired(self, now: float) -> int:
        """Delete bindings expired at ``now``; returns how many went."""
        ...

    async def all(self, now: float) -> list[Binding]:
        """Every live binding, grouped by AOR (sorted), each group in lookup order."""
        ...

    async def count(self, now: float | None = None) -> int:
        """Number of stored bindings; with ``now``, only those still alive."""
        ...


class Decision(Protocol):
    """The registrar's pure step: from the current bindings, decide the changes."""

    def __call__(self, current: BindingSet) -> BindingChanges: ...


async def transact(
    store: LocationStore,
    aor: str,
    decide: Decision | Callable[[BindingSet], BindingChanges],
    now: float,
    *,
    attempts: int = 8,
) -> BindingSet:
    """Snapshot, decide, apply with compare-and-swap; retry the lot if another writer won.

    ``decide`` may raise to abort (say, an out-of-order CSeq that must answer 500): nothing
    is written then.  It may run several times, so it must not have side effects.  After
    ``attempts`` lost races the last StaleBindingSet propagates; under that much contention
    on one AOR answering 500 and letting the UA retry is the sane outcome.
    """
    atomic = getattr(store, "update_atomically", None)
    if atomic is not None:
        # A store that can read, decide and write under one lock (SQLite's write
        # transaction) needs no compare-and-swap loop.
        result: BindingSet = await atomic(aor, decide, now)
        return result
    error: StaleBindingSet | None = None
    for _ in range(max(1, attempts)):
        current = await store.snapshot(aor, now)
        changes = dataclasses.replace(decide(current), expected_version=current.version)
        try:
            return await store.apply(aor, changes, now)
        except StaleBindingSet as exc:
            error = exc
    assert error is not None
    raise error


@runtime_checkable
class SubscriberStore(Protocol):
    """Users and their digest credentials (HA1 only, never passwords)."""

    async def add(self, subscriber: Subscriber) -> None:
        """Store a new subscriber; SubscriberExists if (username, domain) or
        (username, realm) is taken, since the digest lookup is by realm."""
        ...

    async def get(self, username: str, domain: str) -> Subscriber | None: ...

    async def list(self, domain: str | None = None) -> Sequence[Subscriber]:
        """Subscribers sorted by (domain, username), optionally of one domain."""
        ...

    async def remove(self, username: str, domain: str) -> bool: ...

    async def set_password(
        self, username: str, domain: str, password: str, realm: str | None = None
    ) -> Subscriber:
        """Recompute every HA1 (for ``realm``, default the current one); SubscriberNotFound."""
        ...

    async def set_enabled(self, username: str, domain: str, enabled: bool) -> Subscriber: ...

    async def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """HA1 for digest verification, None if unknown, disabled or hash not stored.

        ``algorithm`` is the challenge's name ("MD5", "SHA-256", "SHA-512-256", with or
        without "-sess").  Unknown algorithms raise UsageError: the auth layer should only
        ever offer ones we support.
        """
        ...


@runtime_checkable
class CounterStore(Protocol):
    """Shared counters: concurrent channels per key and calls-per-second buckets."""

    async def acquire(self, key: str, limit: int) -> bool:
        """Increment ``key`` if it is below ``limit``; never lets concurrent callers overshoot."""
        ...

    async def release(self, key: str) -> int:
        """Decrement ``key`` (not below zero) and return the new value."""
        ...

    async def value(self, key: str) -> int: ...

    async def take(self, key: str, rate: float, burst: float, now: float) -> bool:
        """Take one token from bucket ``key`` refilled at ``rate``/s up to ``burst``."""
        ...

    async def reset(self) -> None:
        """Forget every counter and bucket (a single node restarting with no live calls)."""
        ...


@runtime_checkable
class CallRecordStore(Protocol):
    """Call detail records: append-only, queried by time window."""

    async def add(self, record: CallRecord) -> None:
        """Store a record; RecordExists if its id was already stored."""
        ...

    async def get(self, record_id: str) -> CallRecord | None: ...

    async def query(
        self,
        since: float | None = None,
        until: float | None = None,
        trunk: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[CallRecord]:
        """Records with since <= start < until, on ``trunk`` (either side), ordered by
        start then id; at most ``limit`` of them."""
        ...

    async def export_csv(
        self,
        stream: TextIO,
        since: float | None = None,
        until: float | None = None,
        trunk: str | None = None,
        status: str | None = None,
    ) -> int:
        """Write matching records as CSV (header first) and return the row count."""
        ...

    async def purge(self, before: float) -> int:
        """Delete records that started before ``before`` (retention); returns the count."""
        ...
