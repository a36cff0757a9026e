"""The built-in RTP relay: SDP rewriting, latching, forwarding RTP/RTCP/RFC 4733, the pool."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from sipline.media.errors import PortsExhausted
from sipline.media.ports import PortAllocator
from sipline.media.relay import MediaRelay, anchor_sdp, needs_latching
from sipline.sip.sdp import parse_sdp

HOST = "127.0.0.1"


def sdp(address: str, port: int, extra: str = "") -> bytes:
    return (
        "v=0\r\n"
        f"o=peer 11 2 IN IP4 {address}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {address}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        f"{extra}"
    ).encode()


@pytest.mark.parametrize(("address", "latch"), [
    ("10.0.0.5", True), ("192.168.1.2", True), ("172.16.0.1", True), ("100.64.1.1", True),
    ("0.0.0.0", True), ("fd00::1", True), ("169.254.1.1", True),
    ("127.0.0.1", False), ("198.51.100.7", False), ("2001:db8::1", False), ("media.example.net", False),
])
def test_needs_latching(address: str, latch: bool) -> None:
    assert needs_latching(address) is latch


def test_anchor_sdp_rewrites_addresses_and_drops_ice() -> None:
    original = parse_sdp(sdp("10.0.0.5", 4000, "a=rtcp:4001\r\na=candidate:1 1 UDP 1 10.0.0.5 4000 typ host\r\n"
                             "m=video 0 RTP/AVP 96\r\n"))
    out = anchor_sdp(original, "203.0.113.1", [30000])
    text = bytes(out).decode()
    assert "c=IN IP4 203.0.113.1" in text and "10.0.0.5" not in text
    assert "m=audio 30000 RTP/AVP 0 101" in text and "m=video 0 " in text
    assert "a=rtcp" not in text and "candidate" not in text
    assert "a=rtpmap:101 telephone-event/8000" in text
    assert out.origin.session_id == "11" and out.origin.session_version == 2


class Peer:
    def __init__(self) -> None:
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((HOST, 0))
        self.port = self.rtp.getsockname()[1]
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.rtcp.bind((HOST, self.port + 1))
        except OSError:
            self.rtcp.bind((HOST, 0))
        for s in (self.rtp, self.rtcp):
            s.setblocking(False)

    async def recv(self, rtcp: bool = False, timeout: float = 2.0) -> tuple[bytes, tuple[str, int]]:
        loop = asyncio.get_running_loop()
        sock = self.rtcp if rtcp else self.rtp
        data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), timeout)
        return data, addr

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


def rtp(seq: int, pt: int = 0, payload: bytes = b"\xff" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, 0x1234) + payload


def port_of(body: bytes) -> int:
    return parse_sdp(body).media[0].port


async def test_relay_forwards_both_ways_with_latching() -> None:
    relay = MediaRelay(HOST, PortAllocator(41000, 41099))
    a, b = Peer(), Peer()
    call = relay.open("c1")
    try:
        to_b = await call.rewrite(sdp(HOST, a.port), "a")          # caller's offer, sent to the callee
        # The callee is behind NAT: its SDP names an address nobody can reach.
        to_a = await call.rewrite(sdp("10.1.2.3", 5004), "b")       # callee's answer, sent to the caller
        relay_b, relay_a = port_of(to_b), port_of(to_a)
        assert "10.1.2.3" not in to_a.decode() and relay.in_use == 2

        # Before the callee sent anything there is nowhere to send its media.
        a.rtp.sendto(rtp(1), (HOST, relay_a))
        await asyncio.sleep(0.05)
        # The callee's first packet latches its real address; it reaches the caller.
        b.rtp.sendto(rtp(7), (HOST, relay_b))
        data, source = await a.recv()
        assert data == rtp(7) and source == (HOST, relay_a)
        # Now the caller's media (RTP and an RFC 4733 event) reaches the callee.
        event = rtp(2, pt=101, payload=bytes([1, 0x8a, 0, 160]))
        a.rtp.sendto(event, (HOST, relay_a))
        data, source = await b.recv()
        assert data == event and source == (HOST, relay_b)
        # RTCP uses the odd ports.
        b.rtcp.sendto(b"\x81\xc9\x00\x01rtcp", (HOST, relay_b + 1))
        if b.rtcp.getsockname()[1] == b.port + 1:
            data, _ = await a.recv(rtcp=True)
            assert data == b"\x81\xc9\x00\x01rtcp"
        stats = call.stats()
        assert stats["b"]["latched"] and stats["a"]["packets"] >= 2
    finally:
        await call.close()
        a.close()
        b.close()
    assert relay.in_use == 0 and not relay.calls


async def test_relay_drops_packets_from_strangers() -> None:
    relay = MediaRelay(HOST, PortAllocator(41100, 41199))
    a, b, stranger = Peer(), Peer(), Peer()
    call = relay.open()
    try:
        await call.rewrite(sdp("198.51.100.7", 6000), "a")   # a public caller address
        to_a = await call.rewrite(sdp(HOST, b.port), "b")
        # Someone else sends to the port facing the caller: not the caller's host, dropped.
        stranger.rtp.sendto(rtp(1), (HOST, port_of(to_a)))
        await asyncio.sleep(0.05)
        assert call.stats()["a"]["dropped"] == 1
        with pytest.raises(asyncio.TimeoutError):
            await b.recv(timeout=0.1)
    finally:
        await call.close()
        for peer in (a, b, stranger):
            peer.close()


async def test_pool_is_bounded_and_freed() -> None:
    relay = MediaRelay(HOST, PortAllocator(41200, 41203))   # two pairs: one call
    first = relay.open()
    await first.rewrite(sdp(HOST, 7000), "a")
    second = relay.open()
    with pytest.raises(PortsExhausted):
        await second.rewrite(sdp(HOST, 7002), "a")
    await second.close()
    await first.close()
    assert relay.in_use == 0
    third = relay.open()
    await third.rewrite(sdp(HOST, 7004), "a")
    assert relay.in_use == 2
    await third.close()


async def test_non_sdp_passes_and_rejected_streams_take_no_target() -> None:
    relay = MediaRelay(HOST, PortAllocator(41300, 41399))
    call = relay.open()
    try:
        assert await call.rewrite(b"not sdp", "a") == b"not sdp"
        out = await call.rewrite(sdp(HOST, 0), "a")
        assert port_of(out) == 0
    finally:
        await call.close()
