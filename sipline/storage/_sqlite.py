"""The SQLite file itself: connection, worker thread, schema migrations.

Kept apart from the stores so the schema history reads in one place.  See
:mod:`sipline.storage.sqlite` for the theory of operation.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sipline.storage.errors import SchemaError, StorageUnavailable

__all__ = ["SCHEMA_VERSION", "SqliteDatabase"]

T = TypeVar("T")

# Each migration is a list of statements run in one transaction.  Never edit a released
# step: append a new one, so every existing file walks the same path.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE sequences (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL)""",
        "INSERT INTO sequences (name, value) VALUES ('location', 0)",
        """CREATE TABLE location_aors (
            aor TEXT PRIMARY KEY,
            version INTEGER NOT NULL)""",
        """CREATE TABLE location_bindings (
            aor TEXT NOT NULL,
            contact TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            q DOUBLE PRECISION NOT NULL,
            call_id TEXT NOT NULL,
            cseq INTEGER NOT NULL,
            path TEXT NOT NULL,
            instance_id TEXT,
            reg_id INTEGER,
            received TEXT,
            connection_id TEXT,
            node_id TEXT,
            user_agent TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (aor, contact))""",
        "CREATE INDEX location_bindings_expiry ON location_bindings (expires_at)",
        """CREATE TABLE subscribers (
            username TEXT NOT NULL,
            domain TEXT NOT NULL,
            realm TEXT NOT NULL,
            ha1_md5 TEXT NOT NULL,
            ha1_sha256 TEXT NOT NULL,
            ha1_sha512_256 TEXT,
            enabled INTEGER NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            display_name TEXT NOT NULL,
            PRIMARY KEY (username, domain),
            UNIQUE (username, realm))""",
        """CREATE TABLE counters (
            key TEXT PRIMARY KEY,
            value INTEGER NOT NULL)""",
        """CREATE TABLE token_buckets (
            key TEXT PRIMARY KEY,
            tokens DOUBLE PRECISION NOT NULL,
            updated DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE call_records (
            id TEXT PRIMARY KEY,
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
            extra TEXT NOT NULL)""",
        "CREATE INDEX call_records_start ON call_records (start_time, id)",
    ),
)

#: Seconds between WAL checkpoints of a file database (on the worker thread).
CHECKPOINT_INTERVAL = 1.0

#: Seconds a write waits for another process's write lock before it fails.
BUSY_TIMEOUT = 5.0

#: The schema version this code writes.
SCHEMA_VERSION = len(_MIGRATIONS)


def _connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, the module must not.
    # check_same_thread=False: created on the worker thread, the writer of a file database
    # is then used on the event loop's thread (see SqliteDatabase); never two at once.
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a process crash; only an OS crash may lose the last
    # commits, which for registrations (refreshed anyway) is the right trade for latency.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _migrate(conn: sqlite3.Connection) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        current = row[0] or 0
        if current > SCHEMA_VERSION:
            raise SchemaError(
                f"database schema {current} is newer than this sipline ({SCHEMA_VERSION})"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version - 1]:
                conn.execute(statement)
            # Wall-clock on purpose: this is an audit trail for operators.
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


class SqliteDatabase:
    """A file, its connections, and the worker thread for what may wait on the disk.

    Measured under SIPp load (bench/register_vs_kamailio.py, 2026-11-22 notes in
    bench/RESULTS.md): shipping every statement to a worker thread cost more than the
    statement -- a future, a self-pipe wake-up, and above all the GIL bouncing between the
    loop and a thread running Python -- so, for a file database:

    * Reads run at once on the caller's (event loop) thread through a read-only
      connection.  In WAL mode a reader never waits for a writer: a read is a B-tree walk
      in the page cache, tens of microseconds.
    * Writes are group-committed on the loop thread: the writes submitted during one loop
      iteration go into one ``BEGIN IMMEDIATE`` ... ``COMMIT``, each in its own SAVEPOINT
      so that one raising rolls back alone.  With ``synchronous=NORMAL`` a WAL commit is a
      write() into the page cache, no fsync.  A write's future resolves only after its
      batch committed, so a registration is answered 200 only once it survives a
      process restart (an OS crash may lose the last commits, as before).
    * The one disk wait left, the checkpoint that copies the WAL back into the database
      and fsyncs, runs on the worker thread (``PASSIVE``, once a second) instead of
      inside whichever commit crossed the autocheckpoint threshold.
    * Waiting for another process's write lock (the CLI, another worker) happens on the
      loop thread; those locks are held for the length of one batch.

    A ``:memory:`` database cannot be opened twice; it keeps everything on the thread.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sipline-sqlite"
        )
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._batch: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None
        self._checkpoint: asyncio.TimerHandle | None = None
        self._checkpointer: sqlite3.Connection | None = None
        #: When the queued writes first found the write lock taken (see _flush_inline).
        self._busy_since: float | None = None
        #: How many write batches were committed, and how many writes they held (bench aid).
        self.batches = 0
        self.batched_writes = 0

    @classmethod
    async def open(cls, path: str | Path) -> SqliteDatabase:
        """Open (creating parent directories) and migrate the database at ``path``."""
        text = str(path)
        if text != ":memory:":
            Path(text).parent.mkdir(parents=True, exist_ok=True)
        db = cls(text)

        def setup(_: Any) -> None:
            db._conn = _connect(text)
            _migrate(db._conn)

        try:
            await db._submit(setup)
            if text != ":memory:" and not text.startswith("file:"):
                db._reader = _connect_reader(text)
                assert db._conn is not None
                db._conn.execute("PRAGMA wal_autocheckpoint=0")  # see _run_checkpoint
                # Writes run on the event loop: never sleep in SQLite's busy handler, see
                # _flush_inline.
                db._conn.execute("PRAGMA busy_timeout=0")
                db._arm_checkpoint()
        except BaseException:
            await db.close()
            raise
        return db

    async def _submit(self, fn: Callable[[Any], T]) -> T:
        if self._executor is None:
            raise StorageUnavailable(f"sqlite database {self.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self._conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        """Run ``fn(conn)`` inside one transaction: reads at once, writes group-committed."""
        if not write:
            reader = self._reader
            if reader is not None:
                if self._executor is None:
                    raise StorageUnavailable(f"sqlite database {self.path} is closed")
                return _read(reader, fn)
            return await self._submit(lambda conn: _read(conn, fn))
        if self._executor is None:
            raise StorageUnavailable(f"sqlite database {self.path} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._batch.append((fn, future))
        if not self._flushing:
            self._flushing = True
            if self._reader is not None:
                # Writes run on this thread: a plain callback, no task, commits the batch
                # after the loop iteration that queued it.
                loop.call_soon(self._flush_inline)
            else:
                self._flusher = loop.create_task(self._flush())
        return await future

    async def read_one(self, sql: str, params: tuple[Any, ...]) -> Any:
        """``execute(sql, params).fetchone()`` on the reader: one statement is its own
        read transaction, so the BEGIN/COMMIT pair of :meth:`run` is not needed."""
        reader = self._reader
        if reader is None:
            return await self.run(lambda conn: conn.execute(sql, params).fetchone(), write=False)
        if self._executor is None:
            raise StorageUnavailable(f"sqlite database {self.path} is closed")
        return reader.execute(sql, params).fetchone()

    def _flush_inline(self) -> None:
        """:meth:`_flush` for a file database, whose writes need no thread.

        Another process holding the write lock (a sibling worker's batch, the CLI) must not
        stall this event loop: the writer connection does not wait inside SQLite (its busy
        timeout is 0), the batch goes back to the queue and is retried after a short,
        growing delay, for at most ``BUSY_TIMEOUT`` seconds.
        """
        retry = False
        try:
            while self._batch:
                batch, self._batch = self._batch, []
                conn = self._conn
                try:
                    if conn is None:
                        raise StorageUnavailable(f"sqlite database {self.path} is closed")
                    outcomes = _write_batch(conn, batch)
                except _WriteLockBusy as busy:
                    now = time.monotonic()
                    if self._busy_since is None:
                        self._busy_since = now
                    if now - self._busy_since < BUSY_TIMEOUT:
                        self._batch[:0] = batch
                        retry = True
                        return
                    self._busy_since = None
                    self._fail(batch, busy.error)
                    continue
                except Exception as exc:  # BEGIN/COMMIT failed, or the database closed
                    self._fail(batch, exc)
                    continue
                self._busy_since = None
                self._settle(batch, outcomes)
        finally:
            if retry:
                waited = time.monotonic() - (self._busy_since or time.monotonic())
                delay = min(0.005, 0.0002 + waited / 4)
                asyncio.get_running_loop().call_later(delay, self._flush_inline)
            else:
                self._flushing = False

    @staticmethod
    async def _write_waiting(
        conn: sqlite3.Connection,
        batch: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]],
    ) -> list[tuple[bool, Any]]:
        """``_write_batch`` on this thread, waiting (without blocking the loop) for
        another process's write lock for at most ``BUSY_TIMEOUT`` seconds."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                return _write_batch(conn, batch)
            except _WriteLockBusy as busy:
                if time.monotonic() >= deadline:
                    raise busy.error from None
            await asyncio.sleep(0.001)

    @staticmethod
    def _fail(batch: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]],
              exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(_clone(exc))

    async def _flush(self) -> None:
        """Commit batches until none is waiting; every future gets its result or error."""
        try:
            while self._batch:
                batch, self._batch = self._batch, []
                try:
                    if self._reader is not None and self._conn is not None:
                        outcomes = await self._write_waiting(self._conn, batch)
                    else:
                        outcomes = await self._submit(lambda conn: _write_batch(conn, batch))
                except BaseException as exc:  # BEGIN/COMMIT failed, or the database closed
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(_clone(exc))
                    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                        raise
                    continue
                self._settle(batch, outcomes)
        finally:
            self._flushing = False

    def _settle(self, batch: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]],
                outcomes: list[tuple[bool, Any]]) -> None:
        """Hand every write of a committed batch its result or its error."""
        self.batches += 1
        self.batched_writes += len(batch)
        for (_, future), (ok, value) in zip(batch, outcomes):
            if future.done():  # the caller was cancelled meanwhile
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _arm_checkpoint(self) -> None:
        self._checkpoint = asyncio.get_running_loop().call_later(
            CHECKPOINT_INTERVAL, lambda: asyncio.ensure_future(self._run_checkpoint()))

    async def _run_checkpoint(self) -> None:
        self._checkpoint = None
        if self._executor is None:
            return

        def checkpoint(_: Any) -> None:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

        try:
            await self._submit(checkpoint)
        except (sqlite3.Error, StorageUnavailable):  # busy, or closing: the next one will do
            pass
        if self._executor is not None:
            self._arm_checkpoint()

    async def schema_version(self) -> int:
        row = await self.run(
            lambda c: c.execute("SELECT MAX(version) FROM schema_migrations").fetchone(),
            write=False,
        )
        return int(row[0])

    async def close(self) -> None:
        # Let writes already queued commit first: they may have been answered for soon.
        while self._flushing or self._batch:
            if self._executor is None:
                break
            if not self._flushing:
                self._flushing = True
                self._flusher = asyncio.get_running_loop().create_task(self._flush())
            await asyncio.sleep(0.001)
        if self._checkpoint is not None:
            self._checkpoint.cancel()
            self._checkpoint = None
        executor, self._executor = self._executor, None
        if executor is None:
            return
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.get_running_loop().run_in_executor(executor, checkpointer.close)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=True)


def _connect_reader(path: str) -> sqlite3.Connection:
    """The event loop's read-only view of the file (same WAL, never takes the write lock)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA query_only=1")
    return conn


def _read(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    # A read transaction, so that several SELECTs see one snapshot of the file.
    conn.execute("BEGIN")
    try:
        return fn(conn)
    finally:
        conn.execute("COMMIT")


def _write_batch(
    conn: sqlite3.Connection,
    batch: list[tuple[Callable[[sqlite3.Connection], Any], Any]],
) -> list[tuple[bool, Any]]:
    """One transaction for the whole batch; each write in a savepoint of its own."""
    outcomes: list[tuple[bool, Any]] = []
    # IMMEDIATE takes the write lock up front, so a read-then-write cannot be overtaken by
    # another process (the CLI, another worker) between its read and its write.
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode in _BUSY_CODES:  # nothing began: the batch may be retried
            raise _WriteLockBusy(exc) from exc
        raise
    if len(batch) == 1:
        # Alone in its batch, a write needs no savepoint: if it raises, the whole
        # transaction is its own to roll back.
        try:
            value = batch[0][0](conn)
        except Exception as exc:
            conn.execute("ROLLBACK")
            return [(False, exc)]
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return [(True, value)]
    try:
        for fn, _ in batch:
            conn.execute("SAVEPOINT w")
            try:
                value = fn(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO w")
                conn.execute("RELEASE w")
                outcomes.append((False, exc))
                continue
            conn.execute("RELEASE w")
            outcomes.append((True, value))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return outcomes


_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class _WriteLockBusy(Exception):
    """BEGIN IMMEDIATE found the write lock taken; ``error`` is SQLite's."""

    def __init__(self, error: sqlite3.OperationalError) -> None:
        super().__init__(str(error))
        self.error = error


def _clone(exc: BaseException) -> BaseException:
    # One exception object raised in several awaiting tasks would share (and grow) one
    # traceback; wrap it per waiter instead.
    if isinstance(exc, StorageUnavailable):
        return StorageUnavailable(str(exc))
    if isinstance(exc, sqlite3.Error):
        return type(exc)(*exc.args)
    return exc
