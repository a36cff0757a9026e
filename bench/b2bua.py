"""B2BUA calls per second: sipline's SBC (media relay off and on) and sippy's b2bua, one run.

Every server does the same job: take a call from a SIPp UAC, place it as a second, independent
call towards a SIPp UAS (tests/interop/scenarios/uas_answer.xml: 180, 200, ACK, BYE) and
bridge the two until the caller hangs up.

- sipline: ``sipline serve`` with one customer trunk (the UAC, ACL 127.0.0.1/32, German number
  plan), one carrier trunk (the UAS, no OPTIONS keepalives) and a route ``+49`` -> carrier.
  Its defaults stay on: call records in SQLite, channel/CPS accounting, topology hiding.
  ``[sbc] media = "off"`` (SDP addresses pass, only o= is rewritten) and ``"relay"`` (the
  built-in RTP relay anchors every call: two port pairs, SDP rewritten on both legs).
- sippy: the ``b2bua`` command of PyPI ``sippy`` (bench/.venv) with ``--static_route`` to the
  UAS, RADIUS auth and accounting off, ``SIPLOG_LVL=WARN`` (no per-message logging).  Without
  an rtpproxy it does not touch media, so it is run once, signalling only.

With the relay on, the UAC plays a generated RTP capture after the ACK
(scenarios/sbc_uac_rtp.xml, ``--rtp-packets`` G.711 packets at 20 ms) and the UAS echoes
everything it receives (SIPp ``-rtp_echo``), so the relay carries RTP both ways.  SIPp plays
captures through a raw socket: this needs root; without it relay-on runs are skipped.

Each rate is held for ``--seconds``; a step passes when under 0.1% of its calls fail and SIPp
kept the rate, i.e. the step took at most 1.2 x (``--seconds`` + ``--call-ms``) + 1 s
(tests/interop/harness.py: run_load_step/search_max_rate).  CPU seconds are the
server process's (utime + stime from /proc) over the last passing step, divided by its calls.
SIPp shares the machine: compare ratios from one run, not absolute figures.

    python3 bench/b2bua.py                       # all three, print the table
    python3 bench/b2bua.py --write               # and append it to bench/RESULTS.md
    python3 bench/b2bua.py --only sippy --only sipline-off --start 100 --stop 1000
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "interop"))
import harness  # noqa: E402

CALLEE = "+4930123456"
SIPPY = HERE / ".venv" / "bin" / "b2bua"
PCAP_NAME = "sbc_rtp.pcap"  # scenarios/sbc_uac_rtp.xml plays it from SIPp's working directory
SERVERS = ("sippy", "sipline-off", "sipline-relay")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One server's search: the best step (None: not even the first rate passed)."""

    kind: str
    best: harness.LoadStep | None
    steps: list[harness.LoadStep]
    note: str = ""


# ----------------------------------------------------------------------------- RTP capture


def write_rtp_pcap(path: Path, packets: int, *, payload_type: int = 0) -> Path:
    """A libpcap file (Ethernet, IPv4, UDP) of ``packets`` G.711 RTP packets 20 ms apart.

    SIPp's play_pcap_audio keeps the timing and the RTP, and rewrites addresses and ports to
    the call's media addresses, so the ones written here are placeholders.
    """
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    ssrc = 0x5EB0B0A
    for seq in range(packets):
        rtp = struct.pack("!BBHII", 0x80, payload_type, seq, seq * 160, ssrc) + b"\xff" * 160
        udp = struct.pack("!HHHH", 40000, 40002, 8 + len(rtp), 0) + rtp
        ip_header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq & 0xFFFF, 0, 64, 17, 0,
                                bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        checksum = _ip_checksum(ip_header)
        ip_header = ip_header[:10] + struct.pack("!H", checksum) + ip_header[12:]
        frame = b"\x00" * 12 + b"\x08\x00" + ip_header + udp
        micros = seq * 20_000
        out.append(struct.pack("<IIII", 1_700_000_000 + micros // 1_000_000, micros % 1_000_000,
                               len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))
    return path


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# ----------------------------------------------------------------------------- servers


def sipline_config(uas_port: int, media: str, workers: int = 1) -> str:
    sbc = {"media": media, "health_checks": False, "rtp_port_min": 20000, "rtp_port_max": 29999}
    extra = ("[sbc]\n" + "".join(f"{k} = {harness.toml_value(v)}\n" for k, v in sbc.items()) + "\n"
             + harness.toml_tables("trunks", [
                 {"name": "uas", "kind": "carrier", "hosts": [f"udp:{harness.LOOPBACK}:{uas_port}"],
                  "options_interval": 0.0},
                 {"name": "uac", "kind": "customer", "acl": [f"{harness.LOOPBACK}/32"],
                  "numbers": {"region": "DE"}},
             ]) + "\n"
             + harness.toml_tables("routes", [{"prefix": "+49", "carrier": "uas"}]))
    # ``workers`` is a top-level key: it must come before the first [table].
    head = f"workers = {workers}\n" if workers > 1 else ""
    return head + harness.sipline_config(log_level="warning", drain_timeout=1.0, extra=extra)


def start_sippy(workdir: Path, uas_port: int, timeout: float = 20.0) -> harness.Server:
    if not SIPPY.exists():
        raise harness.HarnessError(f"{SIPPY} missing: bench/.venv/bin/pip install sippy==2.5.0 "
                                   "(bench/requirements-competitors.txt)")
    port = harness.free_port()
    command = [str(SIPPY), f"--sip_address={harness.LOOPBACK}", f"--sip_port={port}",
               f"--static_route={harness.LOOPBACK}:{uas_port}", "--auth_enable=off",
               "--acct_enable=off", "--foreground=on", f"--logfile={workdir / 'sippy-file.log'}"]
    env = dict(os.environ, SIPLOG_LVL="WARN")
    peer = harness.spawn("sippy", command, workdir, env=env)
    server = harness.Server(peer=peer, port=port, domain=harness.LOOPBACK, kind="sippy")
    try:
        # sippy answers OPTIONS with 501: any final answer means it is up.
        harness.wait_sip_ready(peer, port, tcp=False, timeout=timeout)
    except BaseException:
        peer.stop()
        raise
    return server


def start_server(kind: str, workdir: Path, uas_port: int, workers: int = 1) -> harness.Server:
    if kind == "sippy":
        return start_sippy(workdir, uas_port)
    media = "relay" if kind == "sipline-relay" else "off"
    return harness.start_sipline(workdir, config=sipline_config(uas_port, media, workers))


def relayed_packets(workdir: Path) -> tuple[int, int] | None:
    """(calls with media stats, RTP packets the relay received) from sipline's call records."""
    database = workdir / "data" / "sipline.db"
    if not database.exists():
        return None
    import json

    with sqlite3.connect(database) as db:
        try:
            rows = db.execute("SELECT media_stats FROM call_records WHERE media_stats IS NOT NULL").fetchall()
        except sqlite3.Error:
            return None
    calls = packets = 0
    for (text,) in rows:
        stats = json.loads(text)
        relay = stats.get("relay", stats) if isinstance(stats, dict) else {}
        got = sum(int(relay.get(side, {}).get("packets", 0)) for side in ("a", "b")
                  if isinstance(relay.get(side), dict))
        calls += 1
        packets += got
    return calls, packets


# ----------------------------------------------------------------------------- the search


def bench_server(kind: str, args: argparse.Namespace, root: Path) -> Outcome:
    workdir = root / kind
    uas_port = harness.free_port()
    print(f"{kind}:", flush=True)
    relay = kind == "sipline-relay"
    server = start_server(kind, workdir / "server", uas_port, args.workers)
    steps: list[harness.LoadStep] = []
    note = ""
    with harness.running(server):
        uas = harness.start_uas("uas_answer", workdir / "uas", port=uas_port, user=CALLEE,
                                calls=0, timeout_s=args.budget, trace_messages=False,
                                limit=100000, extra=["-rtp_echo"] if relay else [])
        try:
            counter = iter(range(1, 1000))

            def step(rate: float) -> harness.LoadStep:
                stepdir = workdir / f"uac-{next(counter)}"
                stepdir.mkdir(parents=True, exist_ok=True)
                scenario = "uac_call"
                if relay:
                    write_rtp_pcap(stepdir / PCAP_NAME, args.rtp_packets)
                    scenario = "sbc_uac_rtp"
                return harness.run_load_step(server, scenario, stepdir, rate=rate,
                                             seconds=args.seconds, service=CALLEE,
                                             duration_ms=args.call_ms, domain=harness.LOOPBACK)

            # The last call starts after --seconds and ends --call-ms later: that is the wall
            # time of a step that kept its rate.
            expected = args.seconds + args.call_ms / 1000
            best, steps = harness.search_max_rate(step, rates(args), seconds=expected,
                                                  max_failure_ratio=args.max_failed)
        finally:
            uas.stop()
    if relay:
        counted = relayed_packets(workdir / "server")
        if counted is not None:
            calls, packets = counted
            note = (f"relay counted {packets} RTP packets in {calls} call records "
                    f"({packets / max(calls, 1):.1f} per call; {2 * args.rtp_packets} sent per call)")
            print(f"  {note}")
    return Outcome(kind, best, steps, note)


def rates(args: argparse.Namespace) -> list[float]:
    return harness.geometric_rates(args.start, args.stop, args.factor)


LABELS = {
    "sippy": ("sippy 2.5.0 `b2bua`", "not relayed"),
    "sipline-off": ("sipline SBC", "off"),
    "sipline-relay": ("sipline SBC", "relay, RTP both ways"),
}


def table(outcomes: dict[str, Outcome], args: argparse.Namespace) -> str:
    title = (f"B2BUA, UDP, SIPp uac_call -> server -> uas_answer, calls held {args.call_ms} ms, "
             f"{args.seconds:g} s steps x{args.factor:g} from {args.start:g}/s, "
             f"{os.cpu_count()} cores, "
             + ("one server process each, " if args.workers <= 1 else f"sipline workers = {args.workers}, ")
             + f"Python {platform.python_version()}")
    sippy = outcomes.get("sippy")
    lines = ["| server | media | max calls/s (<0.1% failed) | server CPU ms per call "
             "| calls/s vs sippy |", "|---|---|---:|---:|---:|"]
    for kind, outcome in outcomes.items():
        name, media = LABELS[kind]
        if outcome.best is None:
            lines.append(f"| {name} | {media} | below {args.start:g} | - | - |")
            continue
        ratio = "-"
        if sippy is not None and sippy.best is not None and kind != "sippy":
            ratio = f"{outcome.best.rate / sippy.best.rate:.2f}x"
        lines.append(f"| {name} | {media} | {outcome.best.rate:g} | "
                     f"{outcome.best.cpu_per_1000:.2f} | {ratio} |")
    notes = [f"- {LABELS[k][0]} ({LABELS[k][1]}): {o.note}" for k, o in outcomes.items() if o.note]
    steps = []
    for kind, outcome in outcomes.items():
        cells = ", ".join(f"{s.rate:g}/s {s.successful}/{s.attempted} in {s.wall_s:.1f} s"
                          for s in outcome.steps)
        steps.append(f"- {kind}: {cells}")
    text = f"{title}\n\n" + "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "\n".join(notes) + "\n"
    text += "\nSteps (calls ok / attempted, wall time):\n\n" + "\n".join(steps) + "\n"
    return text


def can_play_pcap() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=list(SERVERS),
                        help="bench only this server (repeatable; default all three)")
    parser.add_argument("--start", type=float, default=50, help="first call rate (calls/s)")
    parser.add_argument("--stop", type=float, default=3000, help="highest rate tried")
    parser.add_argument("--factor", type=float, default=1.3, help="rate growth per step")
    parser.add_argument("--seconds", type=float, default=5, help="length of each step")
    parser.add_argument("--call-ms", type=int, default=600,
                        help="pause between ACK and BYE (relay on: covers the RTP)")
    parser.add_argument("--rtp-packets", type=int, default=25,
                        help="RTP packets the caller sends per call with the relay on (20 ms apart)")
    parser.add_argument("--max-failed", type=float, default=0.001,
                        help="failed-call ratio a step may reach (default 0.001 = 0.1%%)")
    parser.add_argument("--budget", type=float, default=900,
                        help="upper bound in seconds on one server's whole search")
    parser.add_argument("--workers", type=int, default=1,
                        help="sipline worker processes (workers = N in its config; sippy is unaffected)")
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    parser.add_argument("--write", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.rtp_packets * 20 > args.call_ms:
        parser.error("--call-ms must cover the RTP (--rtp-packets x 20 ms)")
    servers = list(args.only or SERVERS)
    if "sipline-relay" in servers and not can_play_pcap():
        print("sipline-relay skipped: SIPp plays RTP captures through a raw socket (needs root)")
        servers.remove("sipline-relay")

    root = Path(tempfile.mkdtemp(prefix="sipline-bench-b2bua-"))
    outcomes: dict[str, Outcome] = {}
    try:
        for kind in servers:
            outcomes[kind] = bench_server(kind, args, root)
    finally:
        if args.keep:
            print(f"logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    text = table(outcomes, args)
    print()
    print(text)
    if args.write:
        harness.append_results(HERE / "RESULTS.md", "B2BUA: sipline SBC vs sippy", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
