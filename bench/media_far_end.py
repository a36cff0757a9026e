"""The far ends of ``bench/media.py``: a lightweight RTP peer in a process of its own.

Why a separate process: the issue counts one call as one leg of *our* UA (it sends 50
packets/s and receives 50 packets/s); the peers it talks to are not sipline's work and must
not eat the measured core.  This process runs on the other core(s) and, for every leg of the
measured process, plays the part of the far phone:

- it sends a G.711 stream of its own (own SSRC, sequence and timestamps, the same prompt,
  pre-encoded) at 20 ms, each peer at its own offset within the 20 ms so that arrivals are
  spread as they are for calls that started at random moments, plus an RTCP sender report
  every 5 s on the RTCP port;
- it receives the leg's RTP and RTCP, and notes the *kernel* receive time of every RTP
  packet (``SO_TIMESTAMPNS``).  On loopback that is the instant the measured process sent
  it, so the send-interval jitter is measured at the socket without adding a single
  instruction to the measured process, and independently of this process's own latency.

It is plain sockets and one ``selectors`` loop (no asyncio, no sipline session), driven by
JSON lines on stdin; each command gets one JSON line on stdout::

    {"cmd": "open", "count": N}            -> {"ports": [...]}   bind N RTP/RTCP pairs
    {"cmd": "start", "targets": [...]}     -> {}                 leg RTP port per peer; start sending
    {"cmd": "mark"}                        -> {}                 start the measurement window
    {"cmd": "report"}                      -> {...}              figures since "mark"
    {"cmd": "close"}                       -> {}                 stop and unbind
    {"cmd": "quit"}
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import struct
import sys
import time
from typing import Any

import numpy as np

from sipline.media.codecs.g711 import ulaw_encode
from sipline.media.rtcp import (
    SDES_CNAME,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    serialize_rtcp,
)
from sipline.media.tone import sine
from sipline.media.wav import read_wav

PTIME = 0.02
SLOTS = 40  # send offsets within one ptime: 0.5 ms apart
_HEADER = struct.Struct("!BBHII")
_TIMESPEC = struct.Struct("@ll")
_ANC_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
_PORTS = (30000, 41998)
# Linux's SO_TIMESTAMPNS (the 64-bit-time_t "old" value on x86_64/arm64); Python < 3.12 lacks it.
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class Peer:
    """One far phone: an RTP/RTCP socket pair, a sending stream and receive timestamps."""

    def __init__(self, rtp: socket.socket, rtcp: socket.socket, index: int) -> None:
        self.rtp, self.rtcp = rtp, rtcp
        self.port = rtp.getsockname()[1]
        self.ssrc = 0x5EED0000 + index
        self.sequence = index * 7 & 0xFFFF
        self.timestamp = index * 1000
        self.frame = 0
        self.target: tuple[str, int] | None = None
        self.target_rtcp: tuple[str, int] | None = None
        self.sent = 0
        self.octets = 0
        self.arrivals: list[tuple[int, int, int]] = []  # (kernel ns, sequence, timestamp)
        self.next_rtcp = 0.0
        self.rtcp_received = 0


class FarEnd:
    def __init__(self, payloads: list[bytes]) -> None:
        self.payloads = payloads
        self.selector = selectors.DefaultSelector()
        self.peers: list[Peer] = []
        self.slots: list[list[Peer]] = [[] for _ in range(SLOTS)]
        self.sending = False
        self.epoch = 0.0
        self.count = 0
        self.late_sends = 0  # slot callbacks more than 2 ms behind: the far end could not keep up
        self.max_late = 0.0
        self.measuring = False
        self.cpu_mark = (0.0, 0.0)
        self._cursor = _PORTS[0]
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
        self._stdin = b""

    # -- commands ----------------------------------------------------------------------

    def open(self, count: int) -> dict[str, Any]:
        for index in range(count):
            rtp, rtcp = self._bind_pair()
            peer = Peer(rtp, rtcp, len(self.peers))
            self.peers.append(peer)
            self.selector.register(rtp, selectors.EVENT_READ, peer)
            self.selector.register(rtcp, selectors.EVENT_READ, peer)
        return {"ports": [peer.port for peer in self.peers]}

    def _bind_pair(self) -> tuple[socket.socket, socket.socket]:
        for _ in range((_PORTS[1] - _PORTS[0]) // 2):
            port = self._cursor
            self._cursor = port + 2 if port + 2 <= _PORTS[1] else _PORTS[0]
            rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtp.bind(("127.0.0.1", port))
                rtcp.bind(("127.0.0.1", port + 1))
            except OSError:
                rtp.close()
                rtcp.close()
                continue
            for sock in (rtp, rtcp):
                sock.setblocking(False)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
            rtp.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            return rtp, rtcp
        raise OSError("no free port pair for a far end")

    def start(self, targets: list[int]) -> dict[str, Any]:
        for index, (peer, port) in enumerate(zip(self.peers, targets)):
            peer.target = ("127.0.0.1", port)
            peer.target_rtcp = ("127.0.0.1", port + 1)
            self.slots[index * SLOTS // len(self.peers)].append(peer)
        self.sending = True
        self.epoch = time.monotonic()
        self.count = 0
        for index, peer in enumerate(self.peers):  # reports spread over the 5 s, as real peers' are
            peer.next_rtcp = self.epoch + 1.0 + 5.0 * index / len(self.peers)
        return {}

    def mark(self) -> dict[str, Any]:
        for peer in self.peers:
            peer.arrivals.clear()
        self.late_sends = 0
        self.max_late = 0.0
        self.measuring = True
        self.cpu_mark = (time.process_time(), time.monotonic())
        return {}

    def report(self) -> dict[str, Any]:
        deviations: list[np.ndarray] = []
        underruns = received = expected = 0
        for peer in self.peers:
            if len(peer.arrivals) < 2:
                continue
            data = np.array(peer.arrivals, dtype=np.int64)
            times, seqs, stamps = data[:, 0], data[:, 1], data[:, 2]
            step = (np.diff(seqs) & 0xFFFF)
            consecutive = step == 1
            gaps = np.diff(times)[consecutive] / 1e6
            deviations.append(np.abs(gaps - PTIME * 1000.0))
            ts_step = (np.diff(stamps) & 0xFFFFFFFF)[consecutive]
            underruns += int(np.count_nonzero(ts_step > 160))  # a tick with nothing to send
            received += len(seqs)
            expected += int(step.sum()) + 1
        allv = np.concatenate(deviations) if deviations else np.zeros(0)
        cpu0, wall0 = self.cpu_mark
        wall = time.monotonic() - wall0
        return {
            "p50_ms": float(np.percentile(allv, 50)) if allv.size else None,
            "p99_ms": float(np.percentile(allv, 99)) if allv.size else None,
            "p999_ms": float(np.percentile(allv, 99.9)) if allv.size else None,
            "max_ms": float(allv.max()) if allv.size else None,
            "intervals": int(allv.size),
            "underruns": underruns,
            "received": received,
            "lost": max(0, expected - received),
            "rtcp_received": sum(peer.rtcp_received for peer in self.peers),
            "late_sends": self.late_sends,
            "max_send_late_ms": 1000.0 * self.max_late,
            "cpu": (time.process_time() - cpu0) / wall if wall > 0 else 0.0,
        }

    def close(self) -> dict[str, Any]:
        self.sending = False
        self.measuring = False
        for peer in self.peers:
            for sock in (peer.rtp, peer.rtcp):
                self.selector.unregister(sock)
                sock.close()
        self.peers.clear()
        self.slots = [[] for _ in range(SLOTS)]
        return {}

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        slot_time = PTIME / SLOTS
        while True:
            timeout = None
            if self.sending:
                timeout = max(0.0, self.epoch + self.count * slot_time - time.monotonic())
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    if not self._read_commands():
                        return
                else:
                    self._drain(key.fileobj, key.data)  # type: ignore[arg-type]
            if self.sending:
                now = time.monotonic()
                deadline = self.epoch + self.count * slot_time
                if now >= deadline:
                    late = now - deadline
                    if late > 0.002:
                        self.late_sends += 1
                    self.max_late = max(self.max_late, late)
                    if late > 0.2:  # far behind: restart the schedule rather than burst
                        self.epoch, self.count = now, 0
                    self._send_slot(self.count % SLOTS, now)
                    self.count += 1

    def _send_slot(self, slot: int, now: float) -> None:
        payloads = self.payloads
        for peer in self.slots[slot]:
            if now >= peer.next_rtcp:
                self._send_rtcp(peer)
                peer.next_rtcp = now + 5.0
            payload = payloads[peer.frame % len(payloads)]
            peer.frame += 1
            packet = _HEADER.pack(0x80, 0, peer.sequence, peer.timestamp, peer.ssrc) + payload
            peer.sequence = (peer.sequence + 1) & 0xFFFF
            peer.timestamp = (peer.timestamp + 160) & 0xFFFFFFFF
            peer.sent += 1
            peer.octets += len(payload)
            try:
                peer.rtp.sendto(packet, peer.target)  # type: ignore[arg-type]
            except OSError:
                pass

    def _send_rtcp(self, peer: Peer) -> None:
        report = SenderReport(peer.ssrc, ntp_from_unix(time.time()), peer.timestamp, peer.sent, peer.octets)
        sdes = SourceDescription((SdesChunk(peer.ssrc, (SdesItem(SDES_CNAME, b"far@bench"),)),))
        try:
            peer.rtcp.sendto(serialize_rtcp([report, sdes]), peer.target_rtcp)  # type: ignore[arg-type]
        except OSError:
            pass

    def _drain(self, sock: socket.socket, peer: Peer) -> None:
        if sock is peer.rtcp:
            while True:
                try:
                    sock.recv(2048)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    return
                peer.rtcp_received += 1
        while True:
            try:
                data, ancdata, _, _ = sock.recvmsg(2048, _ANC_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not self.measuring or len(data) < 12:
                continue
            stamp = 0
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                    seconds, nanos = _TIMESPEC.unpack(value[:_TIMESPEC.size])
                    stamp = seconds * 1_000_000_000 + nanos
            _, _, sequence, timestamp, _ = _HEADER.unpack_from(data)
            peer.arrivals.append((stamp, sequence, timestamp))

    def _read_commands(self) -> bool:
        chunk = os.read(sys.stdin.fileno(), 65536)
        if not chunk:
            return False
        self._stdin += chunk
        while b"\n" in self._stdin:
            line, self._stdin = self._stdin.split(b"\n", 1)
            command = json.loads(line)
            name = command.pop("cmd")
            if name == "quit":
                return False
            reply = getattr(self, name)(**command)
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
        return True


def main() -> None:
    cores = [int(c) for c in sys.argv[1].split(",")] if len(sys.argv) > 1 and sys.argv[1] else []
    if cores:
        os.sched_setaffinity(0, set(cores))
    wav = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    pcm = read_wav(wav) if wav else sine(440, 3.0)
    pcm = np.concatenate([pcm, np.zeros(-len(pcm) % 160, dtype=np.int16)])
    encoded = ulaw_encode(pcm)
    FarEnd([encoded[i:i + 160] for i in range(0, len(encoded), 160)]).run()


if __name__ == "__main__":
    main()
