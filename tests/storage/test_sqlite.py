"""SQLite specifics: durability across reopen, WAL, schema migrations, closed handles."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sipline.storage import (
    Binding,
    BindingChanges,
    CallRecord,
    SchemaError,
    StorageUnavailable,
    make_subscriber,
    open_storage,
)
from sipline.storage.sqlite import SCHEMA_VERSION, SqliteDatabase

pytestmark = pytest.mark.asyncio

NOW = 1_700_000_000.0


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/var/sipline.db"
    binding = Binding("sip:alice@example.com", "sip:alice@192.0.2.1", NOW + 3600, cseq=7,
                      path=("<sip:edge;lr>",), updated_at=NOW)
    sub = make_subscriber("alice", "example.com", "pw", created_at=NOW)
    record = CallRecord(id="r1", call_id="c1", start=NOW, caller="a", callee="b",
                        status="answered", extra={"k": "v"})
    storage = await open_storage(url)
    applied = await storage.location.apply(binding.aor, BindingChanges(upsert=(binding,)), NOW)
    await storage.subscribers.add(sub)
    await storage.records.add(record)
    await storage.counters.acquire("ch", 3)
    await storage.close()
    await storage.close()  # idempotent

    async with await open_storage(url) as again:
        snap = await again.location.snapshot(binding.aor, NOW)
        assert snap.bindings == (binding,) and snap.version == applied.version
        assert await again.subscribers.get("alice", "example.com") == sub
        assert await again.records.get("r1") == record
        assert await again.counters.value("ch") == 1
        # The version sequence continues instead of restarting (no reuse after reopen).
        await again.location.remove_all(binding.aor)
        newer = await again.location.apply(binding.aor, BindingChanges(upsert=(binding,)), NOW)
        assert newer.version > applied.version


async def test_wal_and_schema_table(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = await SqliteDatabase.open(path)
    assert await db.schema_version() == SCHEMA_VERSION
    mode = await db.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0], write=False)
    assert mode == "wal"
    await db.close()
    # Reopening an up-to-date file applies nothing new.
    db = await SqliteDatabase.open(path)
    rows = await db.run(lambda c: c.execute("SELECT version FROM schema_migrations").fetchall())
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    await db.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    db = await SqliteDatabase.open(path)
    await db.run(lambda c: c.execute("INSERT INTO schema_migrations VALUES (999, 0)"))
    await db.close()
    with pytest.raises(SchemaError):
        await SqliteDatabase.open(path)


async def test_failed_transaction_rolls_back(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "r.db")

    def boom(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO counters (key, value) VALUES ('k', 1)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.run(boom)
    count = await db.run(lambda c: c.execute("SELECT COUNT(*) FROM counters").fetchone()[0])
    assert count == 0
    await db.close()


async def test_closed_database_raises(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "c.db")
    await db.close()
    await db.close()
    with pytest.raises(StorageUnavailable):
        await db.schema_version()


async def test_second_process_view_sees_committed_data(tmp_path: Path) -> None:
    """WAL lets another connection (the CLI) read while the server holds the file."""
    path = tmp_path / "shared.db"
    async with await open_storage(str(path)) as storage:
        await storage.subscribers.add(make_subscriber("bob", "example.com", "pw", created_at=0.0))
        other = sqlite3.connect(path)
        try:
            assert other.execute("SELECT username FROM subscribers").fetchall() == [("bob",)]
        finally:
            other.close()


async def test_in_memory_sqlite(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(":memory:")
    assert await db.schema_version() == SCHEMA_VERSION
    await db.close()


async def test_a_write_waits_for_another_process_lock_without_blocking_the_loop(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "busy.db"
    db = await SqliteDatabase.open(path)
    other = sqlite3.connect(path, isolation_level=None)  # another process: the CLI, a worker
    try:
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.ensure_future(db.run(
            lambda c: c.execute("INSERT INTO counters (key, value) VALUES ('k', 1)").rowcount))
        ticks = 0
        for _ in range(20):  # the loop keeps running while the write waits
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20 and not write.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(write, 2.0) == 1
        value = await db.run(lambda c: c.execute("SELECT value FROM counters").fetchone()[0], write=False)
        assert value == 1
    finally:
        other.close()
        await db.close()


async def test_a_write_fails_once_the_lock_stays_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sipline.storage import _sqlite

    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT", 0.05)
    path = tmp_path / "stuck.db"
    db = await SqliteDatabase.open(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError):
            await db.run(lambda c: c.execute("INSERT INTO counters (key, value) VALUES ('k', 1)"))
        other.execute("ROLLBACK")
        assert await db.run(lambda c: c.execute("INSERT INTO counters (key, value) VALUES ('k', 2)").rowcount) == 1
    finally:
        other.close()
        await db.close()
