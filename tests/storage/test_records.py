"""Conformance of the CallRecordStore backends (memory, sqlite, postgres) and CSV export."""

from __future__ import annotations

import csv
import io
import json

import pytest

from sipline.storage import CallRecord, RecordExists, Storage
from sipline.storage._logic import CSV_COLUMNS
from sipline.storage.memory import MemoryCallRecordStore

pytestmark = pytest.mark.asyncio

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def rec(n: int, *, start: float | None = None, status: str = "answered",
        from_trunk: str | None = None, to_trunk: str | None = "carrier-a") -> CallRecord:
    s = T0 + n * 10 if start is None else start
    return CallRecord(
        id=f"r{n:04d}",
        call_id=f"call-{n}@host",
        start=s,
        ring=s + 1.25,
        answer=s + 3.0 if status == "answered" else None,
        end=s + 63.0,
        caller="sip:alice@example.com",
        callee="+15551234567",
        callee_normalized="15551234567",
        from_trunk=from_trunk,
        to_trunk=to_trunk,
        status=status,
        reason="200 OK" if status == "answered" else "486 Busy Here",
        hangup_by="caller",
        duration=60.0 if status == "answered" else 0.0,
        pdd=1.25,
        media_stats=json.dumps({"rx_loss": 0.01, "jitter_ms": 4}),
        extra={"tenant": "acme", "tags": ["x", 1]},
    )


async def test_add_get_round_trip(record_storage: Storage) -> None:
    records = record_storage.records
    r = rec(1)
    await records.add(r)
    assert await records.get(r.id) == r
    assert await records.get("missing") is None
    with pytest.raises(RecordExists):
        await records.add(r)
    bare = CallRecord(id="bare", call_id="c", start=T0, caller="a", callee="b", status="failed")
    await records.add(bare)
    assert await records.get("bare") == bare


async def test_query_filters_and_order(record_storage: Storage) -> None:
    records = record_storage.records
    await records.add(rec(3, status="busy"))
    await records.add(rec(1, from_trunk="carrier-b", to_trunk=None))
    await records.add(rec(2))
    await records.add(rec(4, start=T0 + 10))  # same start as r0001: id breaks the tie
    ids = lambda rs: [r.id for r in rs]  # noqa: E731
    assert ids(await records.query()) == ["r0001", "r0004", "r0002", "r0003"]
    assert ids(await records.query(since=T0 + 20)) == ["r0002", "r0003"]
    assert ids(await records.query(until=T0 + 20)) == ["r0001", "r0004"]
    assert ids(await records.query(since=T0 + 10, until=T0 + 30)) == ["r0001", "r0004", "r0002"]
    assert ids(await records.query(trunk="carrier-b")) == ["r0001"]
    assert ids(await records.query(trunk="carrier-a")) == ["r0004", "r0002", "r0003"]
    assert ids(await records.query(status="busy")) == ["r0003"]
    assert ids(await records.query(limit=2)) == ["r0001", "r0004"]
    assert ids(await records.query(limit=0)) == []


async def test_purge_before(record_storage: Storage) -> None:
    records = record_storage.records
    for n in range(5):
        await records.add(rec(n))
    assert await records.purge(T0 + 20) == 2
    assert [r.id for r in await records.query()] == ["r0002", "r0003", "r0004"]


async def test_export_csv(record_storage: Storage) -> None:
    records = record_storage.records
    await records.add(rec(1))
    await records.add(rec(2, status="busy"))
    out = io.StringIO()
    assert await records.export_csv(out, status="busy") == 1
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 1
    row = rows[0]
    assert tuple(row) == CSV_COLUMNS
    assert row["id"] == "r0002"
    assert row["start"] == "2023-11-14T22:13:40.000Z"
    assert row["ring"] == "2023-11-14T22:13:41.250Z"
    assert row["answer"] == ""
    assert row["from_trunk"] == ""
    assert row["duration"] == "0.000" and row["pdd"] == "1.250"
    assert json.loads(row["extra"]) == {"tags": ["x", 1], "tenant": "acme"}
    assert json.loads(row["media_stats"])["jitter_ms"] == 4
    assert out.getvalue().startswith("id,call_id,start,")


async def test_export_csv_empty_has_header(record_storage: Storage) -> None:
    out = io.StringIO()
    assert await record_storage.records.export_csv(out) == 0
    assert out.getvalue() == ",".join(CSV_COLUMNS) + "\r\n"


async def test_export_csv_pages_through_many(record_storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    import sipline.storage.postgres as postgres_backend
    import sipline.storage.sqlite as sqlite_backend

    monkeypatch.setattr(sqlite_backend, "_EXPORT_PAGE", 3)
    monkeypatch.setattr(postgres_backend, "_EXPORT_PAGE", 3)
    records = record_storage.records
    for n in range(10):
        await records.add(rec(n, start=T0 + n // 2))  # pairs share a start time
    out = io.StringIO()
    assert await records.export_csv(out, since=T0 + 1) == 8
    ids = [row["id"] for row in csv.DictReader(io.StringIO(out.getvalue()))]
    assert ids == [f"r{n:04d}" for n in range(2, 10)]


async def test_memory_store_is_bounded() -> None:
    store = MemoryCallRecordStore(max_records=3)
    for n in range(5):
        await store.add(rec(n))
    assert [r.id for r in await store.query()] == ["r0002", "r0003", "r0004"]
