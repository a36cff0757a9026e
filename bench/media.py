"""How many concurrent G.711 calls can one process carry on one core?

Each call is two RTP sessions of :mod:`sipline.media.rtp_session` on loopback (both legs
live in this process, so the figure is conservative: a real UA carries one leg per call).
Every leg plays a WAV file in a loop at 50 packets/s and records the far side, as
``sipline call --play x.wav --record y.wav`` does.  The quality criterion is the
*send-interval jitter*: the deviation of the time between two packets of a leg from the
20 ms ptime, measured at the socket, whose 99th percentile must stay below 5 ms.

The load grows step by step until the criterion or the CPU (one core) gives out; the
report gives the largest passing number of calls and the CPU cost per call.

    python bench/media.py                 # default steps, 5 s each
    python bench/media.py --steps 10,50,100,200 --seconds 5 --write   # append to RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from sipline.media.ports import PortAllocator
from sipline.media.rtp_session import RtpSession, RtpSessionConfig
from sipline.media.tone import sine
from sipline.media.wav import read_wav, write_wav

PTIME = 0.02
# One allocator for every step: it rotates, so a step never rebinds the ports just closed.
_ALLOCATOR = PortAllocator(42000, 60999)
LIMIT_MS = 5.0


class _Tap:
    """Stands in for a session's RTP transport and notes when each datagram leaves.

    Timing at the socket, without a ``send_filter``: a filter makes the session build an
    :class:`RtpPacket` per packet, which production sessions do not do.
    """

    def __init__(self, transport: Any, sent_at: list[float]) -> None:
        self._transport = transport
        self._sent_at = sent_at

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self._sent_at.append(time.perf_counter())
        self._transport.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Leg:
    """One side of a call: loop a prompt, record the other side, time every send."""

    def __init__(self, pcm: np.ndarray) -> None:
        self.pcm = pcm
        self.sent_at: list[float] = []
        self.recorded: list[np.ndarray] = []
        self.session: RtpSession | None = None
        self.tasks: list[asyncio.Task[Any]] = []

    async def start(self, allocator: PortAllocator) -> None:
        self.session = await RtpSession.open(allocator, RtpSessionConfig(rtcp_interval=5.0))
        self.session._rtp = _Tap(self.session._rtp, self.sent_at)  # type: ignore[assignment]

    def run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.session is not None
        # Recording as the UA does it (MediaLeg): the tick hands each frame over directly.
        self.session.set_frame_sink(self.recorded.append)
        self.tasks = [loop.create_task(self._send())]

    async def _send(self) -> None:
        assert self.session is not None
        while True:  # the prompt in a loop, as `sipline call --play` plays a WAV
            await self.session.play(self.pcm)

    def intervals_ms(self, since: float) -> np.ndarray:
        times = np.array([t for t in self.sent_at if t >= since])
        if len(times) < 3:
            return np.zeros(0)
        return np.abs(np.diff(times) * 1000.0 - PTIME * 1000.0)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.session is not None:
            await self.session.close()
        # "Recording the far side": write it out as the CLI would (to memory).
        if self.recorded:
            write_wav(io.BytesIO(), np.concatenate(self.recorded[-50:]))


async def run_step(calls: int, seconds: float, pcm: np.ndarray) -> dict[str, float]:
    allocator = _ALLOCATOR
    legs: list[Leg] = []
    for _ in range(calls):
        a, b = Leg(pcm), Leg(pcm)
        await a.start(allocator)
        await b.start(allocator)
        assert a.session is not None and b.session is not None
        a.session.set_remote(("127.0.0.1", b.session.local_port))
        b.session.set_remote(("127.0.0.1", a.session.local_port))
        legs += [a, b]
    for leg in legs:
        leg.run()
    await asyncio.sleep(1.0)  # warm-up: sockets, jitter buffers
    since = time.perf_counter()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    deviations = np.concatenate([leg.intervals_ms(since) for leg in legs])
    received = sum(leg.session.stats().packets_received for leg in legs if leg.session is not None)
    lost = sum(leg.session.stats().packets_lost for leg in legs if leg.session is not None)
    for leg in legs:
        await leg.close()
    await asyncio.sleep(0.2)  # transports close on the next loop iterations
    cpu_share = cpu / wall
    return {
        "calls": calls,
        "p99_ms": float(np.percentile(deviations, 99)) if len(deviations) else float("inf"),
        "p50_ms": float(np.percentile(deviations, 50)) if len(deviations) else float("inf"),
        "cpu": cpu_share,
        "cpu_per_call_pct": 100.0 * cpu_share / calls,
        "loss": lost / max(1, received + lost),
    }


async def bench(steps: list[int], seconds: float, wav: Path | None) -> list[dict[str, float]]:
    pcm = read_wav(wav) if wav is not None else sine(440, 3.0)
    results = []
    for calls in steps:
        res = await run_step(calls, seconds, pcm)
        results.append(res)
        ok = res["p99_ms"] < LIMIT_MS and res["cpu"] < 0.95
        print(f"{calls:5d} calls: send jitter p50 {res['p50_ms']:.2f} ms p99 {res['p99_ms']:.2f} ms, "
              f"CPU {100 * res['cpu']:.0f}% ({res['cpu_per_call_pct']:.2f}%/call), loss {res['loss']:.2%}"
              f" -> {'ok' if ok else 'over the limit'}", flush=True)
        if not ok:
            break
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="10,25,50,100,150,200,300,400")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--wav", type=Path, help="prompt to play (default: a 440 Hz tone)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop if installed")
    parser.add_argument("--write", action="store_true", help="append the result to bench/RESULTS.md")
    args = parser.parse_args()
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as advertised
    except (AttributeError, OSError):
        pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    if args.uvloop:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    steps = [int(s) for s in args.steps.split(",")]
    results = asyncio.run(bench(steps, args.seconds, args.wav))
    passing = [r for r in results if r["p99_ms"] < LIMIT_MS and r["cpu"] < 0.95]
    best = passing[-1] if passing else None
    if best is None:
        line = "no step met the criterion"
    else:
        line = (f"{int(best['calls'])} concurrent calls (2 legs each, both in-process) with send jitter p99 "
                f"{best['p99_ms']:.2f} ms; CPU {100 * best['cpu']:.0f}% of one core, "
                f"{best['cpu_per_call_pct']:.2f}% per call")
    print("result:", line)
    if args.write:
        today = datetime.date.today().isoformat()
        table = "\n".join(
            f"| {int(r['calls'])} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {100 * r['cpu']:.0f}% | "
            f"{r['cpu_per_call_pct']:.2f}% | {r['loss']:.2%} |" for r in results)
        text = (f"\n## media ({today}, Python {platform.python_version()}, {platform.machine()}, "
                f"{'uvloop' if args.uvloop else 'asyncio'})\n\n`python bench/media.py --steps {args.steps} "
                f"--seconds {args.seconds}`: {line}.\n\n| calls | send jitter p50 ms | p99 ms | CPU | CPU/call "
                f"| loss |\n|---|---|---|---|---|---|\n{table}\n")
        with open(Path(__file__).with_name("RESULTS.md"), "a", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
