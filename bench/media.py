"""How many concurrent G.711 calls does one sipline process carry on one core?

What one call is (issue 4): a leg of our user agent that plays a WAV file at 50 packets/s
and records the far side, receiving 50 packets/s.  Each leg here is the UA's real media
path -- :class:`sipline.roles.ua.media.MediaLeg`, opened, negotiated through the SDP
offer/answer helpers, ``play(path)`` in a loop and ``record(path)`` -- so the RTP session,
jitter buffer, concealment, RTCP and statistics all run as in a call.

The measured process holds only these legs and is pinned to one core.  The far ends run in
a separate process on the other core(s) (``bench/media_far_end.py``: a lightweight RTP
peer on plain sockets, not a sipline session) which sends each leg its own stream, spread
over the 20 ms as calls that started at random moments would be, and timestamps every
packet it receives from a leg in the kernel (``SO_TIMESTAMPNS``).  On loopback that stamp is
the moment the leg sent the packet, so the *send-interval jitter* -- how far the time
between two consecutive packets of a leg is from 20 ms -- is measured at the socket without
adding any work to the measured process.  Its 99th percentile over all legs must stay below
5 ms.

``--in-process`` is the older, conservative mode: both legs of every call live in the
measured process (twice the work per call), and send times are noted by a tap on the
session's socket in that process.

The load grows step by step (bounded: ``--seconds`` per step plus about 2 s of set-up)
until the jitter, the CPU (one core) or the loss gives out; the report gives the largest
passing number of calls and the CPU cost per call.

    python bench/media.py                                  # default steps, 5 s each
    python bench/media.py --steps 100,200,300 --uvloop --write   # append to RESULTS.md
    python bench/media.py --in-process --steps 50,100      # both legs in-process
    python bench/media.py --steps 200 --profile            # cProfile the measured window
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime
import gc
import json
import os
import platform
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sipline.media.ports import PortAllocator
from sipline.media.tone import sine
from sipline.media.wav import write_wav
from sipline.roles.ua.media import MediaLeg, local_session
from sipline.sip.sdp import build_answer, build_offer, negotiate

PTIME = 0.02
LIMIT_MS = 5.0
GC_THRESHOLDS = (10_000, 20, 100)  # --gc tuned: young, middle, old generation thresholds
CODECS = ("PCMU", "PCMA")
# One allocator for every step: it rotates, so a step never rebinds the ports just closed.
_ALLOCATOR = PortAllocator(42000, 60999)


class FarEnds:
    """The far-end process, driven by JSON lines (see ``media_far_end.py``)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid = process.pid

    @classmethod
    async def start(cls, cores: set[int], wav: Path) -> FarEnds:
        script = Path(__file__).with_name("media_far_end.py")
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(script), ",".join(map(str, sorted(cores))), str(wav),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        return cls(process)

    async def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        await self._process.stdin.drain()
        line = await asyncio.wait_for(self._process.stdout.readline(), 30)
        if not line:
            raise RuntimeError("the far-end process died")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def stop(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(b'{"cmd": "quit"}\n')
        self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 5)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


class _SendTap:
    """In-process mode only: notes when each RTP datagram of a leg leaves its socket."""

    def __init__(self, sendto: Any, sent_at: list[float]) -> None:
        self._sendto = sendto
        self._sent_at = sent_at

    def __call__(self, data: bytes, addr: Any) -> Any:
        self._sent_at.append(time.perf_counter())
        return self._sendto(data, addr)


def _negotiate(offerer_port: int, answerer_port: int) -> tuple[Any, Any]:
    """Offer/answer between two local parties as two UAs would do it; streams of both sides."""
    offer = build_offer(local_session("127.0.0.1", offerer_port, CODECS, "1", 1))
    answer = build_answer(offer, local_session("127.0.0.1", answerer_port, CODECS, "2", 1))
    return negotiate(offer, answer, we_offered=True)[0], negotiate(offer, answer, we_offered=False)[0]


async def _play_forever(leg: MediaLeg, prompt: Path) -> None:
    while True:  # the prompt in a loop, as `sipline call --play` / `answer --play` plays a WAV
        await leg.play(prompt)


def _run_delay() -> float:
    """Seconds this process spent runnable but waiting for its core (other load on it)."""
    try:
        with open(f"/proc/{os.getpid()}/schedstat", encoding="ascii") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _gc_stats() -> tuple[int, int, int]:
    stats = gc.get_stats()
    return (stats[0]["collections"], stats[1]["collections"], stats[2]["collections"])


async def _open_legs(calls: int, far: FarEnds | None, workdir: Path) -> tuple[list[MediaLeg], list[list[float]]]:
    """N legs negotiated with the far ends (or with each other in-process), recording."""
    legs: list[MediaLeg] = []
    sent_at: list[list[float]] = []
    for _ in range(calls if far is not None else 2 * calls):
        leg = MediaLeg(_ALLOCATOR, "127.0.0.1", CODECS)
        await leg.open()
        legs.append(leg)
    if far is not None:
        ports = (await far.call("open", count=calls))["ports"]
        for leg, port in zip(legs, ports):
            ours, _ = _negotiate(leg.port, port)
            await leg.apply(ours)
    else:
        for a, b in zip(legs[::2], legs[1::2]):
            ours, theirs = _negotiate(a.port, b.port)
            await a.apply(ours)
            await b.apply(theirs)
        for leg in legs:
            assert leg.session is not None
            sent_at.append([])
            leg.session._sendto = _SendTap(leg.session._sendto, sent_at[-1])
    for index, leg in enumerate(legs):
        leg.record(workdir / f"leg{index}.wav")
    return legs, sent_at


async def _measure(seconds: float, profile: bool) -> dict[str, Any]:
    """CPU, kernel share, run-queue wait and collections of this process over the window."""
    gc0 = _gc_stats()
    profiler = cProfile.Profile() if profile else None
    cpu0, wall0, waited0 = time.process_time(), time.perf_counter(), _run_delay()
    sys0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    if profiler is not None:
        profiler.enable()
    await asyncio.sleep(seconds)
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys0
    window = {"cpu": cpu / wall, "waited": (_run_delay() - waited0) / wall,
              "kernel": kernel / cpu if cpu > 0 else 0.0, "gc": [b - a for a, b in zip(gc0, _gc_stats())]}
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return window


def _deviations_ms(sent_at: list[list[float]], since: float) -> dict[str, Any]:
    """In-process mode: send-interval jitter from the taps' timestamps."""
    deviations = np.concatenate([
        np.abs(np.diff(np.array([t for t in times if t >= since])) * 1000.0 - PTIME * 1000.0) for times in sent_at])
    ok = deviations.size > 0
    return {"p50_ms": float(np.percentile(deviations, 50)) if ok else None,
            "p99_ms": float(np.percentile(deviations, 99)) if ok else None,
            "p999_ms": float(np.percentile(deviations, 99.9)) if ok else None,
            "max_ms": float(deviations.max()) if ok else None,
            "underruns": None, "loss_out": None, "far_cpu": None, "far_late_sends": None}


async def run_step(calls: int, seconds: float, prompt: Path, far: FarEnds | None, workdir: Path,
                   profile: bool) -> dict[str, Any]:
    """One load step: set up, warm up, measure, tear down (writing the recordings)."""
    loop = asyncio.get_running_loop()
    legs, sent_at = await _open_legs(calls, far, workdir)
    tasks = [loop.create_task(_play_forever(leg, prompt)) for leg in legs]
    if far is not None:
        await far.call("start", targets=[leg.port for leg in legs])
    await asyncio.sleep(1.0)  # warm-up: sockets, jitter buffers, first RTCP
    if far is not None:
        await far.call("mark")
    since = time.perf_counter()
    window = await _measure(seconds, profile)
    remote = await far.call("report") if far is not None else None
    stats = [leg.stats() for leg in legs]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for leg in legs:
        await leg.close()  # completes the recording of the far side
    recorded = sum(path.stat().st_size for path in workdir.glob("leg*.wav"))
    for path in workdir.glob("leg*.wav"):
        path.unlink()
    if far is not None:
        await far.call("close")
    await asyncio.sleep(0.2)  # sockets close on the next loop iterations
    received = sum(s.packets_received for s in stats if s is not None)
    lost = sum(max(0, s.packets_lost) for s in stats if s is not None)
    result: dict[str, Any] = {
        "calls": calls,
        "legs": len(legs),
        **window,
        "cpu_per_call_pct": 100.0 * window["cpu"] / calls,
        "loss_in": lost / max(1, received + lost),
        "recorded_mb": recorded / 1e6,
    }
    if remote is not None:
        result.update(p50_ms=remote["p50_ms"], p99_ms=remote["p99_ms"], p999_ms=remote["p999_ms"],
                      max_ms=remote["max_ms"], underruns=remote["underruns"],
                      loss_out=remote["lost"] / max(1, remote["received"] + remote["lost"]),
                      far_cpu=remote["cpu"], far_late_sends=remote["late_sends"])
    else:
        result.update(_deviations_ms(sent_at, since))
    return result


def passed(result: dict[str, Any]) -> bool:
    p99 = result["p99_ms"]
    return (p99 is not None and p99 < LIMIT_MS and result["cpu"] < 0.95 and result["loss_in"] < 0.01
            and (result["loss_out"] or 0.0) < 0.01)


def describe(r: dict[str, Any]) -> str:
    text = (f"{r['calls']:4d} calls ({r['legs']} legs): send jitter p50 {r['p50_ms']:.2f} ms p99 "
            f"{r['p99_ms']:.2f} ms p99.9 {r['p999_ms']:.2f} ms max {r['max_ms']:.1f} ms, CPU "
            f"{100 * r['cpu']:.0f}% ({r['cpu_per_call_pct']:.3f}%/call, {100 * r['kernel']:.0f}% of it in the kernel), "
            f"loss in {r['loss_in']:.2%}")
    if r["loss_out"] is not None:
        text += (f" out {r['loss_out']:.2%}, underruns {r['underruns']}; far end CPU {100 * r['far_cpu']:.0f}%"
                 f" late sends {r['far_late_sends']}")
    return (text + f"; recorded {r['recorded_mb']:.1f} MB; gc {r['gc']}; waited for the core "
            f"{100 * r['waited']:.1f}% of the time")


async def bench(args: argparse.Namespace, cores: tuple[int, set[int]]) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="sipline-media-bench-"))
    prompt = args.wav
    if prompt is None:
        prompt = workdir / "prompt.wav"
        write_wav(prompt, sine(440, 3.0))
    far = None if args.in_process else await FarEnds.start(cores[1], prompt)
    if far is not None and args.realtime:  # keep the far ends' own timing out of the way too
        os.sched_setscheduler(far.pid, os.SCHED_RR, os.sched_param(1))
    results = []
    try:
        for calls in args.step_list:
            gc.collect()
            res = await run_step(calls, args.seconds, prompt, far, workdir, args.profile)
            results.append(res)
            print(describe(res), "->", "ok" if passed(res) else "over the limit", flush=True)
            if not passed(res) and not args.all_steps:
                break
    finally:
        if far is not None:
            await far.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _pick_cores() -> tuple[int, set[int]]:
    """The measured core (the last one we may use) and the rest for the far ends."""
    available = sorted(os.sched_getaffinity(0))
    measured = available[-1]
    return measured, (set(available[:-1]) or {measured})


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--steps", default="50,100,150,200,250,300,400")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--wav", type=Path, help="prompt to play (default: a 3 s 440 Hz tone)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (if installed)")
    parser.add_argument("--in-process", action="store_true",
                        help="both legs of every call in the measured process (the older, conservative mode)")
    parser.add_argument("--all-steps", action="store_true", help="do not stop at the first failing step")
    parser.add_argument("--profile", action="store_true", help="cProfile the measured windows")
    parser.add_argument("--gc", choices=("tuned", "default"), default="tuned",
                        help="tuned: start-up heap frozen and collector passes spaced out, as a long-running "
                             "server sets it (`sipline serve` does the like); default: CPython's thresholds")
    parser.add_argument("--realtime", action="store_true",
                        help="run the measured process under SCHED_RR (as `asterisk -p` does): on a shared "
                             "machine, other processes on the core then cannot delay its packets")
    parser.add_argument("--write", action="store_true", help="append the result to bench/RESULTS.md")
    args = parser.parse_args()
    args.step_list = [int(s) for s in args.steps.split(",")]
    cores = _pick_cores()
    os.sched_setaffinity(0, {cores[0]})  # one core, as the issue says
    if args.realtime:
        os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(1))
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    if args.uvloop:
        import uvloop

        uvloop.install()
    if args.gc == "tuned":
        # Nothing on the media path makes cyclic garbage (reference counting frees every
        # packet), but with CPython's thresholds a full pass over a few hundred calls'
        # objects comes every few seconds and stops the loop for tens of milliseconds.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
    mode = ("both legs in-process" if args.in_process
            else f"far ends in a separate process (bench/media_far_end.py) on core(s) {sorted(cores[1])}")
    if args.realtime:
        mode += ", SCHED_RR"
    mode += f", {args.gc} GC"
    print(f"measured process on core {cores[0]}, {mode}, {'uvloop' if args.uvloop else 'asyncio'}", flush=True)
    results = asyncio.run(bench(args, cores))
    passing = [r for r in results if passed(r)]
    best = max(passing, key=lambda r: r["calls"]) if passing else None
    if best is None:
        line = "no step met the criterion"
    else:
        line = (f"{best['calls']} concurrent calls ({best['legs']} legs in the measured process, {mode}) with "
                f"send jitter p99 {best['p99_ms']:.2f} ms; CPU {100 * best['cpu']:.0f}% of one core, "
                f"{best['cpu_per_call_pct']:.3f}% per call")
    print("result:", line)
    if args.write:
        _write(args, results, line)


def _write(args: argparse.Namespace, results: list[dict[str, Any]], line: str) -> None:
    today = datetime.date.today().isoformat()
    rows = []
    for r in results:
        out = f"{r['loss_out']:.2%}" if r["loss_out"] is not None else "-"
        rows.append(f"| {r['calls']} | {r['legs']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {100 * r['cpu']:.0f}% | "
                    f"{r['cpu_per_call_pct']:.3f}% | {r['loss_in']:.2%} / {out} | {'ok' if passed(r) else 'fail'} |")
    flags = " ".join(a for a in sys.argv[1:] if a != "--write")
    text = (f"\n## media ({today}, Python {platform.python_version()}, {platform.machine()}, "
            f"{'uvloop' if args.uvloop else 'asyncio'})\n\n`python bench/media.py {flags}`: {line}.\n\n"
            "| calls | legs measured | send jitter p50 ms | p99 ms | CPU | CPU/call | loss in / out | |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    with open(Path(__file__).with_name("RESULTS.md"), "a", encoding="utf-8") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
