"""Two (or three) sipline UAs through an in-process sipline server (registrar + proxy).

Every UA registers with digest authentication and calls the others by AOR; in-dialog
requests (ACK, re-INVITE, REFER, NOTIFY, BYE) follow the Record-Route through the proxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sipline.media.tone import dominant_frequency, sine
from sipline.roles.server import Server, ServerOptions
from sipline.roles.ua import CallState, UserAgent
from sipline.sip.timers import TimerConfig
from sipline.sip.transport import Peer
from sipline.storage import open_storage
from sipline.storage.models import make_subscriber

DOMAIN = "example.com"
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
FAST = TimerConfig(t1=0.1, t2=0.4, t4=0.5)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    storage = await open_storage(tmp_path / "sipline.db")
    for name, password in USERS.items():
        await storage.subscribers.add(make_subscriber(name, DOMAIN, password))
    await storage.close()
    srv = Server(ServerOptions(listen=(Peer("udp", "127.0.0.1", 0),), domains=(DOMAIN,), data_dir=tmp_path,
                               secret=b"s" * 32, timers=FAST))
    await srv.start()
    yield srv
    await srv.stop(0.1)


@pytest.fixture
async def registered(server: Server, make_ua: Callable[..., Any]) -> Callable[..., Any]:
    proxy = f"sip:127.0.0.1:{server.listening[0].port}"

    async def factory(name: str, **kwargs: Any) -> UserAgent:
        ua: UserAgent = await make_ua(f"{name}@{DOMAIN}", password=USERS[name], proxy=proxy, **kwargs)
        await ua.register()
        return ua

    return factory


async def collect(call: Any, seconds: float) -> np.ndarray:
    frames: list[np.ndarray] = []

    async def run() -> None:
        async for frame in call.audio_frames():
            frames.append(frame)

    task = asyncio.ensure_future(run())
    await asyncio.sleep(seconds)
    task.cancel()
    return np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)


async def connect(registered: Callable[..., Any]) -> tuple[Any, Any, Any, Any]:
    alice = await registered("alice")
    bob = await registered("bob")
    out = await alice.call(f"sip:bob@{DOMAIN}")
    inc = await bob.next_call(timeout=5)
    await inc.answer()
    assert await out.wait_answered(timeout=5)
    return alice, bob, out, inc


@pytest.mark.timeout(20)
async def test_tone_both_ways_and_dtmf_through_the_proxy(registered: Callable[..., Any]) -> None:
    _, _, out, inc = await connect(registered)
    assert out.dialog.route_set and inc.dialog.route_set  # Record-Route: the proxy stays in the path
    assert "alice" in inc.remote_identity
    assert out.invite.headers.get("Proxy-Authorization") is not None  # the INVITE was challenged
    plays = [asyncio.ensure_future(out.play(sine(440, 1.0))), asyncio.ensure_future(inc.play(sine(1000, 1.0)))]
    at_bob, at_alice = await asyncio.gather(collect(inc, 0.9), collect(out, 0.9))
    await asyncio.gather(*plays)
    assert abs(dominant_frequency(at_bob[1600:]) - 440) < 10
    assert abs(dominant_frequency(at_alice[1600:]) - 1000) < 10

    digits: list[str] = []

    async def read() -> None:
        async for digit in inc.dtmf():
            digits.append(digit)
            if len(digits) == 6:
                return

    reader = asyncio.ensure_future(read())
    await out.send_dtmf("19*#")
    await out.send_dtmf("AB", method="info")  # SIP INFO through the proxy as well
    await asyncio.wait_for(reader, 5)
    assert "".join(digits) == "19*#AB"
    await out.hangup()
    await inc.wait_ended(timeout=5)
    assert inc.ended_by == "remote"
    stats = out.summary().stats
    assert stats is not None and stats.packets_sent > 30 and stats.packets_received > 30


@pytest.mark.timeout(20)
async def test_hold_and_resume_through_the_proxy(registered: Callable[..., Any]) -> None:
    _, _, out, inc = await connect(registered)

    async def feed(call: Any) -> None:
        frame = sine(440, 0.02)
        while not call.ended:
            await call.send_audio(frame)

    feeders = [asyncio.ensure_future(feed(out)), asyncio.ensure_future(feed(inc))]
    await asyncio.sleep(0.3)
    assert await out.hold()  # re-INVITE relayed by the proxy along the route set
    assert out.media.direction.value == "sendonly" and inc.media.direction.value == "recvonly"
    await asyncio.sleep(0.02)
    before = out.stats().packets_received
    await asyncio.sleep(0.3)
    assert out.stats().packets_received == before  # Bob stopped sending
    assert await out.resume()
    assert inc.media.direction.value == "sendrecv"
    before = out.stats().packets_received
    await asyncio.sleep(0.4)
    assert out.stats().packets_received - before > 12
    await out.hangup()
    await inc.wait_ended(timeout=5)
    for feeder in feeders:
        feeder.cancel()


@pytest.mark.timeout(20)
async def test_blind_transfer_through_the_proxy(registered: Callable[..., Any]) -> None:
    _, _, out, inc = await connect(registered)
    carol = await registered("carol", auto_answer=True)
    assert await out.transfer(f"sip:carol@{DOMAIN}")  # Alice transfers Bob to Carol, by AOR
    await inc.wait_ended(timeout=5)
    await out.wait_ended(timeout=5)
    new = inc.transferred_to
    assert new is not None and new.answered
    at_carol = await carol.next_call(timeout=5)
    assert "bob" in at_carol.remote_identity
    heard = asyncio.ensure_future(collect(at_carol, 0.8))
    await new.play(sine(1000, 0.8))
    assert abs(dominant_frequency((await heard)[800:]) - 1000) < 15
    await new.hangup()
    await at_carol.wait_ended(timeout=5)


@pytest.mark.timeout(20)
async def test_cancel_while_ringing_through_the_proxy(registered: Callable[..., Any]) -> None:
    alice = await registered("alice")
    bob = await registered("bob")
    out = await alice.call(f"sip:bob@{DOMAIN}")
    inc = await bob.next_call(timeout=5)
    for _ in range(50):
        if out.state is CallState.RINGING:
            break
        await asyncio.sleep(0.02)
    assert out.state is CallState.RINGING
    out.cancel()
    await out.wait_ended(timeout=5)
    await inc.wait_ended(timeout=5)
    assert out.final_status == 487 and inc.final_status == 487
    assert out.state is CallState.FAILED and inc.state is CallState.FAILED


@pytest.mark.timeout(20)
async def test_busy_and_unknown_user_reported(registered: Callable[..., Any]) -> None:
    alice = await registered("alice")
    bob = await registered("bob")
    out = await alice.call(f"sip:bob@{DOMAIN}")
    inc = await bob.next_call(timeout=5)
    inc.reject(486)
    assert not await out.wait_answered(timeout=5)
    assert out.final_status == 486 and out.summary().final_status == 486
    nobody = await alice.call(f"sip:nobody@{DOMAIN}")
    assert not await nobody.wait_answered(timeout=5)
    assert nobody.final_status == 404 and nobody.state is CallState.FAILED
    kinds = [event.kind async for event in nobody.events()]
    assert kinds[-1] == "failed"


@pytest.mark.timeout(20)
async def test_early_media_through_the_proxy(registered: Callable[..., Any]) -> None:
    alice = await registered("alice")
    bob = await registered("bob", early_media=True)
    out = await alice.call(f"sip:bob@{DOMAIN}")
    inc = await bob.next_call(timeout=5)
    for _ in range(100):
        if out.state is CallState.EARLY_MEDIA:
            break
        await asyncio.sleep(0.02)
    assert out.state is CallState.EARLY_MEDIA and not out.answered
    heard = asyncio.ensure_future(collect(out, 0.7))
    await inc.play(sine(600, 0.7))
    assert abs(dominant_frequency((await heard)[800:]) - 600) < 15
    await inc.answer()
    assert await out.wait_answered(timeout=5)
    await inc.hangup()
    await out.wait_ended(timeout=5)
