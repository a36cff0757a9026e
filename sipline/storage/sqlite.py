"""SQLite backend: the default, one file under the data directory.

Theory of operation: every store method is a plain function run inside one transaction
by :class:`~sipline.storage._sqlite.SqliteDatabase` -- reads at once on a read-only
connection, writes group-committed, both on the event loop's thread (its docstring says
why, measured); ``BEGIN IMMEDIATE`` on writes makes each method atomic against other
processes on the same file (the CLI, another worker), and WAL mode lets their readers
proceed while we write.  The location rows of the registrar's hot path live in
:mod:`sipline.storage._location_rows`.

The schema is versioned: ``schema_migrations`` records applied steps and opening a file
applies the missing ones in order, refusing files written by a newer sipline.  The SQL
sticks to what PostgreSQL also accepts, so the call-record part can move there later.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TextIO

from sipline.sip.errors import UsageError
from sipline.storage import _location_rows as rows
from sipline.storage._logic import (
    binding_from_dict,
    binding_order,
    merge_bindings,
    record_from_dict,
    record_to_dict,
    refill,
    sort_bindings,
    subscriber_from_dict,
    subscriber_to_dict,
    write_csv_header,
    write_csv_row,
)
from sipline.storage._sqlite import SCHEMA_VERSION, SqliteDatabase
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
    canonical_algorithm,
    make_subscriber,
)

__all__ = [
    "SCHEMA_VERSION",
    "SqliteDatabase",
    "SqliteLocationStore",
    "SqliteSubscriberStore",
    "SqliteCounterStore",
    "SqliteCallRecordStore",
]

# ---------------------------------------------------------------------------------------
# Location

class SqliteLocationStore:
    def __init__(self, db: SqliteDatabase, max_bindings: int = DEFAULT_MAX_BINDINGS) -> None:
        if max_bindings < 1:
            raise UsageError("max_bindings must be at least 1")
        self.db = db
        self.max_bindings = max_bindings
        self._rows = rows.RowCache()

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        def read(conn: sqlite3.Connection) -> list[Binding]:
            return sort_bindings(b for b in rows.read_bindings(conn, aor, self._rows).values() if b.alive(now))

        return await self.db.run(read, write=False)

    async def snapshot(self, aor: str, now: float) -> BindingSet:
        def read(conn: sqlite3.Connection) -> BindingSet:
            stored, version = rows.read_bindings_and_version(conn, aor, self._rows)
            alive = (b for b in stored.values() if b.alive(now))
            return BindingSet(aor, tuple(sort_bindings(alive)), version)

        return await self.db.run(read, write=False)

    async def apply(self, aor: str, changes: BindingChanges, now: float) -> BindingSet:
        def write(conn: sqlite3.Connection) -> BindingSet:
            stored, version = rows.read_bindings_and_version(conn, aor, self._rows)
            if changes.expected_version is not None and changes.expected_version != version:
                raise StaleBindingSet(aor, changes.expected_version, version)
            merged = merge_bindings(aor, stored.values(), changes, now, self.max_bindings)
            if merged != stored:
                version = rows.write_merged(conn, aor, stored, merged, self._rows)
            return BindingSet(aor, tuple(sort_bindings(merged.values())), version)

        return await self.db.run(write)

    async def update_atomically(
        self, aor: str, decide: Callable[[BindingSet], BindingChanges], now: float
    ) -> BindingSet:
        """Read, decide and write ``aor`` in one write transaction (see ``transact``).

        ``BEGIN IMMEDIATE`` already excludes every other writer of the file, other
        processes included, so the compare-and-swap round trip (snapshot, then apply with
        the expected version) is not needed: one trip to the writer thread instead of two,
        and the write joins the group commit.  ``decide`` runs on the writer thread; if it
        raises, nothing is written and the exception reaches the caller.
        """

        def write(conn: sqlite3.Connection) -> BindingSet:
            stored, version = rows.read_bindings_and_version(conn, aor, self._rows)
            alive = (b for b in stored.values() if b.alive(now))
            changes = decide(BindingSet(aor, tuple(sort_bindings(alive)), version))
            merged = merge_bindings(aor, stored.values(), changes, now, self.max_bindings)
            if merged != stored:
                version = rows.write_merged(conn, aor, stored, merged, self._rows)
            return BindingSet(aor, tuple(sort_bindings(merged.values())), version)

        return await self.db.run(write)

    async def upsert(self, binding: Binding, now: float | None = None) -> None:
        at = binding.updated_at if now is None else now
        await self.apply(binding.aor, BindingChanges(upsert=(binding,)), at)

    async def remove(self, aor: str, contact: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM location_bindings WHERE aor = ? AND contact = ?", (aor, contact)
            )
            if cur.rowcount:
                rows.touch(conn, aor)
            return cur.rowcount > 0

        return await self.db.run(write)

    async def remove_all(self, aor: str) -> int:
        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute("DELETE FROM location_bindings WHERE aor = ?", (aor,))
            conn.execute("DELETE FROM location_aors WHERE aor = ?", (aor,))
            return cur.rowcount

        return await self.db.run(write)

    async def purge_expired(self, now: float) -> int:
        def write(conn: sqlite3.Connection) -> int:
            aors = [
                row[0]
                for row in conn.execute(
                    "SELECT DISTINCT aor FROM location_bindings WHERE expires_at <= ?", (now,)
                )
            ]
            cur = conn.execute("DELETE FROM location_bindings WHERE expires_at <= ?", (now,))
            for aor in aors:
                rows.touch(conn, aor)
            return cur.rowcount

        return await self.db.run(write)

    async def all(self, now: float) -> list[Binding]:
        def read(conn: sqlite3.Connection) -> list[Binding]:
            rows = conn.execute("SELECT * FROM location_bindings WHERE expires_at > ?", (now,))
            found = [binding_from_dict(dict(row)) for row in rows]
            return sorted(found, key=lambda b: (b.aor, binding_order(b)))

        return await self.db.run(read, write=False)

    async def count(self, now: float | None = None) -> int:
        def read(conn: sqlite3.Connection) -> int:
            if now is None:
                row = conn.execute("SELECT COUNT(*) FROM location_bindings").fetchone()
            else:
                row = conn.execute(
                    "SELECT COUNT(*) FROM location_bindings WHERE expires_at > ?", (now,)
                ).fetchone()
            return int(row[0])

        return await self.db.run(read, write=False)


# ---------------------------------------------------------------------------------------
# Subscribers

_SUBSCRIBER_COLUMNS = tuple(subscriber_to_dict(make_subscriber("u", "d", "p", created_at=0.0)))


_HA1_COLUMN = {"MD5": "ha1_md5", "SHA-256": "ha1_sha256", "SHA-512-256": "ha1_sha512_256"}


def _subscriber(row: sqlite3.Row | None) -> Subscriber | None:
    return None if row is None else subscriber_from_dict(dict(row))


class SqliteSubscriberStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    async def add(self, subscriber: Subscriber) -> None:
        d = subscriber_to_dict(subscriber)
        sql = (
            f"INSERT INTO subscribers ({', '.join(_SUBSCRIBER_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _SUBSCRIBER_COLUMNS)})"
        )

        def write(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(sql, tuple(d[c] for c in _SUBSCRIBER_COLUMNS))
            except sqlite3.IntegrityError as exc:
                raise SubscriberExists(
                    f"{subscriber.username}@{subscriber.domain} already exists"
                ) from exc

        await self.db.run(write)

    async def get(self, username: str, domain: str) -> Subscriber | None:
        def read(conn: sqlite3.Connection) -> Subscriber | None:
            return _subscriber(
                conn.execute(
                    "SELECT * FROM subscribers WHERE username = ? AND domain = ?",
                    (username, domain),
                ).fetchone()
            )

        return await self.db.run(read, write=False)

    async def list(self, domain: str | None = None) -> Sequence[Subscriber]:
        def read(conn: sqlite3.Connection) -> list[Subscriber]:
            if domain is None:
                rows = conn.execute("SELECT * FROM subscribers ORDER BY domain, username")
            else:
                rows = conn.execute(
                    "SELECT * FROM subscribers WHERE domain = ? ORDER BY username", (domain,)
                )
            return [subscriber_from_dict(dict(row)) for row in rows]

        return await self.db.run(read, write=False)

    async def remove(self, username: str, domain: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM subscribers WHERE username = ? AND domain = ?", (username, domain)
            )
            return cur.rowcount > 0

        return await self.db.run(write)

    async def _update(
        self, username: str, domain: str, change: Callable[[Subscriber], Subscriber]
    ) -> Subscriber:
        def write(conn: sqlite3.Connection) -> Subscriber:
            old = _subscriber(
                conn.execute(
                    "SELECT * FROM subscribers WHERE username = ? AND domain = ?",
                    (username, domain),
                ).fetchone()
            )
            if old is None:
                raise SubscriberNotFound(f"no subscriber {username}@{domain}")
            new = change(old)
            d = subscriber_to_dict(new)
            assignments = ", ".join(f"{c} = ?" for c in _SUBSCRIBER_COLUMNS)
            try:
                conn.execute(
                    f"UPDATE subscribers SET {assignments} WHERE username = ? AND domain = ?",
                    (*(d[c] for c in _SUBSCRIBER_COLUMNS), username, domain),
                )
            except sqlite3.IntegrityError as exc:
                raise SubscriberExists(f"{username} already exists in realm {new.realm}") from exc
            return new

        return await self.db.run(write)

    async def set_password(
        self, username: str, domain: str, password: str, realm: str | None = None
    ) -> Subscriber:
        def change(old: Subscriber) -> Subscriber:
            return make_subscriber(
                username,
                domain,
                password,
                realm or old.realm,
                display_name=old.display_name,
                enabled=old.enabled,
                created_at=old.created_at,
            )

        return await self._update(username, domain, change)

    async def set_enabled(self, username: str, domain: str, enabled: bool) -> Subscriber:
        return await self._update(username, domain, lambda old: replace(old, enabled=enabled))

    async def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        # Every digest check reads this: one statement for the one column it needs, rather
        # than the whole subscriber row turned into a Subscriber (ha1_of's rules, inlined).
        column = _HA1_COLUMN[canonical_algorithm(algorithm)]
        row = await self.db.read_one(
            f"SELECT enabled, {column} FROM subscribers WHERE username = ? AND realm = ?",
            (username, realm),
        )
        if row is None or not row[0]:
            return None
        value: str | None = row[1]
        return value


# ---------------------------------------------------------------------------------------
# Counters


class SqliteCounterStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    async def acquire(self, key: str, limit: int) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT value FROM counters WHERE key = ?", (key,)).fetchone()
            value = 0 if row is None else int(row[0])
            if value >= limit:
                return False
            conn.execute(
                "INSERT INTO counters (key, value) VALUES (?, 1) "
                "ON CONFLICT (key) DO UPDATE SET value = counters.value + 1",
                (key,),
            )
            return True

        return await self.db.run(write)

    async def release(self, key: str) -> int:
        def write(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value FROM counters WHERE key = ?", (key,)).fetchone()
            value = 0 if row is None else int(row[0]) - 1
            if value <= 0:
                conn.execute("DELETE FROM counters WHERE key = ?", (key,))
                return 0
            conn.execute("UPDATE counters SET value = ? WHERE key = ?", (value, key))
            return value

        return await self.db.run(write)

    async def value(self, key: str) -> int:
        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value FROM counters WHERE key = ?", (key,)).fetchone()
            return 0 if row is None else int(row[0])

        return await self.db.run(read, write=False)

    async def take(self, key: str, rate: float, burst: float, now: float) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT tokens, updated FROM token_buckets WHERE key = ?", (key,)
            ).fetchone()
            tokens, updated = (None, None) if row is None else (row[0], row[1])
            allowed, left, at = refill(tokens, updated, rate, burst, now)
            conn.execute(
                "INSERT INTO token_buckets (key, tokens, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, "
                "updated = excluded.updated",
                (key, left, at),
            )
            return allowed

        return await self.db.run(write)

    async def reset(self) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM counters")
            conn.execute("DELETE FROM token_buckets")

        await self.db.run(write)


# ---------------------------------------------------------------------------------------
# Call records

# Record field -> column: start/end are SQL keywords, so times carry a suffix.
_RECORD_COLUMN = {
    "start": "start_time",
    "ring": "ring_time",
    "answer": "answer_time",
    "end": "end_time",
}
_RECORD_FIELDS = tuple(
    record_to_dict(CallRecord(id="x", call_id="", start=0.0, caller="", callee="", status=""))
)
_RECORD_COLUMNS = tuple(_RECORD_COLUMN.get(f, f) for f in _RECORD_FIELDS)
_EXPORT_PAGE = 500


def _record(row: sqlite3.Row) -> CallRecord:
    d = dict(row)
    return record_from_dict({f: d[_RECORD_COLUMN.get(f, f)] for f in _RECORD_FIELDS})


def _where(
    since: float | None, until: float | None, trunk: str | None, status: str | None
) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:
        clauses.append("start_time >= ?")
        params.append(since)
    if until is not None:
        clauses.append("start_time < ?")
        params.append(until)
    if trunk is not None:
        clauses.append("(from_trunk = ? OR to_trunk = ?)")
        params += [trunk, trunk]
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    return clauses, params


class SqliteCallRecordStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    async def add(self, record: CallRecord) -> None:
        d = record_to_dict(record)
        sql = (
            f"INSERT INTO call_records ({', '.join(_RECORD_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _RECORD_COLUMNS)})"
        )

        def write(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(sql, tuple(d[f] for f in _RECORD_FIELDS))
            except sqlite3.IntegrityError as exc:
                raise RecordExists(f"call record {record.id} already stored") from exc

        await self.db.run(write)

    async def get(self, record_id: str) -> CallRecord | None:
        def read(conn: sqlite3.Connection) -> CallRecord | None:
            row = conn.execute("SELECT * FROM call_records WHERE id = ?", (record_id,)).fetchone()
            return None if row is None else _record(row)

        return await self.db.run(read, write=False)

    async def _page(
        self,
        clauses: list[str],
        params: list[Any],
        limit: int | None,
        after: tuple[float, str] | None = None,
    ) -> list[CallRecord]:
        clauses = list(clauses)
        params = list(params)
        if after is not None:
            # Keyset pagination: stable and O(page) however deep the export goes.
            clauses.append("(start_time > ? OR (start_time = ? AND id > ?))")
            params += [after[0], after[0], after[1]]
        sql = "SELECT * FROM call_records"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY start_time, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, limit))

        def read(conn: sqlite3.Connection) -> list[CallRecord]:
            return [_record(row) for row in conn.execute(sql, params)]

        return await self.db.run(read, write=False)

    async def query(
        self,
        since: float | None = None,
        until: float | None = None,
        trunk: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[CallRecord]:
        clauses, params = _where(since, until, trunk, status)
        return await self._page(clauses, params, limit)

    async def export_csv(
        self,
        stream: TextIO,
        since: float | None = None,
        until: float | None = None,
        trunk: str | None = None,
        status: str | None = None,
    ) -> int:
        clauses, params = _where(since, until, trunk, status)
        writer = write_csv_header(stream)
        written = 0
        after: tuple[float, str] | None = None
        while True:
            page = await self._page(clauses, params, _EXPORT_PAGE, after)
            for record in page:
                write_csv_row(writer, record)
            written += len(page)
            if len(page) < _EXPORT_PAGE:
                return written
            after = (page[-1].start, page[-1].id)

    async def purge(self, before: float) -> int:
        def write(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM call_records WHERE start_time < ?", (before,)).rowcount

        return await self.db.run(write)
