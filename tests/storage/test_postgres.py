"""The PostgreSQL call-record store against a real server on loopback.

The cases every record store shares run in test_records.py; these cover what only this
backend has: migrations, write batching, rows PostgreSQL refuses, and the queue that keeps
records while the database is down (a cluster of its own, stopped and restarted here).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from postgres_fixture import (
    PostgresCluster,
    empty_postgres,
    postgres_bin_dir,
    start_cluster,
    wait_until_down,
)
from test_records import rec

from sipline.sip.errors import UsageError
from sipline.storage import (
    CallRecord,
    RecordExists,
    SchemaError,
    StorageError,
    StorageUnavailable,
    open_records,
    open_storage,
)
from sipline.storage.memory import MemoryCallRecordStore
from sipline.storage.postgres import (
    SCHEMA_VERSION,
    PostgresCallRecordStore,
    PostgresOptions,
    redact_url,
)

LOGGER = "sipline.storage.postgres"


@pytest_asyncio.fixture
async def pg(postgres_url: str) -> AsyncIterator[PostgresCallRecordStore]:
    await empty_postgres(postgres_url)
    store = await PostgresCallRecordStore.open(postgres_url)
    try:
        yield store
    finally:
        await store.close()


# ---------------------------------------------------------------------------------------
# URL, options, dispatch


def test_url_options_are_split_off_and_checked() -> None:
    dsn, options = PostgresOptions.from_url(
        "postgresql://u:p@db:5433/cdr?sslmode=disable&batch_size=50&queue_limit=7&timeout=1.5")
    assert dsn == "postgresql://u:p@db:5433/cdr?sslmode=disable"
    assert (options.batch_size, options.queue_limit, options.timeout) == (50, 7, 1.5)
    assert options.pool_size == PostgresOptions().pool_size
    with pytest.raises(UsageError, match="batch_size"):
        PostgresOptions.from_url("postgresql://db/cdr?batch_size=many")
    with pytest.raises(UsageError, match="queue_limit must be positive"):
        PostgresOptions.from_url("postgresql://db/cdr?queue_limit=0")
    assert redact_url("postgresql://u:secret@db:5433/cdr") == "postgresql://u:***@db:5433/cdr"
    assert redact_url("postgresql://db/cdr") == "postgresql://db/cdr"


async def test_dispatch(postgres_url: str) -> None:
    with pytest.raises(UsageError, match="call records only"):
        await open_storage(postgres_url)
    await empty_postgres(postgres_url)
    records, close = await open_records(postgres_url)
    try:
        assert isinstance(records, PostgresCallRecordStore)
        await records.add(rec(1))
    finally:
        await close()
    async with await open_storage("memory://", records_url=postgres_url) as st:
        assert isinstance(st.records, PostgresCallRecordStore)
        assert await st.records.get("r0001") == rec(1)
    records, close = await open_records("memory://")
    assert isinstance(records, MemoryCallRecordStore)
    await close()


async def test_missing_driver_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "sipline.storage.postgres")
    with pytest.raises(UsageError, match=r"pip install 'sipline\[postgres\]'"):
        await open_records("postgresql://db/cdr")


async def test_unreachable_at_open_is_reported(free_port: int) -> None:
    url = f"postgresql://u:secret@127.0.0.1:{free_port}/cdr?timeout=2"
    with pytest.raises(StorageUnavailable) as info:
        await PostgresCallRecordStore.open(url)
    assert "127.0.0.1" in str(info.value) and "secret" not in str(info.value)


# ---------------------------------------------------------------------------------------
# Schema


async def test_migrations_applied_once_and_newer_schema_refused(postgres_url: str) -> None:
    await empty_postgres(postgres_url)
    # Two nodes starting together: the advisory lock makes one wait for the other.
    first, second = await asyncio.gather(PostgresCallRecordStore.open(postgres_url),
                                         PostgresCallRecordStore.open(postgres_url))
    assert await first.schema_version() == SCHEMA_VERSION
    await first.close()
    await second.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT COUNT(*) FROM sipline_schema_migrations") == SCHEMA_VERSION
        await conn.execute("INSERT INTO sipline_schema_migrations VALUES ($1, 0)", SCHEMA_VERSION + 1)
    finally:
        await conn.close()
    with pytest.raises(SchemaError, match="newer"):
        await PostgresCallRecordStore.open(postgres_url)


async def test_ids_order_bytewise_whatever_the_locale(pg: PostgresCallRecordStore) -> None:
    for record_id in ("b", "B", "a-2", "a_1", "A"):
        await pg.add(CallRecord(id=record_id, call_id="c", start=1.0, caller="x", callee="y",
                                      status="200"))
    assert [r.id for r in await pg.query()] == sorted(["b", "B", "a-2", "a_1", "A"])


# ---------------------------------------------------------------------------------------
# Writes


async def test_a_burst_is_written_in_few_batches(pg: PostgresCallRecordStore) -> None:
    await asyncio.gather(*(pg.add(rec(n)) for n in range(1000)))
    stats = pg.stats()
    assert stats.written == 1000 and stats.queued == 0
    # One INSERT carries at most batch_size (200) rows: 5 batches, plus the first one that
    # set off before the rest were queued.
    assert stats.batches <= 7
    assert len(await pg.query()) == 1000


async def test_duplicates_within_one_batch(pg: PostgresCallRecordStore) -> None:
    results = await asyncio.gather(pg.add(rec(1)), pg.add(rec(1)), pg.add(rec(2)), return_exceptions=True)
    assert results[0] is None and isinstance(results[1], RecordExists) and results[2] is None


async def test_a_refused_row_does_not_block_its_batch(
    pg: PostgresCallRecordStore, caplog: pytest.LogCaptureFixture
) -> None:
    bad = CallRecord(id="nul", call_id="c", start=1.0, caller="a\x00b", callee="y", status="200")
    results = await asyncio.gather(pg.add(rec(1)), pg.add(bad), pg.add(rec(3)), return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StorageError) and "nul" in str(results[1])
    assert [r.id for r in await pg.query()] == ["r0001", "r0003"]
    assert pg.stats().rejected == 1
    assert any(r.levelno == logging.ERROR and "refused call record nul" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------
# The database going away


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A cluster of our own, since these tests stop and restart it."""
    own = start_cluster(postgres_bin_dir())
    try:
        yield own
    finally:
        own.destroy()


async def _open(cluster: PostgresCluster, **options: Any) -> PostgresCallRecordStore:
    if cluster.port:
        await asyncio.to_thread(cluster.start)  # idempotent when running
    await empty_postgres(cluster.url)
    defaults: dict[str, Any] = {"timeout": 2.0, "retry_min": 0.05, "retry_max": 0.2, "close_timeout": 3.0}
    return await PostgresCallRecordStore.open(cluster.url, PostgresOptions(**{**defaults, **options}))


async def _stop(cluster: PostgresCluster) -> None:
    await asyncio.to_thread(cluster.stop)
    await asyncio.to_thread(wait_until_down, cluster.port)


async def _eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_records_queue_while_down_and_land_after(
    cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    store = await _open(cluster)
    try:
        await store.add(rec(0))
        await _stop(cluster)
        caplog.set_level(logging.INFO, LOGGER)
        # Accepted without waiting for the database: the SBC's teardown must not hang.
        await asyncio.wait_for(asyncio.gather(*(store.add(rec(n)) for n in range(1, 21))), 10)
        await store.add(rec(21))
        stats = store.stats()
        assert not stats.reachable and stats.queued == 21 and stats.failures >= 1
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, errors  # one line per outage, not one per record or retry
        assert "cannot write call records to PostgreSQL" in errors[0] and "queued" in errors[0]
        assert "cdr-secret" not in errors[0]
        with pytest.raises(StorageUnavailable):
            await store.query()

        await asyncio.to_thread(cluster.start)
        await _eventually(lambda: store.stats().queued == 0)
        assert [r.id for r in await store.query()] == [rec(n).id for n in range(22)]
        assert store.stats().reachable and store.stats().dropped == 0
        assert any("reachable again" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    finally:
        await store.close()


async def test_past_the_bound_records_are_dropped_and_counted(
    cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    store = await _open(cluster, queue_limit=3)
    try:
        await _stop(cluster)
        results = await asyncio.gather(*(store.add(rec(n)) for n in range(5)), return_exceptions=True)
        dropped = [r for r in results if isinstance(r, StorageUnavailable)]
        assert len(dropped) == 2 and all("dropped" in str(d) for d in dropped)
        assert store.stats().dropped == 2 and store.stats().queued == 3
        # The first drop is logged at once, the next ones at most every few seconds.
        assert any(r.levelno == logging.ERROR and "1 records dropped (1 in total)" in r.getMessage()
                   for r in caplog.records)
        await asyncio.to_thread(cluster.start)
        await _eventually(lambda: store.stats().queued == 0)
        assert any("reachable again" in r.getMessage() and "2 dropped in total" in r.getMessage()
                   for r in caplog.records)
        assert len(await store.query()) == 3
    finally:
        await store.close()


async def test_retry_after_a_lost_commit_is_idempotent(
    cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A queued record that is already stored identically (its first INSERT committed but
    the answer was lost) counts as written; a different record under its id is reported."""
    store = await _open(cluster, retry_min=60.0, retry_max=60.0)  # only close() wakes the writer
    try:
        await _stop(cluster)
        await store.add(rec(1))
        await store.add(rec(2))
        await asyncio.to_thread(cluster.start)
        conn = await asyncpg.connect(cluster.url)
        try:
            # As if the first attempt had committed r0001; r0002's id taken by another call.
            for record in (rec(1), rec(2, status="busy")):
                await conn.execute(
                    "INSERT INTO call_records (id, call_id, start_time, caller, callee, callee_normalized, "
                    "status, reason, hangup_by, duration, ring_time, answer_time, end_time, from_trunk, "
                    "to_trunk, pdd, media_stats, extra) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                    "$11, $12, $13, $14, $15, $16, $17, $18::jsonb)",
                    record.id, record.call_id, record.start, record.caller, record.callee,
                    record.callee_normalized, record.status, record.reason, record.hangup_by, record.duration,
                    record.ring, record.answer, record.end, record.from_trunk, record.to_trunk, record.pdd,
                    record.media_stats, '{"tags": ["x", 1], "tenant": "acme"}')
        finally:
            await conn.close()
        caplog.clear()
    finally:
        await store.close()  # the writer's last attempt
    stats = store.stats()
    assert stats.queued == 0 and stats.written == 1 and stats.rejected == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [f"call record r0002 not written to {store.name}: another record with this id is stored"]


async def test_close_while_down_names_the_lost_records(
    cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    store = await _open(cluster, close_timeout=1.0)
    await _stop(cluster)
    await store.add(rec(7))
    await store.add(rec(8))
    await store.close()
    assert store.stats().dropped == 2
    lost = [r.getMessage() for r in caplog.records if "unreachable at shutdown" in r.getMessage()]
    assert lost and "r0007 r0008" in lost[0]
    with pytest.raises(StorageUnavailable):
        await store.add(rec(9))
    await asyncio.to_thread(cluster.start)
