"""One RTP audio stream on asyncio: pacing, latching, jitter buffering, DTMF and RTCP.

The session is the thin I/O shell around the pure parts of this package.  A tick every
packetization interval (20 ms) does all periodic work: send the next queued frame, pull
the next frame out of the jitter buffer, and send RTCP when due.  The ticks come from the
loop's shared :class:`~sipline.media.pacer.Pacer` (one timer for all sessions, deadlines
``start + n * ptime`` so callback latency never accumulates into drift; after a stall
longer than ``max_lag`` the schedule restarts from now instead of bursting the backlog).
Sending is the pacer's first pass and playout its second, so the receive work of the
other sessions never delays a packet.  Frames come from the send queue (:meth:`send_pcm`)
or from pre-encoded prompts (:meth:`play_payloads`), which the tick reads in place: a
player wakes up once per part it hands over, not once per few frames.

Symmetric RTP ("latching", RFC 4961): behind NAT the address in the SDP is often not
where the peer's packets come from, so when enabled the session sends to the source
address of the first valid packet it receives (RTP and RTCP latch separately).

All packets of the peer's SSRC go through the jitter buffer, including telephone events,
because they share one sequence space: skipping them would make every DTMF digit look
like loss.  Events play out as silence and are reported once each through
:meth:`RtpSession.digits`.  While a digit is being sent, audio frames wait in the send
queue (RFC 4733 §2.5.1.1 asks senders not to mix the tone and the event).
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np

from sipline.media.codecs import Pcm, get_codec
from sipline.media.dtmf import DtmfDigit, DtmfReceiver, DtmfSender
from sipline.media.errors import MediaParseError, MediaUsageError
from sipline.media.jitter import Concealment, JitterBuffer
from sipline.media.pacer import Pacer, pacer_for
from sipline.media.plc import Concealer
from sipline.media.ports import PortAllocator
from sipline.media.rtcp import (
    SDES_CNAME,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    ntp_middle32,
    parse_rtcp,
    serialize_rtcp,
)
from sipline.media.rtp import RtpPacket, is_rtcp
from sipline.media.session_config import RtpSessionConfig, SendFilter, SessionStats
from sipline.media.stats import ReceiverStatistics, estimate_mos
from sipline.media.udp import Address, not_bound, open_udp

__all__ = ["RtpSessionConfig", "SessionStats", "SendFilter", "RtpSession"]

_BIND_ATTEMPTS = 16
_RTP_HEADER = struct.Struct("!BBHII")  # RFC 3550 §5.1 fixed header, version 2, no CSRC


class _Prompt:
    """Payloads handed over by :meth:`RtpSession.play_payloads`, sent one per tick."""

    __slots__ = ("done", "index", "payloads")

    def __init__(self, payloads: Sequence[bytes], done: asyncio.Future[None]) -> None:
        self.payloads = payloads
        self.index = 0
        self.done = done  # resolved when only a few payloads are left (or failed on close)


class RtpSession:
    """A bound RTP (and RTCP) socket pair exchanging 20 ms PCM frames with one peer.

    Create with :meth:`open`; always :meth:`close` (or use ``async with``) so the port
    returns to the allocator.  ``wallclock`` only feeds NTP timestamps of sender reports.
    """

    def __init__(
        self,
        allocator: PortAllocator,
        config: RtpSessionConfig | None = None,
        *,
        remote: Address | None = None,
        ssrc: int | None = None,
        send_filter: SendFilter | None = None,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or RtpSessionConfig()
        cfg = self.config
        self._allocator = allocator
        self._loop = asyncio.get_running_loop()
        self._wallclock = wallclock
        codec = get_codec(cfg.codec, cfg.clock_rate)
        self._encoder = codec.new_encoder()
        self._decoder = codec.new_decoder()
        self.frame_samples = codec.samples_per_frame(cfg.ptime)
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self._sequence = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)
        self._send_filter = send_filter
        self.remote: Address | None = remote
        self.remote_rtcp: Address | None = self._rtcp_address_for(remote)
        self._latched = False
        self._rtcp_latched = False
        self.local_port = 0
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        # RTP leaves through the socket itself: the transport's sendto only adds checks and
        # a buffer, and a media packet that cannot go now is better dropped than sent late.
        self._sendto: Callable[[bytes, Address], object] = not_bound
        #: RTP packets the kernel refused (full socket buffer, no route); they still count
        #: as sent, since their sequence numbers are gone: the peer sees them as lost.
        self.send_errors = 0
        # Send side.
        self._outgoing: deque[bytes] = deque()  # encoded payloads, one per tick
        self._prompts: deque[_Prompt] = deque()  # play_payloads() parts, after _outgoing
        self._low_water = cfg.send_queue // 2
        self._space = asyncio.Event()
        self._idle = True  # no audio sent on the previous tick: next packet gets the marker
        self._paused = False  # on hold: frames are consumed at the pace of the clock, not sent
        self._dtmf_active = False
        self._dtmf_lock = asyncio.Lock()
        self._dtmf_sender = DtmfSender(cfg.clock_rate, cfg.dtmf_update_interval)
        self._counts = dict.fromkeys(("sent", "octets", "malformed", "dtmf_sent", "dtmf_received", "unknown"), 0)
        # Receive side.
        self._jitter = JitterBuffer(cfg.jitter)
        self._concealer = Concealer(self.frame_samples)
        self._receiver_stats: ReceiverStatistics | None = None
        self._remote_ssrc: int | None = None
        self._dtmf_receiver = DtmfReceiver(cfg.dtmf_payload_type if cfg.dtmf_payload_type is not None else -1)
        self._frames: asyncio.Queue[Pcm | None] = asyncio.Queue()
        self._frame_sink: Callable[[Pcm], None] | None = None
        self._digits: asyncio.Queue[DtmfDigit | None] = asyncio.Queue()
        self.overflow = 0
        # RTCP state: last SR heard (middle 32 bits, loop time) and the latest round trip.
        self._last_sr: tuple[int, float] | None = None
        self.rtt: float | None = None
        self.remote_bye = False
        self._peer_ssrcs: set[int] = set()  # sources heard in RTP or RTCP reports
        # Timer: a slot of the loop's shared pacer.
        self._pacer: Pacer | None = None
        self._pace_key = -1
        self._next_rtcp = 0.0
        self.schedule_resyncs = 0
        self._closed = False

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    async def open(
        cls,
        allocator: PortAllocator,
        config: RtpSessionConfig | None = None,
        *,
        host: str = "127.0.0.1",
        remote: Address | None = None,
        ssrc: int | None = None,
        send_filter: SendFilter | None = None,
        wallclock: Callable[[], float] = time.time,
        port: int | None = None,
    ) -> RtpSession:
        """Bind a port pair from ``allocator`` on ``host`` and start ticking.

        ``port`` asks for one particular pair of the range (reopening a session on the port
        already written into an SDP); it must be free in the allocator.
        """
        session = cls(allocator, config, remote=remote, ssrc=ssrc, send_filter=send_filter, wallclock=wallclock)
        await session._bind(host, port)
        session._start()
        return session

    async def _bind(self, host: str, wanted: int | None = None) -> None:
        last_error: OSError | None = None
        attempts = 1 if wanted is not None else min(_BIND_ATTEMPTS, self._allocator.capacity)
        for _ in range(attempts):
            if wanted is not None:
                self._allocator.reserve(wanted)
                port = wanted
            else:
                port = self._allocator.allocate()
            try:
                self._rtp, rtp_socket = await open_udp(self._loop, host, port, self._on_rtp_datagram)
                if not self.config.rtcp_mux:
                    self._rtcp, _ = await open_udp(self._loop, host, port + 1, self._on_rtcp_datagram)
                self._sendto = rtp_socket.sendto
            except OSError as exc:  # port taken by another process: try the next pair
                last_error = exc
                if self._rtp is not None:
                    self._rtp.close()
                    self._rtp = None
                self._allocator.release(port)
                continue
            self.local_port = port
            return
        raise MediaUsageError(f"could not bind an RTP port pair on {host}: {last_error}")

    def _start(self) -> None:
        self._next_rtcp = self._loop.time() + self._rtcp_delay()
        self._pacer = pacer_for(self._loop, self.config.ptime, self.config.max_lag)
        self._pace_key = self._pacer.add(self._on_tick, self._on_resync, then=self._after_tick)

    def _rtcp_delay(self) -> float:
        """The configured interval times a random factor in [0.5, 1.5) (RFC 3550 §6.3.1):
        sessions set up together do not keep reporting in the same tick for ever."""
        return self.config.rtcp_interval * (0.5 + secrets.randbits(16) / 65536)

    def _on_resync(self) -> None:
        self.schedule_resyncs += 1

    async def close(self) -> None:
        """Send RTCP BYE, stop the timer, close the sockets and release the port."""
        if self._closed:
            return
        self._send_rtcp(bye=True)
        self._closed = True
        if self._pacer is not None:
            self._pacer.remove(self._pace_key)
        self._sendto = not_bound
        for transport in (self._rtp, self._rtcp):
            if transport is not None:
                transport.close()
        if self.local_port:
            self._allocator.release(self.local_port)
        self._frames.put_nowait(None)
        self._digits.put_nowait(None)
        for prompt in self._prompts:
            if not prompt.done.done():
                prompt.done.set_exception(MediaUsageError("session is closed"))
        self._prompts.clear()
        self._space.set()

    async def __aenter__(self) -> RtpSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def set_remote(self, remote: Address, rtcp: Address | None = None) -> None:
        """Point the session at the address from the peer's SDP (latching may override)."""
        self.remote = remote
        self.remote_rtcp = rtcp or self._rtcp_address_for(remote)

    def _rtcp_address_for(self, remote: Address | None) -> Address | None:
        if remote is None:
            return None
        return remote if self.config.rtcp_mux else (remote[0], remote[1] + 1)

    # ----------------------------------------------------------------- sending

    async def send_pcm(self, frame: Pcm | bytes) -> None:
        """Queue one frame (``frame_samples`` int16 samples); waits while the queue is full."""
        pcm = np.frombuffer(frame, dtype="<i2").astype(np.int16) if isinstance(frame, bytes) else frame
        if pcm.shape != (self.frame_samples,):
            raise MediaUsageError(f"a frame holds {self.frame_samples} samples, got {pcm.shape}")
        await self._wait_for_space()
        self._outgoing.append(self._encoder.encode(pcm))

    @property
    def payloads_reusable(self) -> bool:
        """True when payloads from :meth:`encode` may be sent again later, or by another
        session of the same codec (stateless codecs such as G.711)."""
        return self._encoder.stateless

    def encode(self, pcm: Pcm) -> list[bytes]:
        """Payloads for a whole buffer, one per frame, the last padded with silence.

        The buffer is encoded in one go (:meth:`Encoder.encode_frames`), not frame by frame;
        a prompt played again and again can be encoded once and sent with
        :meth:`play_payloads`.
        """
        pad = -len(pcm) % self.frame_samples
        padded = np.concatenate([np.asarray(pcm, dtype=np.int16), np.zeros(pad, dtype=np.int16)])
        return self._encoder.encode_frames(padded, self.frame_samples)

    async def play(self, pcm: Pcm) -> None:
        """Queue a whole buffer, split into frames; the last one is padded with silence."""
        await self.play_payloads(self.encode(pcm))

    async def play_payloads(self, payloads: Sequence[bytes]) -> None:
        """Send payloads already encoded for this session's codec, one per frame.

        The tick takes them straight from ``payloads``, after any frame queued by
        :meth:`send_pcm`: the caller wakes up once, when only a few frames are left (time
        to hand over the next part), instead of every few frames.  Cancelling the caller
        stops the rest.
        """
        if self._closed:
            raise MediaUsageError("session is closed")
        if not payloads:
            return
        prompt = _Prompt(payloads, self._loop.create_future())
        self._prompts.append(prompt)
        try:
            await prompt.done
        except asyncio.CancelledError:
            if prompt in self._prompts:
                self._prompts.remove(prompt)
            raise

    async def _wait_for_space(self) -> None:
        # The tick wakes waiters only once the queue is down to half (see _send_audio), so
        # a producer refills several frames per wake-up instead of one per tick.
        while len(self._outgoing) >= self.config.send_queue and not self._closed:
            self._space.clear()
            await self._space.wait()
        if self._closed:
            raise MediaUsageError("session is closed")

    async def drain(self) -> None:
        """Wait until every queued frame has been sent."""
        while (self._outgoing or self._prompts) and not self._closed:
            self._space.clear()
            await self._space.wait()

    async def send_dtmf(self, digits: str, *, duration: float | None = None, gap: float | None = None) -> None:
        """Send ``digits`` as RFC 4733 events, one after another, ``gap`` seconds apart."""
        payload_type = self.config.dtmf_payload_type
        if payload_type is None:
            raise MediaUsageError("telephone-event was not negotiated for this session")
        duration = self.config.dtmf_duration if duration is None else duration
        gap = self.config.dtmf_gap if gap is None else gap
        async with self._dtmf_lock:
            for digit in digits:
                plan = self._dtmf_sender.plan(digit, self._timestamp, duration)
                self._dtmf_active = True
                start = self._loop.time()
                try:
                    for entry in plan:
                        delay = start + entry.offset - self._loop.time()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        if self._closed:
                            return
                        if not self._paused:
                            self._transmit(entry.to_rtp(payload_type, self._next_sequence(), self.ssrc))
                finally:
                    self._dtmf_active = False
                self._counts["dtmf_sent"] += 1
                await asyncio.sleep(gap)

    def _next_sequence(self) -> int:
        sequence = self._sequence
        self._sequence = (self._sequence + 1) & 0xFFFF
        return sequence

    def _transmit(self, packet: RtpPacket) -> None:
        if self.remote is None or self._rtp is None or self._closed:
            return
        self._counts["sent"] += 1
        self._counts["octets"] += len(packet.payload)
        outgoing = self._send_filter(packet) if self._send_filter is not None else (packet,)
        for item in outgoing:
            self._send_datagram(bytes(item), self.remote)

    def _send_datagram(self, data: bytes, remote: Address) -> None:
        try:
            self._sendto(data, remote)
        except OSError:  # socket buffer full, no route...: this packet is lost, the next may go
            self.send_errors += 1

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused

    def pause(self) -> None:
        """Stop sending at once (hold): queued frames are dropped, later ones are consumed
        one per tick without being sent, so a sender keeps its timing; DTMF is not sent."""
        self._paused = True
        self.flush()

    def resume(self) -> None:
        """Send again; the first packet after the pause carries the marker bit."""
        self._paused = False

    def flush(self) -> int:
        """Drop every frame waiting to be sent; returns how many were dropped."""
        dropped = len(self._outgoing)
        self._outgoing.clear()
        self._idle = True
        self._space.set()
        return dropped

    def _send_audio(self) -> None:
        # The per-packet hot path: no RtpPacket is built unless a send filter wants one.
        outgoing = self._outgoing
        if self._dtmf_active:
            self._idle = True
            return
        if outgoing:
            payload = outgoing.popleft()
            if len(outgoing) <= self._low_water:
                self._space.set()
        elif self._prompts:
            payload = self._next_prompt_payload()
        else:
            self._idle = True
            return
        if self._paused:
            self._idle = True
            return
        marker = self._idle
        self._idle = False
        sequence = self._sequence
        self._sequence = (sequence + 1) & 0xFFFF
        if self._send_filter is not None:
            self._transmit(RtpPacket(self.config.payload_type, sequence, self._timestamp, self.ssrc, payload, marker))
            return
        if self.remote is None or self._rtp is None:
            return
        counts = self._counts
        counts["sent"] += 1
        counts["octets"] += len(payload)
        second = self.config.payload_type | 0x80 if marker else self.config.payload_type
        try:
            self._sendto(_RTP_HEADER.pack(0x80, second, sequence, self._timestamp, self.ssrc) + payload, self.remote)
        except OSError:  # socket buffer full, no route...: this packet is lost, the next may go
            self.send_errors += 1

    def _next_prompt_payload(self) -> bytes:
        prompt = self._prompts[0]
        payload = prompt.payloads[prompt.index]
        prompt.index += 1
        left = len(prompt.payloads) - prompt.index
        if left <= self._low_water and not prompt.done.done():
            prompt.done.set_result(None)  # the player may hand over its next part now
        if not left:
            self._prompts.popleft()
            self._space.set()  # for drain()
        return payload

    # ----------------------------------------------------------------- the tick

    def _on_tick(self, now: float) -> None:
        # The pacer's first pass: only what decides when packets leave.
        if self._closed:
            return
        self._send_audio()
        self._timestamp = (self._timestamp + self.frame_samples) & 0xFFFFFFFF

    def _after_tick(self, now: float) -> None:
        # The second pass, after every session of the slot has sent: receive side and RTCP.
        if self._closed:
            return
        self._play_out(now)
        if now >= self._next_rtcp:
            self._send_rtcp()
            self._next_rtcp = now + self._rtcp_delay()

    def _play_out(self, now: float) -> None:
        item = self._jitter.pop(now)
        if item is None:
            return
        if isinstance(item, Concealment):
            frame = self._concealer.conceal()
        elif item.payload_type == self.config.payload_type:
            frame = self._concealer.good(self._decoder.decode(item.payload))
        else:  # a telephone event holds a sequence slot; it plays as silence
            frame = np.zeros(self.frame_samples, dtype=np.int16)
        if self._frame_sink is not None:
            self._frame_sink(frame)
            return
        if self._frames.qsize() >= self.config.receive_queue:
            self._frames.get_nowait()  # nobody is listening: keep the newest audio
            self.overflow += 1
        self._frames.put_nowait(frame)

    def set_frame_sink(self, sink: Callable[[Pcm], None] | None) -> None:
        """Hand every played-out frame to *sink* from the tick instead of :meth:`frames`.

        For consumers that only store or forward frames (a recorder, a fan-out to several
        queues): a plain call per frame instead of waking a task every 20 ms.  The sink
        must be quick and must not raise.  ``None`` goes back to the queue.
        """
        self._frame_sink = sink

    # ----------------------------------------------------------------- receiving

    def _on_rtp_datagram(self, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        cfg = self.config
        if cfg.rtcp_mux and is_rtcp(data):
            self._on_rtcp_datagram(data, addr)
            return
        try:
            packet = RtpPacket.parse(data)
        except MediaParseError:
            self._counts["malformed"] += 1
            return
        payload_type = packet.payload_type
        audio = payload_type == cfg.payload_type
        if not audio and payload_type != cfg.dtmf_payload_type:
            self._counts["unknown"] += 1
            return
        if (cfg.symmetric and not self._latched) or self.remote is None:
            self._latched = True
            self.remote = addr
            if self.remote_rtcp is None or cfg.rtcp_mux:
                self.remote_rtcp = self._rtcp_address_for(addr)
        now = self._loop.time()
        stats = self._receiver_stats
        if stats is None or packet.ssrc != self._remote_ssrc:
            self._remote_ssrc = packet.ssrc
            stats = self._receiver_stats = ReceiverStatistics(self.config.clock_rate)
            self._note_peer(packet.ssrc)
        stats.update(packet.sequence, packet.timestamp, now, timing=audio)
        if not audio:  # a telephone event
            try:
                digit = self._dtmf_receiver.feed(packet)
            except MediaParseError:
                self._counts["malformed"] += 1
                return
            if digit is not None:
                self._counts["dtmf_received"] += 1
                self._digits.put_nowait(digit)
        self._jitter.push(packet, now, timing=audio)

    async def frames(self) -> AsyncIterator[Pcm]:
        """Incoming audio, one ``frame_samples`` int16 array per tick, until closed."""
        while (frame := await self._frames.get()) is not None:
            yield frame

    async def receive_frame(self) -> Pcm | None:
        """The next incoming frame, or ``None`` once the session is closed."""
        return await self._frames.get()

    async def digits(self) -> AsyncIterator[DtmfDigit]:
        """Incoming DTMF digits, each event once, until closed."""
        while (digit := await self._digits.get()) is not None:
            yield digit

    async def receive_digit(self) -> DtmfDigit | None:
        """The next incoming DTMF digit, or ``None`` once the session is closed."""
        return await self._digits.get()

    # ----------------------------------------------------------------- RTCP

    def _report_blocks(self) -> tuple[ReportBlock, ...]:
        if self._receiver_stats is None or self._remote_ssrc is None:
            return ()
        lsr = dlsr = 0
        if self._last_sr is not None:
            lsr = self._last_sr[0]
            dlsr = int((self._loop.time() - self._last_sr[1]) * 65536) & 0xFFFFFFFF
        return (self._receiver_stats.report_block(self._remote_ssrc, lsr, dlsr),)

    def _send_rtcp(self, *, bye: bool = False) -> None:
        if self.remote_rtcp is None:
            return
        transport = self._rtp if self.config.rtcp_mux else self._rtcp
        if transport is None:
            return
        report: RtcpPacket
        if self._counts["sent"]:
            report = SenderReport(
                self.ssrc,
                ntp_from_unix(self._wallclock()),
                self._timestamp,
                self._counts["sent"] & 0xFFFFFFFF,
                self._counts["octets"] & 0xFFFFFFFF,
                self._report_blocks(),
            )
        else:
            report = ReceiverReport(self.ssrc, self._report_blocks())
        packets: list[RtcpPacket] = [
            report,
            SourceDescription((SdesChunk(self.ssrc, (SdesItem(SDES_CNAME, self.config.cname.encode()),)),)),
        ]
        if bye:
            packets.append(Bye((self.ssrc,)))
        transport.sendto(serialize_rtcp(packets), self.remote_rtcp)

    def _on_rtcp_datagram(self, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        try:
            packets = parse_rtcp(data)
        except MediaParseError:
            self._counts["malformed"] += 1
            return
        if self.config.symmetric and not self._rtcp_latched:
            self._rtcp_latched = True
            self.remote_rtcp = addr
        for packet in packets:
            if isinstance(packet, SenderReport):
                self._last_sr = (ntp_middle32(packet.ntp_timestamp), self._loop.time())
            if isinstance(packet, (SenderReport, ReceiverReport)):
                self._note_peer(packet.ssrc)
                self._on_reports(packet.reports)
            elif isinstance(packet, Bye):
                self.remote_bye = self.remote_bye or not self._peer_ssrcs.isdisjoint(packet.sources)

    def _note_peer(self, ssrc: int) -> None:
        if len(self._peer_ssrcs) >= 16:  # a 1:1 session: anything more is churn, stay bounded
            self._peer_ssrcs.clear()
        self._peer_ssrcs.add(ssrc)

    def _on_reports(self, reports: tuple[ReportBlock, ...]) -> None:
        for block in reports:
            if block.ssrc == self.ssrc and block.lsr:
                now = ntp_middle32(ntp_from_unix(self._wallclock()))
                round_trip = ((now - block.lsr - block.dlsr) & 0xFFFFFFFF) / 65536.0
                if round_trip < 60.0:  # ignore garbage from clock steps
                    self.rtt = round_trip

    # ----------------------------------------------------------------- statistics

    def stats(self) -> SessionStats:
        """Current figures for both directions."""
        jitter = self._jitter.stats
        receiver = self._receiver_stats
        received = receiver.received if receiver else 0
        lost = receiver.lost if receiver else 0
        expected = receiver.expected if receiver else 0
        fraction = max(0.0, lost / expected) if expected else 0.0
        jitter_ms = receiver.jitter_seconds * 1000.0 if receiver else 0.0
        rtt_ms = self.rtt * 1000.0 if self.rtt is not None else None
        delay_ms = (rtt_ms or 0.0) / 2.0 + self._jitter.target_delay * 1000.0
        return SessionStats(
            packets_sent=self._counts["sent"],
            octets_sent=self._counts["octets"],
            packets_received=received,
            packets_lost=lost,
            fraction_lost=fraction,
            late=jitter.late,
            duplicates=jitter.duplicates,
            reordered=jitter.reordered,
            concealed=jitter.concealed,
            jitter_ms=jitter_ms,
            rtt_ms=rtt_ms,
            mos=estimate_mos(fraction, jitter_ms, delay_ms),
            malformed=self._counts["malformed"],
            dtmf_sent=self._counts["dtmf_sent"],
            dtmf_received=self._counts["dtmf_received"],
        )
