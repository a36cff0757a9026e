"""The shared pacer on a real event loop (short runs: the timing itself is what is tested)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from sipline.media.codecs import get_codec
from sipline.media.pacer import Pacer, pacer_for


def test_members_tick_once_per_interval_spread_over_phases() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        pacer = Pacer(loop, 0.02, phases=4)
        times: dict[int, list[float]] = {i: [] for i in range(8)}
        keys = [pacer.add(lambda now, i=i: times[i].append(now)) for i in range(8)]
        assert len(pacer) == 8
        await asyncio.sleep(0.21)
        for i in range(8):
            assert len(times[i]) >= 8 and abs(float(np.median(np.diff(times[i]))) - 0.02) < 0.003
        # Two members per phase, filled evenly: 0 and 4 share a tick, 0 and 1 do not.
        assert sorted(pacer._where.values()) == [0, 0, 1, 1, 2, 2, 3, 3]
        assert times[0][3] == times[4][3] and times[0][3] != times[1][3]
        for key in keys:
            pacer.remove(key)
        pacer.remove(keys[0])  # unknown keys are ignored
        assert len(pacer) == 0 and pacer._handle is None
        assert pacer_for(loop, 0.02) is pacer_for(loop, 0.02) is not pacer_for(loop, 0.03)

    asyncio.run(scenario())


def test_failing_member_and_removal_during_a_tick() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        errors: list[object] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))
        pacer = Pacer(loop, 0.01, phases=1)
        seen: list[str] = []

        def broken(now: float) -> None:
            raise RuntimeError("boom")

        def once(now: float) -> None:
            seen.append("once")
            pacer.remove(key)

        pacer.add(broken)
        key = pacer.add(once)
        pacer.add(lambda now: seen.append("other"))
        await asyncio.sleep(0.055)
        assert seen.count("once") == 1 and seen.count("other") >= 4
        assert errors and isinstance(errors[0], RuntimeError)

    asyncio.run(scenario())


def test_last_member_leaving_stops_the_timer_and_a_stall_resyncs() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        pacer = Pacer(loop, 0.01, phases=2, max_lag=0.05)
        resyncs: list[int] = []
        key = pacer.add(lambda now: None, lambda: resyncs.append(1))
        await asyncio.sleep(0.02)
        time.sleep(0.1)  # block the loop: the schedule restarts instead of bursting
        await asyncio.sleep(0.03)
        assert pacer.resyncs >= 1 and resyncs
        pacer.remove(key)
        assert pacer._handle is None
        ticks: list[float] = []
        pacer.add(ticks.append)  # starts again from now
        await asyncio.sleep(0.035)
        assert 3 <= len(ticks) <= 5

    asyncio.run(scenario())


def test_pacer_rejects_nonsense() -> None:
    async def scenario() -> None:
        with pytest.raises(ValueError):
            Pacer(asyncio.get_running_loop(), 0.0)

    asyncio.run(scenario())


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_batch_encoding_matches_frame_by_frame(name: str) -> None:
    codec = get_codec(name)
    pcm = (np.sin(np.arange(800) / 5.0) * 12000).astype(np.int16)
    encoder = codec.new_encoder()
    batch = encoder.encode_frames(pcm, 160)
    single = [encoder.encode(pcm[i:i + 160]) for i in range(0, 800, 160)]
    assert batch == single and len(batch) == 5
    # The generic (frame by frame) implementation of the base class agrees too.
    assert type(encoder).__mro__[1].encode_frames(encoder, pcm, 160) == single


def test_then_pass_runs_after_every_tick_of_the_slot() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        pacer = Pacer(loop, 0.01, phases=1)
        order: list[str] = []
        for name in "ab":
            pacer.add(lambda now, n=name: order.append(f"send {n}"),
                      then=lambda now, n=name: order.append(f"play {n}"))
        pacer.add(lambda now: order.append("send c"))  # a member without a second pass
        await asyncio.sleep(0.025)
        assert order[:5] == ["send a", "send b", "send c", "play a", "play b"]
        assert len(order) >= 10 and len(order) % 5 == 0

    asyncio.run(scenario())
