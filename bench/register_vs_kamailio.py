"""Registrations per second with digest auth: sipline's registrar against Kamailio's.

A SIPp UAC (tests/interop/scenarios/register_auth.xml) registers users from a
pool of ``--users`` subscribers, one registration per SIPp call: REGISTER,
401 challenge, REGISTER with credentials (MD5), 200.  The pool is walked in
order and wraps around, so later rounds are refreshes of existing bindings.
Rates grow step by step (each ``--seconds`` long); a step passes when fewer
than 0.1% of registrations fail and SIPp kept the rate.  The server's CPU
seconds per 1,000 registrations come from /proc (all its processes).

sipline stores subscribers and bindings in SQLite (its default) and offers
MD5 only (SIPp answers no other algorithm); Kamailio runs
bench/kamailio-registrar.cfg with WITH_AUTH: subscribers in db_text (cached
in memory), bindings in memory (usrloc db_mode 0).  Compare ratios from one run.

    python3 bench/register_vs_kamailio.py
    python3 bench/register_vs_kamailio.py --write
    python3 bench/register_vs_kamailio.py --only kamailio --users 500 --start 200
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

#: Printed under every table: what bounds the measured rates besides the servers.
LIMITS = """
Limits of this measurement: the SIPp UAC runs on the same cores as the server; a server
that needs little CPU per registration (Kamailio) is stopped by SIPp and the machine, or by
--stop, not by itself: compare CPU seconds per 1,000 registrations as well as rates.
"""


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


def users(count: int) -> list[tuple[str, str]]:
    return [(f"user{index:05d}", f"pw{index:05d}x") for index in range(count)]


def start_server(kind: str, workdir: Path, pool: list[tuple[str, str]],
                 workers: int) -> harness.Server:
    if kind == "kamailio":
        url = harness.write_kamailio_dbtext(workdir / "db", pool)
        return harness.start_kamailio(
            workdir, HERE / "kamailio-registrar.cfg", binary=harness.find_binary("kamailio"),
            defines={"WITH_AUTH": None, "DBURL": f'"{url}"', "WORKERS": str(workers)})
    print(f"  adding {len(pool)} users with `sipline users add` ...")
    config = f"workers = {SIPLINE_WORKERS}\n" + harness.sipline_config(log_level="warning")
    return harness.start_sipline(workdir, config=config, users=pool, timeout=30)


def bench_server(kind: str, args: argparse.Namespace, root: Path) -> tuple[harness.LoadStep | None, str]:
    """The best step and a line on where the search stopped (server and SIPp CPU)."""
    workdir = root / kind
    pool = users(args.users)
    print(f"{kind}:")
    server = start_server(kind, workdir / "server", pool, args.workers)
    inf = harness.write_users_csv(root / f"{kind}-users.csv", pool)
    sipp = LoadGenCpu()
    with harness.running(server):
        counter = iter(range(1, 1000))
        last: list[float] = []

        def step(rate: float) -> harness.LoadStep:
            last.append(rate)
            result = sipp.measure(rate, lambda: harness.run_load_step(
                server, "register_auth", workdir / f"uac-{next(counter)}", rate=rate,
                seconds=args.seconds, inf=inf, auth=("[field0]", "[field1]"),
                auth_uri=server.domain, domain=server.domain,
                keys={"expires": "3600"}), lambda r: r.successful)  # type: ignore[attr-defined]
            assert isinstance(result, harness.LoadStep)
            return result

        def log(line: str) -> None:
            print(f"{line}; {sipp.describe(last[-1])}")

        best, steps = harness.search_max_rate(
            step, harness.geometric_rates(args.start, args.stop, args.factor),
            seconds=args.seconds, max_failure_ratio=args.max_failed, log=log)
    return best, stop_note(kind, best, steps, sipp)


def stop_note(kind: str, best: harness.LoadStep | None, steps: list[harness.LoadStep],
              sipp: LoadGenCpu) -> str:
    """Where and why the search ended, with the CPU the server and SIPp spent there."""
    if not steps:
        return f"{kind}: no step run"
    end = steps[-1]
    verdict = "passed the last rate tried (--stop)" if best is end else (
        f"failed {end.rate:g}/s ({end.successful}/{end.attempted} ok in {end.wall_s:.1f} s)")
    cores = f"{end.cpu_s / max(end.wall_s, 1e-9):.2f} cores"
    return (f"{kind}: {verdict}; there the server used {end.cpu_s:.2f} CPU s ({cores}) and "
            f"{sipp.describe(end.rate)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=["sipline", "kamailio"],
                        help="bench only this server (repeatable; default both)")
    parser.add_argument("--users", type=int, default=100, help="subscribers in the pool")
    parser.add_argument("--start", type=float, default=50, help="first rate (registrations/s)")
    parser.add_argument("--stop", type=float, default=20000, help="highest rate tried")
    parser.add_argument("--factor", type=float, default=1.5, help="rate growth per step")
    parser.add_argument("--seconds", type=float, default=5, help="length of each step")
    parser.add_argument("--max-failed", type=float, default=0.001,
                        help="failed ratio a step may reach (default 0.001 = 0.1%%)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="Kamailio worker processes (default: cores)")
    parser.add_argument("--sipline-workers", type=int, default=os.cpu_count() or 1,
                        help="sipline worker processes (default: cores)")
    parser.add_argument("--kamailio-shm", type=int, default=KAMAILIO_SHM_MB,
                        help="Kamailio shared memory in MB (-m)")
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    parser.add_argument("--write", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args(argv)
    sipline_workers(args.sipline_workers)
    kamailio_memory(args.kamailio_shm)

    servers = args.only or ["sipline", "kamailio"]
    root = Path(tempfile.mkdtemp(prefix="sipline-bench-register-"))
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
    title = (f"Registrar, digest MD5, UDP, SIPp register_auth over {args.users} users, "
             f"{args.seconds:g} s steps x{args.factor:g} from {args.start:g}/s, "
             f"{os.cpu_count()} cores, Kamailio workers {args.workers}, "
             f"sipline workers {args.sipline_workers}")
    table = harness.comparison_table(title, "registrations", results) + LIMITS + "".join(
        f"- {note}\n" for note in notes)
    print()
    print(table)
    if args.write:
        harness.append_results(HERE / "RESULTS.md", "Registrar: sipline vs Kamailio", table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
