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

#: The schema version this code writes.
SCHEMA_VERSION = len(_MIGRATIONS)


def _connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, the module must not.
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
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
    """A file, the connection to it and the one thread allowed to touch that connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sipline-sqlite"
        )
        self._conn: sqlite3.Connection | None = None

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
        """Run ``fn(conn)`` on the worker thread inside one transaction."""

        def job(conn: sqlite3.Connection) -> T:
            # IMMEDIATE takes the write lock up front, so a read-then-write cannot be
            # overtaken by another process between its read and its write.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._submit(job)

    async def schema_version(self) -> int:
        row = await self.run(
            lambda c: c.execute("SELECT MAX(version) FROM schema_migrations").fetchone(),
            write=False,
        )
        return int(row[0])

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=True)
