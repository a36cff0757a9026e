"""Calls per second through sipline's proxy and through Kamailio's, on this machine.

Both servers do the same job: a stateful, record-routing proxy that sends
every new call to one static next hop, a SIPp UAS (tests/interop/scenarios/
uas_answer.xml: 180, 200, ACK, BYE).  A SIPp UAC (uac_call.xml: INVITE, ACK
and BYE along the route set) places calls at increasing rates, each step
lasting ``--seconds``.  A step passes when fewer than 0.1% of its calls fail
and SIPp kept the rate; the highest passing rate is the server's capacity.
The server's CPU seconds per 1,000 calls are read from /proc (utime + stime of
the server and all its worker processes) around the last passing step.

sipline runs with ``[[proxy.static_routes]] match = "prefix:1"`` and without
caller authentication (Kamailio's proxy does none either); Kamailio runs
bench/kamailio-proxy.cfg with as many workers as cores.  SIPp itself needs
CPU too and shares the machine: compare ratios from one run, not absolutes.

    python3 bench/proxy_vs_kamailio.py                 # both servers, print the table
    python3 bench/proxy_vs_kamailio.py --write         # and append it to bench/RESULTS.md
    python3 bench/proxy_vs_kamailio.py --only kamailio --start 100 --stop 3000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "interop"))
import harness
from loadgen import LoadGenCpu

SIPLINE_WORKERS = 1


#: Kamailio's shared memory in MB.  The harness starts it with 64 MB (enough for the interop
#: tests); at a few hundred calls/s tm runs out ("new_t(): out of mem", answered "500 No
#: error (2/SL)"): every transaction lives on for its wait timer, so a benchmark must not
#: mistake an undersized pool for the proxy's capacity.
KAMAILIO_SHM_MB = 1024


def kamailio_memory(mb: int) -> None:
    """Start Kamailio with ``-m mb`` instead of the harness's 64."""
    command = harness.kamailio_command

    def with_memory(*args: object, **kwargs: object) -> list[str]:
        argv = command(*args, **kwargs)  # type: ignore[arg-type]
        index = argv.index("-m")
        return [*argv[:index + 1], str(mb), *argv[index + 2:]]

    harness.kamailio_command = with_memory  # type: ignore[assignment]


def sipline_workers(count: int) -> None:
    """Run sipline with ``workers = count`` (sipline.ops.workers).

    Until sipline/ops/cli.py carries the workers hook, ``python -m sipline.ops.workers``
    is the same CLI with the hook applied; with one worker the plain CLI runs.
    """
    global SIPLINE_WORKERS
    SIPLINE_WORKERS = count
    if count > 1:
        command = harness.sipline_command()
        harness.sipline_command = lambda: [*command[:-1], "sipline.ops.workers"]  # type: ignore[assignment]

CALLEE = "1000"  # numeric, so that sipline's prefix:1 static route matches

#: Printed under every table: what bounds the measured rates besides the servers.
LIMITS = """
Limits of this measurement: one SIPp UAC and one SIPp UAS run on the same cores as the
server, so a server that needs little CPU per call (Kamailio) is stopped by the SIPp
processes and the machine, not by itself: compare CPU seconds per 1,000 calls as well as
rates.  Kamailio runs with -m {shm} MB of shared memory (tm keeps each transaction for its
wait timer; the harness's 64 MB ran out at 570 calls/s and was the earlier limit).
"""


def start_server(kind: str, workdir: Path, uas_port: int, workers: int) -> harness.Server:
    next_hop = f"sip:{harness.LOOPBACK}:{uas_port}"
    if kind == "kamailio":
        binary = harness.find_binary("kamailio")
        return harness.start_kamailio(
            workdir, HERE / "kamailio-proxy.cfg", binary=binary,
            defines={"NEXT_HOP": f'"{next_hop}"', "WORKERS": str(workers)})
    config = f"workers = {SIPLINE_WORKERS}\n" + harness.sipline_config(
        static_routes=[("prefix:1", f"{next_hop};transport=udp")],
        require_auth_for_local_callers=False, log_level="warning")
    return harness.start_sipline(workdir, config=config)


def bench_server(kind: str, args: argparse.Namespace, root: Path) -> tuple[harness.LoadStep | None, str]:
    """The best step and a line on where the search stopped (server and SIPp CPU)."""
    workdir = root / kind
    uas_port = harness.free_port()
    print(f"{kind}:")
    server = start_server(kind, workdir / "server", uas_port, args.workers)
    with harness.running(server):
        # One UAS for the whole search; it ends by its own -timeout at the latest.
        uas = harness.start_uas("uas_answer", workdir / "uas", port=uas_port, user=CALLEE,
                                calls=0, timeout_s=args.budget, trace_messages=False,
                                limit=100000)
        sipp = LoadGenCpu(extra=lambda: harness.cpu_seconds(uas.peer.pid))
        try:
            counter = iter(range(1, 1000))
            last: list[float] = []

            def step(rate: float) -> harness.LoadStep:
                last.append(rate)
                result = sipp.measure(rate, lambda: harness.run_load_step(
                    server, "uac_call", workdir / f"uac-{next(counter)}", rate=rate,
                    seconds=args.seconds, service=CALLEE, duration_ms=args.call_ms),
                    lambda r: r.successful)  # type: ignore[attr-defined]
                assert isinstance(result, harness.LoadStep)
                return result

            def log(line: str) -> None:
                print(f"{line}; {sipp.describe(last[-1])}")

            best, steps = harness.search_max_rate(step, rates(args), seconds=args.seconds,
                                                  max_failure_ratio=args.max_failed, log=log)
        finally:
            uas.stop()
    return best, stop_note(kind, best, steps, sipp, args.seconds)


def stop_note(kind: str, best: harness.LoadStep | None, steps: list[harness.LoadStep],
              sipp: LoadGenCpu, seconds: float) -> str:
    """Where and why the search ended, with the CPU the server and SIPp spent there."""
    if not steps:
        return f"{kind}: no step run"
    end = steps[-1]
    passed = best is end
    verdict = "passed the last rate tried" if passed else (
        f"failed {end.rate:g}/s ({end.successful}/{end.attempted} ok in {end.wall_s:.1f} s)")
    cores = f"{end.cpu_s / max(end.wall_s, 1e-9):.2f} cores"
    return (f"{kind}: {verdict}; there the server used {end.cpu_s:.2f} CPU s ({cores}) and "
            f"{sipp.describe(end.rate)}")


def rates(args: argparse.Namespace) -> list[float]:
    return harness.geometric_rates(args.start, args.stop, args.factor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=["sipline", "kamailio"],
                        help="bench only this server (repeatable; default both)")
    parser.add_argument("--start", type=float, default=50, help="first call rate (calls/s)")
    parser.add_argument("--stop", type=float, default=20000, help="highest rate tried")
    parser.add_argument("--factor", type=float, default=1.5, help="rate growth per step")
    parser.add_argument("--seconds", type=float, default=5, help="length of each step")
    parser.add_argument("--call-ms", type=int, default=0, help="pause between ACK and BYE")
    parser.add_argument("--max-failed", type=float, default=0.001,
                        help="failed-call ratio a step may reach (default 0.001 = 0.1%%)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="Kamailio worker processes (default: cores)")
    parser.add_argument("--sipline-workers", type=int, default=os.cpu_count() or 1,
                        help="sipline worker processes (default: cores)")
    parser.add_argument("--budget", type=float, default=600,
                        help="upper bound in seconds on one server's whole search")
    parser.add_argument("--kamailio-shm", type=int, default=KAMAILIO_SHM_MB,
                        help="Kamailio shared memory in MB (-m)")
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    parser.add_argument("--write", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args(argv)
    sipline_workers(args.sipline_workers)
    kamailio_memory(args.kamailio_shm)

    servers = args.only or ["sipline", "kamailio"]
    root = Path(tempfile.mkdtemp(prefix="sipline-bench-proxy-"))
    results: dict[str, harness.LoadStep | None] = {}
    notes: list[str] = []
    try:
        for kind in servers:
            results[kind], note = bench_server(kind, args, root)
            notes.append(note)
    finally:
        if args.keep:
            print(f"logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    title = (f"Stateful record-routing proxy, UDP, SIPp uac_call -> uas_answer, "
             f"{args.seconds:g} s steps x{args.factor:g} from {args.start:g}/s, "
             f"{os.cpu_count()} cores, Kamailio workers {args.workers}, "
             f"sipline workers {args.sipline_workers}")
    table = harness.comparison_table(title, "calls", results) + LIMITS.format(shm=args.kamailio_shm) + "".join(
        f"- {note}\n" for note in notes)
    print()
    print(table)
    if args.write:
        harness.append_results(HERE / "RESULTS.md", "Proxy: sipline vs Kamailio", table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
