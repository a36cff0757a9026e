"""Conformance of every CounterStore backend: channel counters and CPS buckets."""

from __future__ import annotations

import asyncio

import pytest

from sipline.sip.errors import UsageError
from sipline.storage import Storage

pytestmark = pytest.mark.asyncio


async def test_acquire_up_to_limit_then_release(storage: Storage) -> None:
    c = storage.counters
    assert [await c.acquire("trunk:a", 2) for _ in range(3)] == [True, True, False]
    assert await c.value("trunk:a") == 2
    assert await c.value("trunk:b") == 0
    assert await c.release("trunk:a") == 1
    assert await c.acquire("trunk:a", 2) is True
    assert await c.release("trunk:a") == 1
    assert await c.release("trunk:a") == 0
    # Releasing more than acquired never goes negative.
    assert await c.release("trunk:a") == 0
    assert await c.value("trunk:a") == 0
    assert await c.acquire("trunk:z", 0) is False


async def test_concurrent_acquire_never_exceeds_limit(storage: Storage) -> None:
    c = storage.counters
    results = await asyncio.gather(*(c.acquire("channels", 7) for _ in range(60)))
    assert sum(results) == 7
    assert await c.value("channels") == 7
    await asyncio.gather(*(c.release("channels") for _ in range(60)))
    assert await c.value("channels") == 0


async def test_token_bucket_burst_then_rate(storage: Storage) -> None:
    c = storage.counters
    now = 1_700_000_000.0
    assert [await c.take("cps", 2.0, 3, now) for _ in range(4)] == [True, True, True, False]
    # 0.5 s at 2 tokens/s refills exactly one token.
    assert await c.take("cps", 2.0, 3, now + 0.5) is True
    assert await c.take("cps", 2.0, 3, now + 0.5) is False
    # A long pause refills only up to the burst.
    later = now + 3600
    assert [await c.take("cps", 2.0, 3, later) for _ in range(4)] == [True, True, True, False]
    # Another node's clock a little behind adds nothing and does not fail.
    assert await c.take("cps", 2.0, 3, later - 5) is False
    # Buckets are independent.
    assert await c.take("other", 1.0, 1, now) is True


async def test_concurrent_take_respects_burst(storage: Storage) -> None:
    c = storage.counters
    results = await asyncio.gather(*(c.take("cps", 1.0, 5, 100.0) for _ in range(30)))
    assert sum(results) == 5


async def test_token_bucket_rejects_nonsense(storage: Storage) -> None:
    with pytest.raises(UsageError):
        await storage.counters.take("cps", 0, 5, 1.0)
    with pytest.raises(UsageError):
        await storage.counters.take("cps", 1.0, 0, 1.0)


async def test_reset_forgets_everything(storage: Storage) -> None:
    c = storage.counters
    await c.acquire("ch", 5)
    await c.take("cps", 1.0, 1, 0.0)
    assert await c.take("cps", 1.0, 1, 0.0) is False
    await c.reset()
    assert await c.value("ch") == 0
    assert await c.take("cps", 1.0, 1, 0.0) is True
    await c.reset()  # nothing left to delete: still fine
