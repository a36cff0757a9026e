"""open_storage(): URL and path forms, bundles, protocol conformance, lifecycle."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipline.sip.errors import UsageError
from sipline.storage import (
    DEFAULT_SQLITE_FILE,
    CallRecordStore,
    CounterStore,
    LocationStore,
    StorageError,
    SubscriberStore,
    make_subscriber,
    open_storage,
)
from sipline.storage.memory import MemoryCallRecordStore
from sipline.storage.sqlite import SqliteCallRecordStore, SqliteLocationStore

pytestmark = pytest.mark.asyncio


async def test_every_backend_satisfies_the_protocols(storage) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(storage.location, LocationStore)
    assert isinstance(storage.subscribers, SubscriberStore)
    assert isinstance(storage.counters, CounterStore)
    assert isinstance(storage.records, CallRecordStore)
    assert storage.url in repr(storage)


async def test_memory_url() -> None:
    async with await open_storage("memory://?max_bindings=3") as st:
        assert st.location.max_bindings == 3  # type: ignore[attr-defined]


async def test_sqlite_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A directory gets the default file name inside it.
    async with await open_storage(tmp_path) as st:
        assert isinstance(st.location, SqliteLocationStore)
    assert (tmp_path / DEFAULT_SQLITE_FILE).exists()
    # Absolute path in a URL, parent directories created.
    target = tmp_path / "a" / "b" / "x.db"
    async with await open_storage(f"sqlite://{target}?max_bindings=2") as st:
        assert st.location.max_bindings == 2  # type: ignore[attr-defined]
    assert target.exists()
    # Default: sipline.db in the working directory.
    monkeypatch.chdir(tmp_path / "a")
    async with await open_storage() as st:
        pass
    assert (tmp_path / "a" / DEFAULT_SQLITE_FILE).exists()


async def test_bad_urls() -> None:
    with pytest.raises(UsageError, match="call records only"):  # see test_postgres.py
        await open_storage("postgres://db/x")
    with pytest.raises(UsageError):
        await open_storage("sqlite://")
    with pytest.raises(UsageError):
        await open_storage("memory://?max_bindings=lots")


async def test_redis_records_go_to_records_url(redis_url: str, tmp_path: Path) -> None:
    st = await open_storage(f"{redis_url}?prefix=t1:&max_bindings=5", records_url=tmp_path / "cdr.db")
    try:
        assert isinstance(st.records, SqliteCallRecordStore)
        assert st.location.max_bindings == 5  # type: ignore[attr-defined]
        await st.subscribers.add(make_subscriber("u", "d", "p", created_at=0.0))
        assert await st.location.client.hexists("t1:sub", '["u", "d"]')  # type: ignore[attr-defined]
    finally:
        await st.location.client.delete("t1:sub", "t1:sub:realm")  # type: ignore[attr-defined]
        await st.close()
    st = await open_storage(redis_url)
    assert isinstance(st.records, MemoryCallRecordStore)
    await st.close()


async def test_redis_gives_up_under_endless_contention(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sipline.storage.redis as redis_backend

    monkeypatch.setattr(redis_backend, "_MAX_RETRIES", 0)
    async with await open_storage(f"{redis_url}?prefix=t2:") as st:
        with pytest.raises(StorageError):
            await st.location.remove_all("sip:a@b")


async def test_max_bindings_must_be_positive(tmp_path: Path) -> None:
    from sipline.storage.memory import MemoryLocationStore
    from sipline.storage.redis import RedisLocationStore, connect
    from sipline.storage.sqlite import SqliteDatabase

    with pytest.raises(UsageError):
        await open_storage("memory://", max_bindings=0)
    with pytest.raises(UsageError):
        MemoryLocationStore(0)
    with pytest.raises(UsageError):
        MemoryCallRecordStore(0)
    db = await SqliteDatabase.open(tmp_path / "m.db")
    with pytest.raises(UsageError):
        SqliteLocationStore(db, 0)
    await db.close()
    client = connect("redis://127.0.0.1:1/0")  # never used: the client connects lazily
    with pytest.raises(UsageError):
        RedisLocationStore(client, max_bindings=0)
    await client.aclose()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_two_nodes_share_one_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two handles on one backend (two sipline nodes, or the server and the CLI)."""
    from sipline.storage import Binding, BindingChanges, StaleBindingSet

    url = f"sqlite://{tmp_path}/shared.db" if backend == "sqlite" else request.getfixturevalue(
        "redis_url"
    ) + "?prefix=shared:"
    async with await open_storage(url) as a, await open_storage(url) as b:
        aor = "sip:carol@example.com"
        snap = await b.location.snapshot(aor, 0.0)
        await a.location.upsert(Binding(aor, "sip:carol@192.0.2.9", 100.0, node_id="a"), 0.0)
        assert [x.node_id for x in await b.location.lookup(aor, 0.0)] == ["a"]
        with pytest.raises(StaleBindingSet):
            await b.location.apply(aor, BindingChanges(remove_all=True,
                                                       expected_version=snap.version), 0.0)
        grants = [await node.counters.acquire("trunk", 3) for node in (a, b, a, b)]
        assert grants == [True, True, True, False]
        await a.location.remove_all(aor)
        await a.counters.reset()
