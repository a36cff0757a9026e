"""The rtpengine driver: bencode, and offer/answer/delete against a real rtpengine on loopback.

rtpengine runs here in userspace mode (``--table=-1``: no kernel module, no root).  It comes
from the Debian package ``rtpengine-daemon``; where it is not installed the live test is
skipped with that reason.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Callable, AsyncIterator
from pathlib import Path

import pytest

from sipline.media.rtpengine import NgClient, NgError, RtpengineRelay, bdecode, bencode
from sipline.sip.sdp import parse_sdp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))
import harness  # noqa: E402

HOST = "127.0.0.1"


def test_bencode_round_trip() -> None:
    value = {"command": "offer", "flags": ["trust-address"], "n": 3, "sdp": b"v=0\r\n"}
    data = bencode(value)
    assert data == b"d7:command5:offer5:flagsl13:trust-addresse1:ni3e3:sdp5:v=0\r\ne"
    assert bdecode(data) == {"command": "offer", "flags": ["trust-address"], "n": 3, "sdp": "v=0\r\n"}
    assert bdecode(b"3:\xff\xfe\xfd") == b"\xff\xfe\xfd"
    for bad in (b"d3:abc", b"i12", b"5:ab", b"i1ee"):
        with pytest.raises(NgError):
            bdecode(bad)
    with pytest.raises(TypeError):
        bencode(1.5)


async def test_no_answer_is_an_error() -> None:
    port = harness.free_port()
    client = NgClient((HOST, port), timeout=0.05, attempts=2)
    with pytest.raises(NgError, match="did not answer"):
        await client.command("ping")
    client.close()


@pytest.fixture
async def rtpengine(tmp_path: Path, require_peer: Callable[[str], str]) -> AsyncIterator[tuple[int, int]]:
    binary = require_peer("rtpengine")
    ng = harness.free_port()
    # A media range that is free now: find 100 consecutive free ports near an ephemeral one.
    first = harness.free_port() & ~1
    proc = subprocess.Popen(
        [binary, "--foreground", "--table=-1", f"--interface={HOST}", f"--listen-ng={HOST}:{ng}",
         f"--port-min={first}", f"--port-max={first + 99}", "--log-stderr", "--log-level=5",
         f"--pidfile={tmp_path / 'rtpengine.pid'}", "--no-fallback"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "rtpengine.log", "wb"), start_new_session=True)
    try:
        client = NgClient((HOST, ng), timeout=0.2, attempts=1)
        for _ in range(50):
            try:
                if (await client.command("ping")).get("result") == "pong":
                    break
            except NgError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("rtpengine did not start: " + (tmp_path / "rtpengine.log").read_text()[-2000:])
        client.close()
        yield ng, first
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def sdp(address: str, port: int) -> bytes:
    return (f"v=0\r\no=peer 1 1 IN IP4 {address}\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n").encode()


@pytest.mark.timeout(30)
async def test_offer_answer_delete_with_real_rtpengine(rtpengine: tuple[int, int]) -> None:
    ng, first = rtpengine
    relay = RtpengineRelay((HOST, ng))
    assert await relay.ping()
    call = relay.open("sbc-test-1")
    to_b = parse_sdp(await call.rewrite(sdp("10.0.0.5", 40000), "a", "offer"))
    to_a = parse_sdp(await call.rewrite(sdp("198.51.100.9", 50000), "b", "answer"))
    for out in (to_b, to_a):
        conn = out.effective_connection(out.media[0])
        assert conn is not None and conn.address == HOST
        assert first <= out.media[0].port < first + 100
    assert "10.0.0.5" not in bytes(to_b).decode() and "198.51.100.9" not in bytes(to_a).decode()
    stats = await call.close()
    assert stats["engine"] == "rtpengine"
    await relay.close()
