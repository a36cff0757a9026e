"""PostgreSQL call-record store: CDRs in the operator's reporting database.

Call records are the one kind of data an operator wants outside sipline: billing, BI
tools and SQL reports read them, several SBC nodes feed one table, and retention is the
database team's business.  Registrations and counters stay in SQLite or Redis; only
:class:`~sipline.storage.base.CallRecordStore` lives here.

Theory of operation.  A call ends on the SBC's hot path, so ``add()`` must neither do one
round trip per record under a burst nor hang the call's teardown when the database is
away:

* ``add()`` appends the record to a bounded in-process queue and one writer task drains
  it: everything queued while a batch was in flight goes into the next batch, a single
  ``INSERT ... SELECT FROM unnest(...)`` of up to ``batch_size`` rows (one round trip).
  While the database answers, ``add()`` returns once its batch committed, so a read that
  follows sees the record and a duplicate id raises RecordExists, as with SQLite.
* When the database cannot be reached (refused, timed out, shutting down, read-only
  after a failover, out of disk), the batch stays queued, one ERROR line says so, the
  waiting ``add()`` calls return (the record is accepted, and will be written), and the
  writer retries with exponential backoff.  Recovery is logged with the count written.
* The queue is bounded by ``queue_limit``: below it nothing is lost; past it ``add()``
  raises StorageUnavailable naming the dropped record, the drop count is logged (at most
  every few seconds) and :meth:`PostgresCallRecordStore.stats` exposes it.
* A retried batch may already have committed (the connection died after COMMIT but
  before the answer), so inserts are ``ON CONFLICT (id) DO NOTHING``: a retried record
  that finds an identical row counts as written, which makes delivery idempotent.
* A row PostgreSQL itself refuses (a NUL byte in a text field, an invalid JSON escape)
  would block the queue forever if retried, so such a batch is re-sent row by row and
  only the refused rows are rejected, each with an ERROR line.

The schema is versioned like SQLite's: ``sipline_schema_migrations`` records applied
steps, opening applies the missing ones inside one transaction under an advisory lock
(nodes starting together do not race) and refuses a database written by a newer sipline.
Ids are ``COLLATE "C"`` so ordering matches SQLite's byte order whatever the cluster's
locale.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from sipline.sip.errors import UsageError
from sipline.storage._logic import (
    record_from_dict,
    record_to_dict,
    redact_url,
    write_csv_header,
    write_csv_row,
)
from sipline.storage.errors import (
    RecordExists,
    SchemaError,
    StorageError,
    StorageUnavailable,
)
from sipline.storage.models import CallRecord

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    _Conn = PoolConnectionProxy[asyncpg.Record]

__all__ = [
    "SCHEMA_VERSION",
    "PostgresOptions",
    "RecordQueueStats",
    "PostgresCallRecordStore",
    "redact_url",
]

_log = logging.getLogger(__name__)

# Each step runs in one transaction.  Never edit a released step: append a new one.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE call_records (
            id TEXT COLLATE "C" PRIMARY KEY,
            call_id TEXT NOT NULL,
            start_time DOUBLE PRECISION NOT NULL,
            ring_time DOUBLE PRECISION,
            answer_time DOUBLE PRECISION,
            end_time DOUBLE PRECISION,
            caller TEXT NOT NULL,
            callee TEXT NOT NULL,
            callee_normalized TEXT NOT NULL,
            from_trunk TEXT,
            to_trunk TEXT,
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            hangup_by TEXT NOT NULL,
            duration DOUBLE PRECISION NOT NULL,
            pdd DOUBLE PRECISION,
            media_stats TEXT,
            extra JSONB NOT NULL)""",
        "CREATE INDEX call_records_start ON call_records (start_time, id)",
        "CREATE INDEX call_records_from_trunk ON call_records (from_trunk, start_time)",
        "CREATE INDEX call_records_to_trunk ON call_records (to_trunk, start_time)",
    ),
)

#: The schema version this code writes.
SCHEMA_VERSION = len(_MIGRATIONS)
_SCHEMA_TABLE = "sipline_schema_migrations"
#: pg_advisory_xact_lock key serialising migrations ("sipl" in ASCII).
_MIGRATION_LOCK = 0x7369706C
#: Rows per fetch when streaming a CSV export through a server-side cursor.
_EXPORT_PAGE = 500
#: Seconds between two log lines about dropped records.
_DROP_LOG_INTERVAL = 5.0

# Record field -> column (start/end are SQL keywords), and each column's array type.
_RECORD_COLUMN = {"start": "start_time", "ring": "ring_time", "answer": "answer_time", "end": "end_time"}
_FLOATS = frozenset({"start", "ring", "answer", "end", "duration", "pdd"})
_RECORD_FIELDS = tuple(record_to_dict(CallRecord(id="x", call_id="", start=0.0, caller="", callee="", status="")))
_COLUMNS = tuple(_RECORD_COLUMN.get(f, f) for f in _RECORD_FIELDS)
_INSERT = (
    f"INSERT INTO call_records ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join(c + '::jsonb' if c == 'extra' else c for c in _COLUMNS)} FROM unnest("
    + ", ".join(f"${n}::{'float8' if f in _FLOATS else 'text'}[]" for n, f in enumerate(_RECORD_FIELDS, 1))
    + f") AS t({', '.join(_COLUMNS)}) ON CONFLICT (id) DO NOTHING RETURNING id"
)

# Errors that mean "this row is wrong", as opposed to "the database is away".
_ROW_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
# Errors a read turns into StorageUnavailable (writes retry on anything but _ROW_ERRORS).
_DOWN_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                asyncpg.OperatorInterventionError, asyncpg.InsufficientResourcesError,
                asyncpg.ReadOnlySQLTransactionError, asyncpg.InvalidAuthorizationSpecificationError)


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    """Tuning of the store; each may be given as a query parameter of the URL."""

    #: Most connections the pool opens (the writer uses one, reads the others).
    pool_size: int = 4
    #: Most records written by one INSERT.
    batch_size: int = 200
    #: Most records held while the database is unreachable; more are dropped and counted.
    queue_limit: int = 10_000
    #: Seconds allowed to connect or to run one statement before it counts as down.
    timeout: float = 5.0
    #: First and longest pause between two attempts while the database is down.
    retry_min: float = 0.5
    retry_max: float = 10.0
    #: Seconds close() keeps trying to write what is still queued.
    close_timeout: float = 5.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise UsageError(f"{f.name} must be positive, got {getattr(self, f.name)}")
        if self.retry_max < self.retry_min:
            raise UsageError("retry_max must not be below retry_min")

    @classmethod
    def from_url(cls, url: str) -> tuple[str, PostgresOptions]:
        """Split our own query parameters off ``url``: asyncpg would send unknown ones to
        the server as settings, which rejects them."""
        parts = urlsplit(url)
        own = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        kept = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in own:
                kept.append((key, value))
                continue
            try:
                values[key] = int(value) if own[key] == "int" else float(value)
            except ValueError:
                raise UsageError(f"{key} must be a number, got {value!r}") from None
        return urlunsplit(parts._replace(query=urlencode(kept))), cls(**values)


@dataclass(frozen=True, slots=True)
class RecordQueueStats:
    """What the writer has done since the store opened (metrics, ``sipline`` status)."""

    #: Records accepted but not yet committed.
    queued: int
    #: Records committed, and the INSERT statements that carried them.
    written: int
    batches: int
    #: Records refused because the queue was full (lost).
    dropped: int
    #: Records PostgreSQL refused as invalid (lost, each logged).
    rejected: int
    #: Failed write attempts (each followed by a retry).
    failures: int
    #: False while the writer cannot reach the database.
    reachable: bool


@dataclass(slots=True, eq=False)
class _Pending:
    record: CallRecord
    future: asyncio.Future[None]
    #: An earlier attempt may have committed it: an identical stored row means success.
    retried: bool = False


def _row(record: CallRecord) -> dict[str, Any]:
    d = record_to_dict(record)
    for name in _FLOATS:
        if d[name] is not None:
            d[name] = float(d[name])
    return d


def _record(row: asyncpg.Record) -> CallRecord:
    d = dict(row.items())
    return record_from_dict({f: d[_RECORD_COLUMN.get(f, f)] for f in _RECORD_FIELDS})


def _where(since: float | None, until: float | None, trunk: str | None,
           status: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if since is not None:
        clauses.append(f"start_time >= {param(float(since))}")
    if until is not None:
        clauses.append(f"start_time < {param(float(until))}")
    if trunk is not None:
        p = param(trunk)
        clauses.append(f"(from_trunk = {p} OR to_trunk = {p})")
    if status is not None:
        clauses.append(f"status = {param(status)}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


async def _migrate(conn: _Conn) -> int:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {_SCHEMA_TABLE} ("
                           "version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        current = int(await conn.fetchval(f"SELECT COALESCE(MAX(version), 0) FROM {_SCHEMA_TABLE}"))
        if current > SCHEMA_VERSION:
            raise SchemaError(f"call-record schema {current} is newer than this sipline ({SCHEMA_VERSION})")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version - 1]:
                await conn.execute(statement)
            # Wall clock on purpose: an audit trail for operators.
            await conn.execute(f"INSERT INTO {_SCHEMA_TABLE} (version, applied_at) VALUES ($1, $2)",
                               version, time.time())
    return SCHEMA_VERSION


class PostgresCallRecordStore:
    """A :class:`~sipline.storage.base.CallRecordStore` on PostgreSQL (module docstring)."""

    def __init__(self, pool: asyncpg.Pool, options: PostgresOptions, name: str) -> None:
        self._pool = pool
        self.options = options
        #: The URL without its password.
        self.name = name
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._reachable = True
        self._written = self._batches = self._dropped = self._rejected = self._failures = 0
        self._drops_logged = 0
        self._drop_logged_at = -_DROP_LOG_INTERVAL
        self._writer = asyncio.get_running_loop().create_task(self._run(), name="sipline-cdr-writer")

    @classmethod
    async def open(cls, url: str, options: PostgresOptions | None = None) -> PostgresCallRecordStore:
        """Connect, apply missing migrations and start the writer.

        Raises StorageUnavailable when the database cannot be reached now (a node should
        not start believing its records go somewhere), SchemaError when it is newer.
        """
        dsn, from_url = PostgresOptions.from_url(url)
        options = options or from_url
        name = redact_url(url)
        try:
            # min_size=0: a pool keeping a floor would log a traceback for each reconnection
            # it tries on its own during an outage; the writer's retries say it once.
            pool = await asyncpg.create_pool(dsn, min_size=0, max_size=options.pool_size,
                                             timeout=options.timeout, command_timeout=options.timeout)
        except (*_DOWN_ERRORS, asyncpg.PostgresError) as exc:
            raise StorageUnavailable(f"cannot connect to PostgreSQL at {name}: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await _migrate(conn)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, _DOWN_ERRORS):
                raise StorageUnavailable(f"PostgreSQL at {name} failed during migration: {exc}") from exc
            if isinstance(exc, asyncpg.PostgresError):  # say, no right to create tables
                raise SchemaError(f"migrating the call-record schema at {name} failed: {exc}") from exc
            raise
        return cls(pool, options, name)

    # -- writes ------------------------------------------------------------------------------

    async def add(self, record: CallRecord) -> None:
        if self._closing:
            raise StorageUnavailable(f"call-record store {self.name} is closed")
        if len(self._queue) >= self.options.queue_limit:
            self._dropped += 1
            self._log_drops()
            raise StorageUnavailable(
                f"call-record queue for {self.name} is full ({self.options.queue_limit} waiting): "
                f"record {record.id} dropped")
        pending = _Pending(record, asyncio.get_running_loop().create_future())
        if not self._reachable:
            pending.future.set_result(None)  # accepted: the writer is retrying
        self._queue.append(pending)
        self._wake.set()
        await pending.future

    def stats(self) -> RecordQueueStats:
        return RecordQueueStats(queued=len(self._queue), written=self._written, batches=self._batches,
                                dropped=self._dropped, rejected=self._rejected, failures=self._failures,
                                reachable=self._reachable)

    def _log_drops(self) -> None:
        now = time.monotonic()
        if now - self._drop_logged_at >= _DROP_LOG_INTERVAL:
            _log.error("call-record queue for %s full (%d records): %d records dropped (%d in total)",
                       self.name, self.options.queue_limit, self._dropped - self._drops_logged, self._dropped)
            self._drop_logged_at, self._drops_logged = now, self._dropped

    async def _run(self) -> None:
        """The writer: drain the queue in batches, retrying with backoff while down."""
        delay = self.options.retry_min
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue[i] for i in range(min(len(self._queue), self.options.batch_size))]
            try:
                await self._write(batch)
            except Exception as exc:
                self._failures += 1
                self._went_down(exc)
                if self._closing:
                    return  # close() reports what is left
                self._wake.clear()
                try:  # close() wakes us for one last attempt
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, self.options.retry_max)
                continue
            for _ in batch:
                self._queue.popleft()
            delay = self.options.retry_min
            if not self._reachable:
                self._reachable = True
                _log.warning("PostgreSQL at %s reachable again: writing %d queued call records "
                             "(%d dropped in total)", self.name, len(self._queue) + len(batch), self._dropped)

    def _went_down(self, exc: Exception) -> None:
        for pending in self._queue:
            pending.retried = True
            if not pending.future.done():
                pending.future.set_result(None)  # accepted, will be retried
        if self._reachable:
            self._reachable = False
            _log.error("cannot write call records to PostgreSQL at %s (%s: %s): %d queued (bound %d), "
                       "retrying every %g-%gs", self.name, type(exc).__name__, exc, len(self._queue),
                       self.options.queue_limit, self.options.retry_min, self.options.retry_max)

    async def _write(self, batch: Sequence[_Pending]) -> None:
        firsts: dict[str, _Pending] = {}
        for pending in batch:
            firsts.setdefault(pending.record.id, pending)
        rejected: dict[str, StorageError] = {}
        async with self._pool.acquire(timeout=self.options.timeout) as conn:
            try:
                inserted = await self._insert(conn, list(firsts.values()))
            except _ROW_ERRORS:
                inserted, rejected = await self._insert_one_by_one(conn, list(firsts.values()))
            conflicts = {p for p in batch
                         if p.record.id not in rejected
                         and (p.record.id not in inserted or firsts[p.record.id] is not p)}
            stored: dict[str, CallRecord] = {}
            if any(p.retried for p in conflicts):
                rows = await conn.fetch("SELECT * FROM call_records WHERE id = ANY($1::text[])",
                                        [p.record.id for p in conflicts])
                stored = {row["id"]: _record(row) for row in rows}
        self._batches += 1
        for pending in batch:
            record = pending.record
            if record.id in rejected:
                _settle(pending, rejected[record.id])
            elif pending not in conflicts or (pending.retried and stored.get(record.id) == record):
                # Written now, or by an earlier attempt whose answer was lost.
                self._written += 1
                _settle(pending, None)
            elif pending.future.done():  # accepted during an outage: nobody is waiting to hear
                self._rejected += 1
                _log.error("call record %s not written to %s: another record with this id is stored",
                           record.id, self.name)
            else:
                pending.future.set_exception(RecordExists(f"call record {record.id} already stored"))

    async def _insert(self, conn: _Conn, batch: Sequence[_Pending]) -> set[str]:
        rows = [_row(p.record) for p in batch]
        columns = [[row[f] for row in rows] for f in _RECORD_FIELDS]
        return {r["id"] for r in await conn.fetch(_INSERT, *columns)}

    async def _insert_one_by_one(
        self, conn: _Conn, batch: Sequence[_Pending]
    ) -> tuple[set[str], dict[str, StorageError]]:
        """After PostgreSQL refused a batch: find the refused rows and write the others."""
        inserted: set[str] = set()
        rejected: dict[str, StorageError] = {}
        for pending in batch:
            try:
                inserted |= await self._insert(conn, [pending])
            except _ROW_ERRORS as exc:
                self._rejected += 1
                _log.error("PostgreSQL at %s refused call record %s: %s", self.name, pending.record.id, exc)
                rejected[pending.record.id] = StorageError(
                    f"PostgreSQL refused call record {pending.record.id}: {exc}")
        return inserted, rejected

    # -- reads -------------------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Conn]:
        if self._closing:
            raise StorageUnavailable(f"call-record store {self.name} is closed")
        try:
            async with self._pool.acquire(timeout=self.options.timeout) as conn:
                yield conn
        except _DOWN_ERRORS as exc:
            raise StorageUnavailable(f"PostgreSQL at {self.name} unreachable: {exc}") from exc

    async def get(self, record_id: str) -> CallRecord | None:
        async with self._connection() as conn:
            row = await conn.fetchrow("SELECT * FROM call_records WHERE id = $1", record_id)
        return None if row is None else _record(row)

    async def query(self, since: float | None = None, until: float | None = None, trunk: str | None = None,
                    status: str | None = None, limit: int | None = None) -> list[CallRecord]:
        where, params = _where(since, until, trunk, status)
        sql = f"SELECT * FROM call_records{where} ORDER BY start_time, id"
        if limit is not None:
            params.append(max(0, limit))
            sql += f" LIMIT ${len(params)}"
        async with self._connection() as conn:
            return [_record(row) for row in await conn.fetch(sql, *params)]

    async def export_csv(self, stream: TextIO, since: float | None = None, until: float | None = None,
                         trunk: str | None = None, status: str | None = None) -> int:
        where, params = _where(since, until, trunk, status)
        sql = f"SELECT * FROM call_records{where} ORDER BY start_time, id"
        written = 0
        async with self._connection() as conn:
            # One snapshot, streamed through a server-side cursor: memory stays at one page
            # however many records match.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                writer = write_csv_header(stream)
                async for row in conn.cursor(sql, *params, prefetch=_EXPORT_PAGE):
                    write_csv_row(writer, _record(row))
                    written += 1
        return written

    async def purge(self, before: float) -> int:
        async with self._connection() as conn:
            done = await conn.execute("DELETE FROM call_records WHERE start_time < $1", float(before))
        return int(done.rsplit(" ", 1)[-1])

    async def schema_version(self) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval(f"SELECT MAX(version) FROM {_SCHEMA_TABLE}"))

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Write what is queued (for at most ``close_timeout`` seconds), then disconnect.

        Records still queued after that are lost: they are counted in ``dropped`` and
        logged at ERROR with their ids, so billing can reconcile them.
        """
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), self.options.close_timeout)
        except TimeoutError:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
        if self._queue:
            lost = [p.record.id for p in self._queue]
            self._dropped += len(lost)
            _log.error("PostgreSQL at %s unreachable at shutdown: %d call records not written: %s",
                       self.name, len(lost), " ".join(lost))
            for pending in self._queue:
                _settle(pending, StorageUnavailable(f"call record {pending.record.id} not written: "
                                                    f"{self.name} unreachable at shutdown"))
            self._queue.clear()
        try:
            await asyncio.wait_for(self._pool.close(), self.options.close_timeout)
        except (TimeoutError, *_DOWN_ERRORS):
            self._pool.terminate()


def _settle(pending: _Pending, error: BaseException | None) -> None:
    if pending.future.done():
        return
    if error is None:
        pending.future.set_result(None)
    else:
        pending.future.set_exception(error)

