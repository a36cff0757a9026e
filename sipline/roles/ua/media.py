"""Glue between SDP offer/answer and one :class:`~sipline.media.rtp_session.RtpSession`.

A call needs its RTP port *before* negotiation (the port goes into our SDP) but only knows
codec, payload types and direction *after* it.  :class:`MediaLeg` therefore opens a session
on the preferred codec at once, and when negotiation picks something else reopens it on the
very same port (the port stays reserved in between, so the SDP stays true).

Prompts are static files played again and again (an IVR greeting, an answering machine),
so a WAV is read, resampled and -- for stateless codecs like G.711 -- encoded once per
file version and codec, and every call sends the same payloads.  Recordings stream to
their file a second at a time instead of growing in memory until hang-up.

Direction is enforced here because the session itself is direction-agnostic: while we must
not send (hold, ``recvonly``) the session is paused -- frames already queued are dropped at
once and later ones are paced and dropped, so a WAV being played keeps its timing; while we
must not receive, incoming frames are not delivered.  Incoming
audio is handed over by the session's tick straight into the recorder and the call's
queues (no task per frame); digits are pumped by one task.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from ...media.codecs import get_codec
from ...media.codecs.base import Pcm
from ...media.errors import MediaUsageError
from ...media.ports import PortAllocator
from ...media.rtp_session import RtpSession, RtpSessionConfig, SendFilter, SessionStats
from ...media.wav import WavWriter, read_wav
from ...sip.message import Request, Response
from ...sip.sdp import (
    Codec,
    Direction,
    LocalSession,
    MediaCapabilities,
    NegotiatedStream,
    SessionDescription,
    parse_sdp,
)

__all__ = ["MediaLeg", "DEFAULT_CODECS", "SDP", "local_session", "sdp_of"]

log = logging.getLogger("sipline.ua.media")

#: G.711 first: every SIP phone speaks it and the media package implements it.
DEFAULT_CODECS = ("PCMU", "PCMA")
SDP = "application/sdp"
#: RFC 3551 static payload types of the codecs we open sessions with before negotiation.
_STATIC_PT = {"PCMU": 0, "PCMA": 8}


def sdp_of(message: Request | Response) -> SessionDescription | None:
    """The session description in *message*'s body, if it carries one."""
    if not message.body or message.content_type != SDP:
        return None
    return parse_sdp(message.body)


def local_session(address: str, port: int, codecs: tuple[str, ...], session_id: str, version: int,
                  direction: Direction = Direction.SENDRECV) -> LocalSession:
    """Our SDP capabilities: one audio stream with ``codecs`` in preference order + RFC 4733."""
    return LocalSession(
        address=address,
        session_id=session_id,
        session_version=version,
        streams=(MediaCapabilities(port, tuple(Codec(name, 8000) for name in codecs), ptime=20,
                                   direction=direction),),
        username="sipline",
    )


#: Recordings write a chunk per second; calls set up together take turns for their first
#: write, so their chunks do not all land in one 20 ms tick for ever after.
_RECORD_CHUNK = 50
_record_turns = itertools.cycle(range(1, _RECORD_CHUNK + 1))

_PromptKey = tuple[str, int, int]
"""A prompt file version: resolved path, modification time (ns) and size."""


def _prompt_key(path: str | Path) -> _PromptKey:
    resolved = os.path.realpath(path)
    info = os.stat(resolved)
    return resolved, info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=16)
def _prompt_pcm(key: _PromptKey) -> Pcm:
    """The prompt as telephone PCM (read and resampled once per file version)."""
    pcm = read_wav(key[0])
    pcm.flags.writeable = False  # shared by every call that plays it
    return pcm


@functools.lru_cache(maxsize=16)
def _prompt_payloads(key: _PromptKey, codec: str, clock_rate: int, frame_samples: int) -> tuple[bytes, ...]:
    """The prompt encoded for a stateless codec, one payload per frame, last one padded."""
    pcm = _prompt_pcm(key)
    padded = np.concatenate([pcm, np.zeros(-len(pcm) % frame_samples, dtype=np.int16)])
    return tuple(get_codec(codec, clock_rate).new_encoder().encode_frames(padded, frame_samples))


class MediaLeg:
    """The audio of one call: an RTP session plus direction, recording and queues."""

    def __init__(self, allocator: PortAllocator, host: str, codecs: tuple[str, ...],
                 send_filter: SendFilter | None = None) -> None:
        self._allocator = allocator
        self._host = host
        self.codecs = codecs
        self._send_filter = send_filter
        self.session: RtpSession | None = None
        self.negotiated: NegotiatedStream | None = None
        self.direction = Direction.INACTIVE
        self._frames: list[asyncio.Queue[Pcm | None]] = []
        self._digits: asyncio.Queue[str | None] = asyncio.Queue()
        self._recorder: WavWriter | None = None
        self._record_path: Path | None = None
        self._pumps: list[asyncio.Task[None]] = []
        self._closed = False
        self._stats_before_reopen: SessionStats | None = None
        self._opening = asyncio.Lock()

    @property
    def port(self) -> int:
        return self.session.local_port if self.session is not None else 0

    async def open(self) -> None:
        """Bind the port pair now, on the preferred codec (once: later calls wait for it)."""
        async with self._opening:
            if self.session is not None or self._closed:
                return
            first = self.codecs[0]
            self.session = await RtpSession.open(self._allocator,
                                                 self._config(first, _STATIC_PT.get(first, 96), 101),
                                                 host=self._host, send_filter=self._send_filter)
            self._start_pumps()

    @staticmethod
    def _config(codec: str, payload_type: int, dtmf_pt: int | None) -> RtpSessionConfig:
        return RtpSessionConfig(codec=codec, payload_type=payload_type, dtmf_payload_type=dtmf_pt)

    def _start_pumps(self) -> None:
        assert self.session is not None
        loop = asyncio.get_running_loop()
        self.session.set_frame_sink(self._on_frame)
        self._pumps = [loop.create_task(self._pump_digits(self.session))]

    async def apply(self, stream: NegotiatedStream) -> None:
        """Use what negotiation agreed: codec, payload types, peer address, direction."""
        self.negotiated = stream
        self.direction = stream.direction if stream.active else Direction.INACTIVE
        session = self.session
        if session is None or self._closed:
            return
        self._pause_unless_sending(session)
        if not stream.active or stream.codec is None:
            return
        pt = stream.codec.payload_type
        dtmf = stream.telephone_event.payload_type if stream.telephone_event is not None else None
        cfg = session.config
        if (cfg.codec.upper(), cfg.payload_type, cfg.dtmf_payload_type) != (stream.codec.encoding.upper(), pt, dtmf):
            # Reopen on the same (still reserved) port with the agreed formats.
            port = session.local_port
            for task in self._pumps:
                task.cancel()
            self._stats_before_reopen = session.stats()
            await session.close()
            session = await self._reopen(port, self._config(stream.codec.encoding, pt, dtmf))
            self.session = session
            self._start_pumps()
            self._pause_unless_sending(session)
        if stream.remote_address and stream.remote_port:
            session.set_remote((stream.remote_address, stream.remote_port))

    def _pause_unless_sending(self, session: RtpSession) -> None:
        """On hold (or recvonly/inactive) stop at once, dropping what was queued."""
        if self.direction.sends:
            session.resume()
        elif not session.paused:
            session.pause()

    async def _reopen(self, port: int, config: RtpSessionConfig) -> RtpSession:
        """A new session on *port*, which stays reserved in the allocator meanwhile.

        asyncio closes the old sockets only on the next loop iterations, so the first bind
        may fail; between attempts we hold the reservation ourselves so that no other call
        is handed this port.  (No await separates a release from the session's reserve.)
        """
        self._allocator.reserve(port)
        for attempt in range(20):
            self._allocator.release(port)
            try:
                return await RtpSession.open(self._allocator, config, host=self._host,
                                             send_filter=self._send_filter, port=port)
            except MediaUsageError:
                if attempt == 19:
                    raise
                self._allocator.reserve(port)
                await asyncio.sleep(0.01)
        raise AssertionError("unreachable")

    # -- sending ----------------------------------------------------------------------

    @property
    def can_send(self) -> bool:
        return self.direction.sends and self.session is not None and not self._closed

    async def send_audio(self, frame: Pcm | bytes) -> None:
        """Queue one 20 ms frame; paced and dropped while the direction forbids sending."""
        if self._closed or self.session is None:
            return
        if not self.can_send:
            await asyncio.sleep(self.session.config.ptime)
            return
        try:
            await self.session.send_pcm(frame)
        except MediaUsageError:
            if not self._closed and not self.session.closed:
                raise
            # The call ended (or media was reopened) while the frame waited: drop it.

    async def play(self, source: str | Path | Pcm) -> None:
        """Send a WAV file (or samples) once, paced by the RTP clock, honouring hold.

        Half a second at a time goes to the session, which encodes it in one go; a
        session reopened for another codec is picked up at the next half second.
        """
        key: _PromptKey | None = None
        if isinstance(source, (str, Path)):
            key = _prompt_key(source)
            pcm = _prompt_pcm(key)
        else:
            pcm = source
        if self.session is None:
            return
        frames = 25
        chunk = frames * self.session.frame_samples
        for start in range(0, len(pcm), chunk):
            session = self.session
            if self._closed or session is None:
                return
            try:
                if key is not None and session.payloads_reusable:
                    cfg = session.config
                    payloads = _prompt_payloads(key, cfg.codec.upper(), cfg.clock_rate, session.frame_samples)
                    first = start // session.frame_samples
                    await session.play_payloads(payloads[first:first + frames])
                else:
                    await session.play(pcm[start:start + chunk])
            except MediaUsageError:
                if not self._closed and session is self.session:
                    raise
                # The call ended (or media was reopened) while the audio waited: go on.
        if self.session is not None and not self._closed:
            await self.session.drain()

    async def send_dtmf(self, digits: str) -> None:
        if self.session is not None and not self._closed and self.can_send:
            await self.session.send_dtmf(digits)

    # -- receiving --------------------------------------------------------------------

    def _on_frame(self, frame: Pcm) -> None:
        # Called from the RTP tick: record and fan out without waking a task per frame.
        if not self.direction.receives:
            return
        if self._recorder is not None:
            try:
                self._recorder.add(frame)
            except OSError as exc:  # disk full...: stop recording, keep the call
                self._stop_recording(exc)
        for queue in self._frames:
            if queue.qsize() < 500:
                queue.put_nowait(frame)

    async def _pump_digits(self, session: RtpSession) -> None:
        async for digit in session.digits():
            self.push_digit(digit.digit)

    def push_digit(self, digit: str) -> None:
        """A digit from RTP or from a SIP INFO (dtmf-relay)."""
        if not self._closed:
            self._digits.put_nowait(digit)

    async def frames(self) -> AsyncIterator[Pcm]:
        """Incoming 20 ms frames until the call ends."""
        queue: asyncio.Queue[Pcm | None] = asyncio.Queue()
        self._frames.append(queue)
        try:
            while (frame := await queue.get()) is not None:
                yield frame
        finally:
            self._frames.remove(queue)

    async def digits(self) -> AsyncIterator[str]:
        while (digit := await self._digits.get()) is not None:
            yield digit

    def record(self, path: str | Path) -> None:
        """Record the far side's audio into a WAV, written as the call goes (complete when
        it ends).  Recording to another path closes the previous file and goes on there."""
        path = Path(path)
        if self._closed or (self._recorder is not None and path == self._record_path):
            return
        if self._recorder is not None:
            self._stop_recording()
        self._record_path = path
        try:
            self._recorder = WavWriter(path, flush_frames=_RECORD_CHUNK, first_flush=next(_record_turns))
        except OSError as exc:
            log.warning("cannot write recording %s: %s", path, exc)

    def _stop_recording(self, error: OSError | None = None) -> None:
        recorder, self._recorder = self._recorder, None
        if error is not None:
            log.warning("cannot write recording %s: %s", self._record_path, error)
        if recorder is not None:
            try:
                recorder.close()
            except OSError as exc:
                if error is None:
                    log.warning("cannot write recording %s: %s", self._record_path, exc)

    def stats(self) -> SessionStats | None:
        return self.session.stats() if self.session is not None else self._stats_before_reopen

    async def close(self) -> None:
        """Stop media, write the recording, wake every consumer."""
        if self._closed:
            return
        self._closed = True
        if self.session is not None:
            self._final_stats = self.session.stats()
            await self.session.close()
        for task in self._pumps:
            task.cancel()
        for queue in self._frames:
            queue.put_nowait(None)
        self._digits.put_nowait(None)
        self._stop_recording()
