"""The sipline user agent against a real softphone: headless baresip, through `sipline serve`.

Both register with digest authentication at a `sipline serve` subprocess.  Audio is
checked on both sides: sipline measures the frequency of baresip's tone (the harness
plays a 440 Hz WAV through baresip's aufile source), and baresip's own RTP statistics
(its ``audio_debug`` command) must show the packets that sipline sent.  DTMF goes both
ways: baresip sends with its ``sndcode`` command and reports ours as CALL_DTMF_START.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sipline.media.tone import dominant_frequency, sine
from sipline.roles.ua import UserAgent

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

pytestmark = pytest.mark.interop

USERS = [("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw")]


@pytest.fixture(scope="module")
def server(require_peer: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Server]:
    require_peer("baresip")
    srv = harness.start_sipline(tmp_path_factory.mktemp("sipline-serve"), users=USERS)
    with harness.running(srv):
        yield srv


@pytest.fixture
def baresip(server: harness.Server, tmp_path: Path, require_peer: Callable[[str], str]) -> Iterator[Callable[..., Any]]:
    started: list[harness.Baresip] = []

    def start(user: str, *, answer: bool) -> harness.Baresip:
        peer = harness.Baresip.start(tmp_path / user, user=user, password=dict(USERS)[user], server=server,
                                     binary=require_peer("baresip"), answer=answer)
        started.append(peer)
        # The harness's tone lasts 2 s and baresip hangs up when its source file ends:
        # a longer one (opened at call setup) keeps the call up while we test.
        harness.write_tone_wav(tmp_path / user / "tone.wav", seconds=30.0)
        peer.wait_registered()
        return peer

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture
async def sipline_ua(server: harness.Server) -> AsyncIterator[Callable[..., Any]]:
    made: list[UserAgent] = []

    async def make(user: str, **kwargs: Any) -> UserAgent:
        ua = UserAgent(f"{user}@{server.domain}", password=dict(USERS)[user], proxy=f"sip:{server.address}",
                       listen_host=harness.LOOPBACK, rtp_ports=(47000 + 200 * len(made), 47199 + 200 * len(made)),
                       **kwargs)
        await ua.start()
        made.append(ua)
        await ua.register()
        return ua

    yield make
    for ua in made:
        await ua.close()


async def _listen_and_play(call: Any, tone: float, seconds: float) -> np.ndarray:
    frames: list[np.ndarray] = []

    async def record() -> None:
        async for frame in call.audio_frames():
            frames.append(frame)

    task = asyncio.ensure_future(record())
    await call.play(sine(tone, seconds))
    task.cancel()
    return np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)


def _baresip_received(peer: harness.Baresip) -> int:
    """RTP packets baresip's RTCP session counted from its peer (``rcvd=`` in audio_debug)."""
    text = str(peer.command("audio_debug").get("data", ""))
    counts = [int(n) for n in re.findall(r"rcvd=(\d+)", text)]
    return max(counts, default=0)


async def _dtmf_both_ways(call: Any, peer: harness.Baresip) -> None:
    digits: list[str] = []

    async def read() -> None:
        async for digit in call.dtmf():
            digits.append(digit)
            if len(digits) == 2:
                return

    reader = asyncio.ensure_future(read())
    for code in "58":
        await asyncio.to_thread(peer.command, "sndcode", code)
        await asyncio.sleep(0.3)
    await asyncio.wait_for(reader, 5)
    assert digits == ["5", "8"]
    await call.send_dtmf("7")
    event = await asyncio.to_thread(peer.wait_event, "CALL_DTMF_START", timeout=5)
    assert event.get("param") == "7"


@pytest.mark.timeout(40)
async def test_sipline_calls_baresip(baresip: Callable[..., Any], sipline_ua: Callable[..., Any],
                                     server: harness.Server) -> None:
    bob = await asyncio.to_thread(baresip, "bob", answer=True)
    alice = await sipline_ua("alice")
    call = await alice.call(f"sip:bob@{server.domain}")
    assert await call.wait_answered(timeout=10)
    heard = await _listen_and_play(call, 1000, 1.5)
    assert abs(dominant_frequency(heard[1600:]) - 440) < 10  # baresip's aufile tone
    assert await asyncio.to_thread(_baresip_received, bob) >= 50  # ours, counted by baresip
    await _dtmf_both_ways(call, bob)
    await call.hangup()
    await asyncio.to_thread(bob.wait_event, "CALL_CLOSED")
    stats = call.summary().stats
    assert stats is not None and stats.packets_lost == 0 and stats.dtmf_received == 2


@pytest.mark.timeout(40)
async def test_baresip_calls_sipline(baresip: Callable[..., Any], sipline_ua: Callable[..., Any],
                                     server: harness.Server) -> None:
    carol = await sipline_ua("carol")
    alice = await asyncio.to_thread(baresip, "alice", answer=False)
    await asyncio.to_thread(alice.dial, f"sip:carol@{server.domain}")
    call = await carol.next_call(timeout=10)
    assert "alice" in call.remote_identity
    await call.answer()
    await asyncio.to_thread(alice.wait_event, "CALL_ESTABLISHED")
    heard = await _listen_and_play(call, 1000, 1.5)
    assert abs(dominant_frequency(heard[1600:]) - 440) < 10
    assert await asyncio.to_thread(_baresip_received, alice) >= 50
    await _dtmf_both_ways(call, alice)
    await asyncio.to_thread(alice.hangup)
    await call.wait_ended(timeout=10)
    assert call.ended_by == "remote"
