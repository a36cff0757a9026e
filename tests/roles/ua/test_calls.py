"""Two (or three) sipline UAs talking directly over loopback: signalling and media."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from sipline.media.tone import dominant_frequency, sine
from sipline.roles.ua import CallState


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


async def connect(make_ua: Any, **kw: Any) -> tuple[Any, Any, Any, Any]:
    alice = await make_ua("alice@example.com", **kw)
    bob = await make_ua("bob@example.com", **kw)
    out = await alice.call(uri(bob))
    inc = await bob.next_call(timeout=5)
    await inc.answer()
    assert await out.wait_answered(timeout=5)
    return alice, bob, out, inc


@pytest.mark.timeout(20)
async def test_tone_both_directions(make_ua: Any) -> None:
    alice, bob, out, inc = await connect(make_ua)
    assert out.state is CallState.ANSWERED and inc.state is CallState.ANSWERED
    assert inc.invite.method == "INVITE" and "alice" in inc.remote_identity
    tone_a, tone_b = sine(440, 1.2), sine(1000, 1.2)
    play_a = asyncio.ensure_future(out.play(tone_a))
    play_b = asyncio.ensure_future(inc.play(tone_b))
    got_b, got_a = await asyncio.gather(collect(inc, 1.0), collect(out, 1.0))
    await asyncio.gather(play_a, play_b)
    assert abs(dominant_frequency(got_b[1600:]) - 440) < 10
    assert abs(dominant_frequency(got_a[1600:]) - 1000) < 10
    await out.hangup()
    await inc.wait_ended(timeout=5)
    assert inc.ended_by == "remote" and out.ended_by == "local"
    summary = out.summary()
    assert summary.final_status == 200 and summary.answered and summary.stats is not None
    assert summary.stats.packets_sent > 30 and summary.stats.packets_received > 30


@pytest.mark.timeout(20)
async def test_dtmf_rfc4733_and_info(make_ua: Any) -> None:
    _, _, out, inc = await connect(make_ua)
    await out.send_dtmf("1234")
    await out.send_dtmf("#", method="info")
    digits: list[str] = []

    async def read() -> None:
        async for d in inc.dtmf():
            digits.append(d)
            if len(digits) == 5:
                return

    await asyncio.wait_for(read(), 5)
    assert "".join(digits) == "1234#"
    await inc.hangup()
    await out.wait_ended(timeout=5)


@pytest.mark.timeout(20)
async def test_hold_and_resume(make_ua: Any) -> None:
    _, _, out, inc = await connect(make_ua)

    async def feed(call: Any) -> None:
        frame = sine(440, 0.02)
        while not call.ended:
            await call.send_audio(frame)

    feeders = [asyncio.ensure_future(feed(out)), asyncio.ensure_future(feed(inc))]
    await asyncio.sleep(0.4)
    assert await out.hold()
    assert out.media.direction.value == "sendonly" and inc.media.direction.value == "recvonly"
    await asyncio.sleep(0.02)  # a packet may still be in flight; Bob's queue was flushed
    before = out.stats().packets_received
    await asyncio.sleep(0.4)
    assert out.stats().packets_received - before == 0  # Bob stopped sending at once
    assert await out.resume()
    assert out.media.direction.value == "sendrecv" and inc.media.direction.value == "sendrecv"
    before = out.stats().packets_received
    await asyncio.sleep(0.5)
    assert out.stats().packets_received - before > 15
    await out.hangup()
    for f in feeders:
        f.cancel()


@pytest.mark.timeout(20)
async def test_cancel_while_ringing(make_ua: Any) -> None:
    alice = await make_ua("alice@example.com")
    bob = await make_ua("bob@example.com")
    out = await alice.call(uri(bob))
    inc = await bob.next_call(timeout=5)
    await asyncio.sleep(0.2)
    assert out.state is CallState.RINGING
    out.cancel()
    await out.wait_ended(timeout=5)
    await inc.wait_ended(timeout=5)
    assert out.final_status == 487 and inc.final_status == 487
    assert out.state is CallState.FAILED


@pytest.mark.timeout(20)
@pytest.mark.parametrize("status", [486, 404])
async def test_rejections_reported(make_ua: Any, status: int) -> None:
    alice = await make_ua("alice@example.com")
    bob = await make_ua("bob@example.com")
    out = await alice.call(uri(bob))
    inc = await bob.next_call(timeout=5)
    inc.reject(status)
    assert not await out.wait_answered(timeout=5)
    assert out.final_status == status and out.summary().final_status == status
    kinds = [ev.kind async for ev in out.events()]
    assert kinds[-1] == "failed"


@pytest.mark.timeout(20)
async def test_blind_transfer(make_ua: Any) -> None:
    alice, bob, out, inc = await connect(make_ua)
    carol = await make_ua("carol@example.com", auto_answer=True)
    ok = await out.transfer(uri(carol))  # Alice transfers Bob to Carol
    assert ok
    await inc.wait_ended(timeout=5)
    await out.wait_ended(timeout=5)
    new = inc.transferred_to
    assert new is not None and new.answered
    at_carol = await carol.next_call(timeout=5)
    heard = asyncio.ensure_future(collect(at_carol, 0.8))
    await new.play(sine(1000, 0.8))
    got = await heard
    assert abs(dominant_frequency(got[800:]) - 1000) < 15
    await new.hangup()


@pytest.mark.timeout(20)
async def test_packet_loss_concealed_and_counted(make_ua: Any) -> None:
    counter = {"n": 0}

    def lossy(packet: Any) -> Any:
        counter["n"] += 1
        return () if counter["n"] % 10 == 5 else (packet,)

    alice = await make_ua("alice@example.com", media_filter=lossy)
    bob = await make_ua("bob@example.com")
    out = await alice.call(uri(bob))
    inc = await bob.next_call(timeout=5)
    await inc.answer()
    await out.wait_answered(timeout=5)
    heard = asyncio.ensure_future(collect(inc, 1.2))
    await out.play(sine(440, 1.2))
    got = await heard
    stats = inc.stats()
    assert stats.packets_lost >= 3 and stats.concealed >= 3
    assert stats.fraction_lost > 0.03 and stats.mos < 4.5
    assert abs(dominant_frequency(got[1600:]) - 440) < 15
    await out.hangup()


@pytest.mark.timeout(20)
async def test_codec_choice_reopens_media_on_same_port(make_ua: Any) -> None:
    alice = await make_ua("alice@example.com", codecs=("PCMA",))
    bob = await make_ua("bob@example.com", codecs=("PCMU", "PCMA"))
    out = await alice.call(uri(bob))
    inc = await bob.next_call(timeout=5)
    await inc.answer()
    await out.wait_answered(timeout=5)
    assert inc.media.session.config.codec == "PCMA" and inc.media.session.config.payload_type == 8
    heard = asyncio.ensure_future(collect(out, 0.8))
    await inc.play(sine(1000, 0.8))
    got = await heard
    assert abs(dominant_frequency(got[800:]) - 1000) < 15
    await inc.hangup()
    await out.wait_ended(timeout=5)
    assert not bob.ports.in_use and not alice.ports.in_use  # every port went back
