"""Timed garbage collection while a server runs (sipline.runtime.collector)."""

from __future__ import annotations

import asyncio
import gc

from sipline.runtime.collector import CollectorSchedule


class _Cycle:
    def __init__(self) -> None:
        self.me = self


async def test_collection_is_off_while_running_and_back_after() -> None:
    assert gc.isenabled()
    schedule = CollectorSchedule(asyncio.get_running_loop(), young=0.01, full=0.03)
    schedule.start()
    try:
        assert not gc.isenabled()
    finally:
        schedule.stop()
    assert gc.isenabled()


async def test_the_timer_frees_cycles() -> None:
    schedule = CollectorSchedule(asyncio.get_running_loop(), young=0.01, full=0.03)
    schedule.start()
    try:
        _Cycle()  # unreachable at once, freed only by a collection
        alive = sum(isinstance(o, _Cycle) for o in gc.get_objects())
        assert alive >= 1
        await asyncio.sleep(0.1)  # several young passes and at least one full one
        assert not any(isinstance(o, _Cycle) for o in gc.get_objects())
    finally:
        schedule.stop()


async def test_the_last_of_several_servers_restores_collection() -> None:
    loop = asyncio.get_running_loop()
    first, second = CollectorSchedule(loop), CollectorSchedule(loop)
    first.start()
    second.start()
    first.stop()
    assert not gc.isenabled()
    second.stop()
    second.stop()  # idempotent
    assert gc.isenabled()
