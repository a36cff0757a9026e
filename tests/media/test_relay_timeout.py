"""Media timeout of the built-in relay: the pure silence rule and the relay's sweep."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sipline.media.ports import PortAllocator
from sipline.media.relay import MediaRelay, SilenceWatch

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n"


def test_silence_watch_counts_from_the_last_change() -> None:
    watch = SilenceWatch(10.0, count=0, now=100.0)
    assert not watch.silent(0, 105.0)
    assert not watch.silent(3, 109.0)    # packets moved: the clock restarts at 109
    assert not watch.silent(3, 118.9)
    assert watch.silent(3, 119.0)


@pytest.mark.timeout(10)
async def test_relay_reports_a_silent_call_once_and_not_when_off() -> None:
    relay = MediaRelay("127.0.0.1", PortAllocator(21800, 21899), media_timeout=0.2)
    call = relay.open("c1")
    await call.rewrite(SDP % 40000, "a")
    await call.rewrite(SDP % 50000, "b")
    fired: list[float] = []
    loop = asyncio.get_running_loop()
    assert call.watch(lambda: fired.append(loop.time()))
    start = loop.time()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        while loop.time() - start < 0.5:  # traffic one way is enough to keep it alive
            sender.sendto(b"\x80\x00rtp", ("127.0.0.1", call.streams[0].halves["a"].port))
            await asyncio.sleep(0.02)
        assert not fired
        await asyncio.sleep(0.6)
        assert len(fired) == 1 and fired[0] - start >= 0.5 + 0.2
    finally:
        sender.close()
        await call.close()
    off = MediaRelay("127.0.0.1", PortAllocator(21900, 21999))
    assert not off.open("c2").watch(lambda: None)
