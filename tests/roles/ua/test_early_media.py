"""183 Session Progress with SDP: the caller hears the callee before the call is answered."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from sipline.media.tone import dominant_frequency, sine
from sipline.roles.ua import CallState
from sipline.sip.errors import UsageError


def uri(ua: Any) -> str:
    return f"sip:{ua.identity.user}@127.0.0.1:{ua.port}"


async def collect(call: Any, seconds: float) -> np.ndarray:
    frames: list[np.ndarray] = []

    async def run() -> None:
        async for frame in call.audio_frames():
            frames.append(frame)

    task = asyncio.ensure_future(run())
    await asyncio.sleep(seconds)
    task.cancel()
    return np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)


async def wait_state(call: Any, state: CallState) -> None:
    for _ in range(100):
        if call.state is state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{call} never reached {state.value}")


@pytest.mark.timeout(20)
async def test_early_media_option_then_answer(make_ua: Any) -> None:
    alice = await make_ua("alice@example.com")
    bob = await make_ua("bob@example.com", early_media=True)
    out = await alice.call(uri(bob))
    inc = await bob.next_call(timeout=5)
    await wait_state(out, CallState.EARLY_MEDIA)
    assert inc.state is CallState.EARLY_MEDIA and not out.answered
    port = inc.media.port
    # An announcement before answering: Alice hears it, nobody is answered yet.
    heard = asyncio.ensure_future(collect(out, 0.8))
    await inc.play(sine(600, 0.8))
    got = await heard
    assert abs(dominant_frequency(got[800:]) - 600) < 15
    assert out.state is CallState.EARLY_MEDIA
    await inc.answer()
    assert await out.wait_answered(timeout=5)
    assert inc.media.port == port  # the same stream goes on after the 200
    heard = asyncio.ensure_future(collect(inc, 0.6))
    await out.play(sine(1000, 0.6))
    assert abs(dominant_frequency((await heard)[800:]) - 1000) < 15
    await out.hangup()
    kinds = [event.kind async for event in out.events() if event.kind != "trying"]
    assert kinds == ["early-media", "answered", "ended"]


@pytest.mark.timeout(20)
async def test_early_media_on_demand_then_cancel(make_ua: Any) -> None:
    alice = await make_ua("alice@example.com")
    bob = await make_ua("bob@example.com")
    out = await alice.call(uri(bob))
    inc = await bob.next_call(timeout=5)
    await wait_state(out, CallState.RINGING)  # plain 180 first
    await inc.early_media()
    await inc.early_media()  # idempotent
    await wait_state(out, CallState.EARLY_MEDIA)
    heard = asyncio.ensure_future(collect(out, 0.6))
    await inc.play(sine(800, 0.6))
    assert abs(dominant_frequency((await heard)[800:]) - 800) < 15
    out.cancel()
    await out.wait_ended(timeout=5)
    await inc.wait_ended(timeout=5)
    assert out.final_status == 487 and inc.final_status == 487
    with pytest.raises(UsageError):
        await inc.early_media()
    assert not alice.ports.in_use and not bob.ports.in_use
