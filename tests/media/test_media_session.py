"""RtpSession over real UDP sockets on 127.0.0.1 (OS-chosen ephemeral ports).

These tests run on the real event loop clock because pacing is what they check; each
scenario is kept under a second.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterable

import numpy as np
import pytest

from sipline.media.codecs import Pcm
from sipline.media.errors import MediaUsageError
from sipline.media.ports import PortAllocator
from sipline.media.rtcp import Bye, ReceiverReport, ReportBlock, SenderReport, serialize_rtcp
from sipline.media.rtp import RtpPacket
from sipline.media.rtp_session import RtpSession, RtpSessionConfig
from sipline.media.tone import dominant_frequency, sine

FAST = RtpSessionConfig(rtcp_interval=0.1, dtmf_duration=0.06, dtmf_gap=0.02)


def _ephemeral_allocator(pairs: int = 16) -> PortAllocator:
    """A small range starting at a port the OS just handed out as ephemeral."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = min(port & ~1, 65535 - 2 * pairs)
    return PortAllocator(first, first + 2 * pairs - 1)


def run(scenario: Callable[[PortAllocator], Awaitable[None]]) -> None:
    allocator = _ephemeral_allocator()
    asyncio.run(asyncio.wait_for(scenario(allocator), timeout=10))
    assert allocator.in_use == frozenset()  # every session released its port


async def _collect(session: RtpSession, into: list[Pcm]) -> None:
    async for frame in session.frames():
        into.append(frame)


async def _open_pair(
    allocator: PortAllocator, config: RtpSessionConfig = FAST, send_filter: Callable[[RtpPacket], Iterable[RtpPacket]] | None = None
) -> tuple[RtpSession, RtpSession]:
    receiver = await RtpSession.open(allocator, config)
    sender = await RtpSession.open(
        allocator, config, remote=("127.0.0.1", receiver.local_port), send_filter=send_filter
    )
    return sender, receiver


def _audible(frames: list[Pcm]) -> Pcm:
    return np.concatenate([f for f in frames if np.abs(f).max() > 1000])


def test_tone_loopback_latching_and_stats() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        sender, receiver = await _open_pair(allocator)
        frames: list[Pcm] = []
        collector = asyncio.create_task(_collect(receiver, frames))
        started = time.monotonic()
        await sender.play(sine(1000, 0.5))
        await sender.drain()
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.25)
        # The receiver had no remote: it latched onto the sender's source address.
        assert receiver.remote == ("127.0.0.1", sender.local_port)
        tx, rx = sender.stats(), receiver.stats()
        await sender.close()
        await receiver.close()
        await collector

        # Paced on the loop clock: 25 frames take about 0.5 s, not a burst.
        assert 0.4 < elapsed < 1.2
        assert tx.packets_sent == 25 and tx.octets_sent == 4000
        assert rx.packets_received == 25 and rx.packets_lost == 0 and rx.concealed >= 0
        assert rx.mos > 4.0 and rx.jitter_ms < 40
        assert tx.rtt_ms is not None and tx.rtt_ms < 100  # SR from sender, RR with LSR back
        audio = _audible(frames)
        assert len(audio) >= 24 * 160
        assert dominant_frequency(audio) == pytest.approx(1000, abs=20)
        assert all(f.shape == (160,) and f.dtype == np.int16 for f in frames)

    run(scenario)


def test_dtmf_digits_arrive_in_order_once() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        sender, receiver = await _open_pair(allocator)
        await sender.play(sine(500, 0.1))
        await sender.send_dtmf("159#")
        digits = [await asyncio.wait_for(receiver.receive_digit(), 1.0) for _ in range(4)]
        await asyncio.sleep(0.1)
        tx, rx = sender.stats(), receiver.stats()
        await sender.close()
        await receiver.close()
        assert [d.digit for d in digits if d is not None] == ["1", "5", "9", "#"]
        assert await receiver.receive_digit() is None  # closed
        assert tx.dtmf_sent == 4 and rx.dtmf_received == 4
        # Events share the audio sequence space and must not look like loss.
        assert rx.packets_lost == 0

    run(scenario)


class _BadNetwork:
    """Drops the 6th, 13th and 20th packet and swaps the 9th and 10th."""

    def __init__(self) -> None:
        self.count = 0
        self.held: RtpPacket | None = None

    def __call__(self, packet: RtpPacket) -> list[RtpPacket]:
        self.count += 1
        if self.count in (6, 13, 20):
            return []
        if self.count == 9:
            self.held = packet
            return []
        if self.count == 10 and self.held is not None:
            return [packet, self.held]
        return [packet]


def test_loss_and_reordering_show_in_stats_and_are_concealed() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        network = _BadNetwork()
        sender, receiver = await _open_pair(allocator, send_filter=network)
        frames: list[Pcm] = []
        collector = asyncio.create_task(_collect(receiver, frames))
        await sender.play(sine(1000, 0.6))
        await sender.drain()
        await asyncio.sleep(0.25)
        rx = receiver.stats()
        await sender.close()
        await receiver.close()
        await collector
        assert rx.packets_received == 27
        assert rx.packets_lost == 3 and rx.fraction_lost == pytest.approx(0.1)
        assert rx.reordered + rx.late == 1  # late only if the loop hiccups
        assert rx.concealed >= 3
        assert rx.mos < 4.0  # 10 % loss is clearly audible
        assert dominant_frequency(_audible(frames)) == pytest.approx(1000, abs=20)

    run(scenario)


def test_rtcp_mux_bye_and_receiver_only_reports() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        config = RtpSessionConfig(rtcp_mux=True, rtcp_interval=0.05)
        sender, receiver = await _open_pair(allocator, config)
        await sender.play(sine(1000, 0.2))
        await sender.drain()
        await asyncio.sleep(0.2)
        assert sender.stats().rtt_ms is not None
        await receiver.close()
        await asyncio.sleep(0.05)
        assert sender.remote_bye
        await sender.close()

    run(scenario)


def test_garbage_and_foreign_packets_are_counted_not_fatal() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        session = await RtpSession.open(allocator, FAST)
        target = ("127.0.0.1", session.local_port)
        rtcp_target = ("127.0.0.1", session.local_port + 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            peer.sendto(b"\x00" * 3, target)  # not RTP
            peer.sendto(bytes(RtpPacket(18, 1, 1, 7, b"x")), target)  # PT not negotiated
            peer.sendto(bytes(RtpPacket(101, 2, 1, 7, b"\x01")), target)  # short telephone-event
            peer.sendto(b"\x80\xc9\x00\x09", rtcp_target)  # RTCP length overflow
            # A report about us with a garbage LSR (round trip > 60 s) is ignored;
            # an RR about somebody else is ignored too.
            reports = (ReportBlock(session.ssrc, 0, 0, 0, 0, lsr=1, dlsr=0), ReportBlock(99, 0, 0, 0, 0, lsr=5))
            peer.sendto(serialize_rtcp([ReceiverReport(7, reports), Bye((12345,))]), rtcp_target)
            peer.sendto(bytes(SenderReport(7, 0, 0, 0, 0)), rtcp_target)
            await asyncio.sleep(0.15)
        stats = session.stats()
        assert stats.malformed == 3
        assert session.rtt is None and not session.remote_bye
        await session.close()
        await session.close()  # idempotent
        assert session.closed

    run(scenario)


def test_misuse_is_reported() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        config = RtpSessionConfig(dtmf_payload_type=None, receive_queue=2, send_queue=2)
        sender, receiver = await _open_pair(allocator, config)
        with pytest.raises(MediaUsageError):
            await sender.send_pcm(np.zeros(80, dtype=np.int16))
        with pytest.raises(MediaUsageError):
            await sender.send_dtmf("1")
        await sender.send_pcm(bytes(320))  # raw little-endian int16 is accepted too
        await sender.play(sine(1000, 0.15))  # padded up to 8 frames
        await sender.drain()
        await asyncio.sleep(0.15)
        assert receiver.overflow > 0  # nobody read the frames: the oldest were dropped
        first = await receiver.receive_frame()
        assert first is not None and first.shape == (160,)
        await sender.close()
        await receiver.close()
        with pytest.raises(MediaUsageError):
            await sender.send_pcm(np.zeros(160, dtype=np.int16))
        leftover = [frame async for frame in receiver.frames()]
        assert len(leftover) <= 2

    run(scenario)


def test_blocked_sender_wakes_up_on_close() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        session = await RtpSession.open(allocator, RtpSessionConfig(send_queue=1))  # no remote: frames are paced out into the void
        task = asyncio.create_task(session.play(sine(1000, 1.0)))
        await asyncio.sleep(0.05)
        drained = asyncio.create_task(session.drain())
        await asyncio.sleep(0.05)
        async with session:
            pass
        with pytest.raises(MediaUsageError):
            await task
        await drained

    run(scenario)


def test_schedule_restarts_after_a_stalled_loop() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        session = await RtpSession.open(allocator, FAST)
        session.set_remote(("127.0.0.1", 9))
        await asyncio.sleep(0.03)
        time.sleep(0.3)  # block the loop on purpose: the timer falls 15 ticks behind
        await asyncio.sleep(0.05)
        assert session.schedule_resyncs >= 1
        await session.close()

    run(scenario)


def test_ports_in_use_are_skipped() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        first = allocator.first
        blockers = []
        for port in (first, first + 3):  # RTP of pair 1 and RTCP of pair 2 are taken
            blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            blocker.bind(("127.0.0.1", port))
            blockers.append(blocker)
        try:
            session = await RtpSession.open(allocator, FAST)
            assert session.local_port == first + 4
            await session.close()
            tiny = PortAllocator(first, first + 1)
            with pytest.raises(MediaUsageError):
                await RtpSession.open(tiny, FAST)
            assert tiny.in_use == frozenset()
        finally:
            for blocker in blockers:
                blocker.close()

    run(scenario)


def test_pause_drops_queued_frames_at_once_and_keeps_pacing() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        sender, receiver = await _open_pair(allocator, RtpSessionConfig(send_queue=8))
        marked: list[bool] = []
        sender._send_filter = lambda p: (marked.append(p.marker), (p,))[1]
        frame = sine(440, 0.02)
        for _ in range(8):  # a full queue: 160 ms of audio waiting
            await sender.send_pcm(frame)
        await asyncio.sleep(0.01)
        sender.pause()
        assert sender.paused and not sender._outgoing
        sent = sender.stats().packets_sent
        started = time.perf_counter()
        for _ in range(5):  # frames offered while paused are consumed at 20 ms each, not sent
            await sender.send_pcm(frame)
        await sender.drain()
        assert time.perf_counter() - started > 0.05
        await sender.send_dtmf("1", duration=0.02, gap=0.0)
        assert sender.stats().packets_sent == sent
        sender.resume()
        await sender.send_pcm(frame)
        await sender.drain()
        assert sender.stats().packets_sent == sent + 1 and marked[-1]  # new talkspurt: marker
        await sender.send_pcm(frame)
        assert sender.flush() == 1
        await sender.close()
        await receiver.close()

    run(scenario)


def test_open_on_a_given_port() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        wanted = allocator.first + 6
        session = await RtpSession.open(allocator, FAST, port=wanted)
        assert session.local_port == wanted and wanted in allocator.in_use
        with pytest.raises(MediaUsageError):  # already ours
            await RtpSession.open(allocator, FAST, port=wanted)
        await session.close()
        other = wanted + 2
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind(("127.0.0.1", other))
        try:
            with pytest.raises(MediaUsageError):  # taken by someone else: no second choice
                await RtpSession.open(allocator, FAST, port=other)
        finally:
            blocker.close()

    run(scenario)


def test_pre_encoded_payloads_go_out_unchanged_and_send_errors_are_counted() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            peer.setblocking(False)
            session = await RtpSession.open(allocator, FAST, remote=peer.getsockname())
            assert session.payloads_reusable  # G.711 is stateless
            payloads = session.encode(sine(500, 0.1)[:-40])  # 4.75 frames: the last is padded
            assert len(payloads) == 5 and {len(p) for p in payloads} == {160}
            await session.play_payloads(payloads)
            await session.drain()
            await asyncio.sleep(0.05)
            received = []
            while True:
                try:
                    received.append(peer.recv(2048))
                except BlockingIOError:
                    break
            assert [datagram[12:] for datagram in received] == payloads
            session.set_remote(("127.0.0.1", 0))  # the kernel refuses port 0: dropped, not raised
            await session.play_payloads(payloads[:2])
            await session.drain()
            # Counted as sent (sequence numbers were used: the peer sees them as lost).
            assert session.send_errors == 2 and session.stats().packets_sent == 7
            await session.close()
            with pytest.raises(MediaUsageError):
                await session.play_payloads(payloads)

    run(scenario)


def test_asyncio_transports_read_into_a_small_buffer() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        session = await RtpSession.open(allocator, FAST)
        # The default 256 KiB per datagram made receiving 3x as expensive (see media.udp).
        for transport in (session._rtp, session._rtcp):
            assert getattr(transport, "max_size", None) == 8192
        await session.close()

    run(scenario)


def test_played_payloads_hand_over_early_and_stop_when_cancelled() -> None:
    async def scenario(allocator: PortAllocator) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            session = await RtpSession.open(allocator, FAST, remote=peer.getsockname())
            payloads = session.encode(sine(500, 0.4))  # 20 frames
            # The player wakes when 4 frames (send_queue // 2) are left, not at every frame.
            await session.play_payloads(payloads[:10])
            assert session.stats().packets_sent in (6, 7)
            await session.drain()
            assert session.stats().packets_sent == 10
            task = asyncio.create_task(session.play_payloads(payloads))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            stopped = session.stats().packets_sent
            assert 10 < stopped < 30
            await asyncio.sleep(0.06)
            assert session.stats().packets_sent == stopped  # the rest was dropped with the caller
            waiting = asyncio.create_task(session.play_payloads(payloads))
            await asyncio.sleep(0.03)
            await session.close()
            with pytest.raises(MediaUsageError):
                await waiting

    run(scenario)
