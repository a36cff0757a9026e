"""Proxy fast-path benchmark: sipline against other pure-Python SIP parsers.

This is a benchmark, not a test.  It measures how many messages per second each
library gets through the work a stateful proxy does for every message it
forwards:

    parse -> read top Via (branch, host, port), To/From (URI, tag), Call-ID,
    CSeq, Route set, Max-Forwards -> decrement Max-Forwards -> put a new Via on
    top -> serialize to bytes

for one typical INVITE (with SDP and two Route headers) and one typical 200 OK
(with SDP, two Vias and two Record-Routes, no Max-Forwards: a UAS does not send
one, so the decrement is skipped there).  Every library runs in the same
process and the same run, on the same input bytes, and must return bytes.

Competitors: sippy (SipRequest/SipResponse), pyVoIP (SIPMessage) and
sipmessage (Message).  Each does the same steps with its own API as closely as
that API allows; the comments above each runner say exactly what it does and
where it has to do something different.  A library that is not installed is
reported as "not installed"; one that fails on the input is reported with its
error.

sipline comes in two builds of the same sources: pure Python (what an editable install,
and so bench/.venv, runs) and the parser compiled with mypyc (``scripts/setup`` builds it
into build/mypyc; see DEVELOPERS.md).  By default both are measured: the pure build in this
process, the compiled one in a child process with build/mypyc first on ``sys.path``; each
row says which build it measured.  ``--build pure`` or ``--build mypyc`` measures one.

Usage (from the repository root or bench/):

    python bench/parse.py                 # creates bench/.venv on first use
    python bench/parse.py --build pure    # only the build importable here (no compile step)
    python bench/parse.py --write         # also appends the table to bench/RESULTS.md
    python bench/parse.py --number 5000 --repeat 7
    python bench/parse.py --here          # use the current interpreter as is

Timing: ``timeit`` with ``--number`` calls per round, best of ``--repeat``
rounds (the minimum is the least disturbed by the rest of the machine).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
REQUIREMENTS = BENCH / "requirements-competitors.txt"
RESULTS = BENCH / "RESULTS.md"
MYPYC_SITE = ROOT / "build" / "mypyc"

# The Via a proxy at 192.0.2.1 adds on top.
NEW_VIA = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK.proxy.4f1a9c2e"
NEW_VIA_HOST, NEW_VIA_PORT, NEW_VIA_BRANCH = "192.0.2.1", 5060, "z9hG4bK.proxy.4f1a9c2e"

_SDP_OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\n"
    b"s=-\r\n"
    b"c=IN IP4 198.51.100.7\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

_SDP_ANSWER = (
    b"v=0\r\n"
    b"o=bob 2808844564 2808844564 IN IP4 203.0.113.20\r\n"
    b"s=-\r\n"
    b"c=IN IP4 203.0.113.20\r\n"
    b"t=0 0\r\n"
    b"m=audio 30000 RTP/AVP 0 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)


def _message(head: bytes, body: bytes) -> bytes:
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


# A phone's INVITE as it arrives at the second proxy of a loose-routed path.
INVITE = _message(
    b"INVITE sip:bob@203.0.113.20:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK.e2b71c0a.1;rport\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.7:5062;received=198.51.100.7;rport=5062;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 69\r\n"
    b"Route: <sip:192.0.2.1;lr>\r\n"
    b"Route: <sip:edge.example.net;lr;transport=udp>\r\n"
    b"Record-Route: <sip:198.51.100.1;lr>\r\n"
    b"From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n"
    b"To: \"Bob\" <sip:bob@example.net>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@198.51.100.7:5062;transport=udp>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, UPDATE, PRACK, INFO\r\n"
    b"Supported: replaces, timer, 100rel\r\n"
    b"User-Agent: Example Phone 4.2\r\n"
    b"Session-Expires: 1800\r\n"
    b"Content-Type: application/sdp\r\n",
    _SDP_OFFER,
)

# Bob's 200 OK on its way back through the same proxies.
OK = _message(
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK.e2b71c0a.1;rport=5060\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.7:5062;received=198.51.100.7;rport=5062;branch=z9hG4bK776asdhds\r\n"
    b"Record-Route: <sip:192.0.2.1;lr>\r\n"
    b"Record-Route: <sip:198.51.100.1;lr>\r\n"
    b"From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n"
    b"To: \"Bob\" <sip:bob@example.net>;tag=a6c85cf\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:bob@203.0.113.20:5060>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
    b"Supported: replaces, timer\r\n"
    b"Server: Example PBX 9\r\n"
    b"Content-Type: application/sdp\r\n",
    _SDP_ANSWER,
)

FastPath = Callable[[bytes], bytes]


# ----------------------------------------------------------------- sipline
def _sipline() -> FastPath:
    """Exactly the steps of the module docstring, through the public API.

    Header values are parsed lazily by sipline, so reading a field parses only
    that header; untouched headers are written back byte for byte.
    """
    from sipline.sip.message import parse_message

    def run(data: bytes) -> bytes:
        msg = parse_message(data)
        via = msg.via
        _ = via.branch, via.host, via.port
        _ = msg.to.uri, msg.to.tag, msg.from_.uri, msg.from_.tag
        _ = msg.call_id, msg.cseq.seq, msg.cseq.method
        _ = msg.routes
        max_forwards = msg.max_forwards
        if max_forwards is not None:
            msg.max_forwards = max_forwards - 1
        msg.headers.prepend("Via", NEW_VIA)
        return bytes(msg)

    return run


# ----------------------------------------------------------------- sippy
def _sippy() -> FastPath:
    """sippy's own proxy idiom (sippy.StatefulProxy.recvRequest).

    - sippy parses ``str``, so the datagram is decoded first and the result
      encoded at the end (its transports do the same around the parser).
    - SipRequest/SipResponse(buf=...) splits all headers into typed header
      objects; a header's value is parsed when ``getHFBody`` first asks for it.
    - Max-Forwards: ``getHFBody('max-forwards').incNum(-1)``.
    - New Via: a ``SipHeader('via', SipVia(text))`` inserted before the first
      Via with ``insertHeaderBefore``, as StatefulProxy does (it generates the
      branch itself; here the text is given so every library writes the same).
    - Serialize: ``str(msg)``, which re-renders each header from its object
      (parsed ones from their fields, the others from their stored text) and
      regenerates Content-Type/Content-Length around the body.
    """
    from sippy.SipHeader import SipHeader
    from sippy.SipRequest import SipRequest
    from sippy.SipResponse import SipResponse
    from sippy.SipVia import SipVia

    def run(data: bytes) -> bytes:
        text = data.decode("utf-8")
        msg = SipResponse(buf=text) if text.startswith("SIP/2.0 ") else SipRequest(buf=text)
        via = msg.getHFBody("via")
        _ = via.getBranch(), via.getAddr()
        to, from_ = msg.getHFBody("to"), msg.getHFBody("from")
        _ = to.getUrl(), to.getTag(), from_.getUrl(), from_.getTag()
        _ = str(msg.getHFBody("call-id"))
        cseq = msg.getHFBody("cseq")
        _ = cseq.getCSeqNum(), cseq.getCSeqMethod()
        _ = [route.getUrl() for route in msg.getHFBodys("route")]
        if msg.countHFs("max-forwards"):
            msg.getHFBody("max-forwards").incNum(incr=-1)
        msg.insertHeaderBefore(msg.getHF("via"), SipHeader(name="via", body=SipVia(NEW_VIA)))
        return str(msg).encode("utf-8")

    return run


# ----------------------------------------------------------------- pyVoIP
def _pyvoip() -> FastPath:
    """pyVoIP's SIPMessage, plus serialization in pyVoIP's own style.

    - SIPMessage(data) parses every header it knows into dicts *and* parses
      the SDP body (pyVoIP has no lazy mode): more work than a proxy needs.
    - It keeps only the first occurrence of each header except Via, so the
      Route set is the first Route only, and the second Record-Route is lost.
    - Max-Forwards is kept as a string: ``int()``, minus one, stored back.
    - pyVoIP has no serializer: it writes messages by string concatenation in
      its ``gen_*`` methods.  The closest equivalent is done here: the start
      line, the new Via, the parsed Vias re-rendered the way
      ``_gen_response_via_header`` does, From/To from their ``raw`` + ``tag``,
      CSeq from its parts, every other kept header as stored, and the body
      copied from the raw bytes (it cannot write SDP back from its dicts).
      The output is therefore lossy (dropped duplicates, Via params other than
      branch/rport/received).
    """
    # pyVoIP.SIP and pyVoIP.VoIP import each other: pyVoIP.VoIP must load first.
    import pyVoIP.VoIP  # noqa: F401
    from pyVoIP.SIP import SIPMessage

    structured = {"Via", "From", "To", "CSeq", "Content-Length"}

    def run(data: bytes) -> bytes:
        msg = SIPMessage(data)
        headers = msg.headers
        via = headers["Via"][0]
        _ = via["branch"], via["address"]
        _ = headers["To"]["address"], headers["To"]["tag"]
        _ = headers["From"]["address"], headers["From"]["tag"]
        _ = headers["Call-ID"], headers["CSeq"]["check"], headers["CSeq"]["method"]
        _ = headers.get("Route")
        if "Max-Forwards" in headers:
            headers["Max-Forwards"] = str(int(headers["Max-Forwards"]) - 1)

        out = msg.heading.decode("utf-8") + "\r\n"
        out += f"Via: {NEW_VIA}\r\n"
        for v in headers["Via"]:
            line = f"Via: {v['type']} {v['address'][0]}:{v['address'][1]}"
            if "received" in v:
                line += f";received={v['received']}"
            if "rport" in v:
                line += ";rport" if v["rport"] is None else f";rport={v['rport']}"
            if "branch" in v:
                line += f";branch={v['branch']}"
            out += line + "\r\n"
        for name in ("From", "To"):
            h = headers[name]
            out += f"{name}: {h['raw']}" + (f";tag={h['tag']}" if h["tag"] else "") + "\r\n"
        out += f"CSeq: {headers['CSeq']['check']} {headers['CSeq']['method']}\r\n"
        for name, value in headers.items():
            if name in structured:
                continue
            if isinstance(value, list):  # Allow, Supported
                value = ", ".join(value)
            out += f"{name}: {value}\r\n"
        body = msg.raw.split(b"\r\n\r\n", 1)[1]
        out += f"Content-Length: {len(body)}\r\n\r\n"
        return out.encode("utf-8") + body

    return run


# ----------------------------------------------------------------- sipmessage
def _sipmessage() -> FastPath:
    """sipmessage's Message.parse and its typed properties.

    - Message.parse splits headers into name -> [values] (the raw text); each
      property (``via``, ``to_address`` ...) parses its header on every access,
      so every field is read once and the parsed object kept.
    - Max-Forwards via its ``max_forwards`` property (get, then set).
    - New Via: ``headers.setlist("Via", [new] + old)``, the only way to put a
      value first.
    - Serialize: ``bytes(msg)``.  Values of a repeated header are written
      together where that name first appeared; values are written as stored.
    """
    from sipmessage import Message

    def run(data: bytes) -> bytes:
        msg = Message.parse(data)
        via = msg.via[0]
        _ = via.parameters.get("branch"), via.host, via.port
        to, from_ = msg.to_address, msg.from_address
        _ = to.uri, to.parameters.get("tag"), from_.uri, from_.parameters.get("tag")
        cseq = msg.cseq
        _ = msg.call_id, cseq.sequence, cseq.method
        _ = msg.route
        max_forwards = msg.max_forwards
        if max_forwards is not None:
            msg.max_forwards = max_forwards - 1
        msg.headers.setlist("Via", [NEW_VIA, *msg.headers.getlist("Via")])
        return bytes(msg)

    return run


@dataclass(frozen=True, slots=True)
class Library:
    name: str
    distribution: str  # for the version shown in the table
    factory: Callable[[], FastPath]

    @property
    def label(self) -> str:
        """The name in the table; sipline's says which build this process imports."""
        if self.name != "sipline":
            return self.name
        try:
            from sipline.sip.message import BUILD
        except ImportError:
            return self.name
        return f"sipline ({BUILD})"


LIBRARIES = [
    Library("sipline", "sipline", _sipline),
    Library("sippy", "sippy", _sippy),
    Library("pyVoIP", "pyVoIP", _pyvoip),
    Library("sipmessage", "sipmessage", _sipmessage),
]


@dataclass(slots=True)
class Result:
    library: Library
    label: str = ""
    version: str = ""
    invite: float | None = None  # messages per second
    ok: float | None = None
    problem: str = ""


def _check(output: bytes, original: bytes) -> None:
    """Make sure a runner really did the work before timing it."""
    head, _, body = output.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines[1].lower().startswith((b"via:", b"v:")) or NEW_VIA.encode() not in lines[1]:
        raise AssertionError("new Via is not the first header")
    if b"Max-Forwards: 69" in original and b"Max-Forwards: 68" not in output:
        raise AssertionError("Max-Forwards was not decremented")
    if body != original.partition(b"\r\n\r\n")[2]:
        raise AssertionError("body changed")


def measure(library: Library, number: int, repeat: int) -> Result:
    result = Result(library, library.label)
    try:
        result.version = importlib.metadata.version(library.distribution)
    except importlib.metadata.PackageNotFoundError:
        result.problem = "not installed"
        return result
    try:
        run = library.factory()
    except ImportError as exc:
        result.problem = f"not installed ({exc})"[:120]
        return result
    except Exception as exc:  # a broken install is a result, not a crash
        result.problem = f"import error: {type(exc).__name__}: {exc}"[:120]
        return result
    rates = []
    for data in (INVITE, OK):
        try:
            _check(run(data), data)
        except Exception as exc:  # any failure of a competitor is a result, not a crash
            result.problem = f"error: {type(exc).__name__}: {exc}"[:120]
            return result
        best = min(timeit.repeat(lambda: run(data), number=number, repeat=repeat))
        rates.append(number / best)
    result.invite, result.ok = rates
    return result


def _fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:,.0f}"


def _fmt_ratio(rate: float | None, base: float | None) -> str:
    if rate is None or not base:
        return "-"
    return f"{rate / base:.2f}x"


def table(results: list[Result]) -> list[list[str]]:
    """Rows with each library's rates, and the ratio to the fastest competitor per message.

    The issue's target is "at least 3x the fastest peer", so that is the comparison shown.
    """
    peers = [r for r in results if r.library.name != "sipline"]
    best_invite = max((r.invite for r in peers if r.invite), default=None)
    best_ok = max((r.ok for r in peers if r.ok), default=None)
    rows = [["library", "version", "INVITE msg/s", "200 OK msg/s",
             "INVITE vs fastest peer", "200 OK vs fastest peer", "note"]]
    for r in results:
        rows.append([
            r.label or r.library.name, r.version or "-",
            _fmt_rate(r.invite), _fmt_rate(r.ok),
            _fmt_ratio(r.invite, best_invite),
            _fmt_ratio(r.ok, best_ok),
            r.problem,
        ])
    return rows


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |",
             "|" + "|".join(["---", "---", "---:", "---:", "---:", "---:", "---"]) + "|"]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def environment() -> str:
    return (f"Python {platform.python_version()} ({platform.python_implementation()}), "
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs")


def write_results(rows: list[list[str]], number: int, repeat: int) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"\n## {stamp}\n\n{environment()}; best of {repeat} rounds of "
               f"{number} messages.\n\n{render_markdown(rows)}\n")
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(section)
    print(f"appended to {RESULTS.relative_to(ROOT)}")


# ----------------------------------------------------------------- venv
def _in_bench_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv() -> Path:
    """Create or refresh bench/.venv; return its interpreter."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".bench-requirements"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()
                            + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not python.exists():
        print(f"creating {VENV.relative_to(ROOT)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not stamp.exists() or stamp.read_text().strip() != wanted:
        print("installing sipline and the competitors into the bench venv", file=sys.stderr)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-r", str(REQUIREMENTS), "-e", str(ROOT)], check=True)
        stamp.write_text(wanted + "\n")
    return python


# ----------------------------------------------------------------- the other build
def measure_mypyc_build(number: int, repeat: int) -> Result:
    """sipline's mypyc build, measured in a child process (one build per interpreter).

    ``scripts/setup --no-peers`` (re)builds build/mypyc from the current sources when one
    changed, so the figure is never that of a stale compile.
    """
    library = LIBRARIES[0]
    result = Result(library, "sipline (mypyc)")
    setup = subprocess.run([str(ROOT / "scripts" / "setup"), "--no-peers"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if setup.returncode != 0 or not (MYPYC_SITE / "sipline").is_dir():
        result.problem = "no mypyc build (scripts/setup could not compile it)"
        return result
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(MYPYC_SITE), *filter(None, [os.environ.get("PYTHONPATH")])]))
    child = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--here", "--build", "mypyc",
         "--only", "sipline", "--number", str(number), "--repeat", str(repeat), "--json"],
        env=env, capture_output=True, text=True)
    if child.returncode != 0:
        result.problem = f"mypyc run failed: {child.stderr.strip()[-100:]}"
        return result
    data = json.loads(child.stdout)[0]
    result.label, result.version = data["label"], data["version"]
    result.invite, result.ok, result.problem = data["invite"], data["ok"], data["problem"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=3000, help="messages per round (default 3000)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best counts (default 5)")
    parser.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    parser.add_argument("--here", action="store_true",
                        help="run in the current interpreter instead of bench/.venv")
    parser.add_argument("--only", action="append", metavar="LIBRARY",
                        help="measure only this library (repeatable)")
    parser.add_argument("--build", choices=("both", "pure", "mypyc"), default="both",
                        help="sipline build(s) to measure: both (default), the one this "
                             "interpreter imports (pure), or the mypyc one in build/mypyc")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if not args.here and not _in_bench_venv():
        python = ensure_venv()
        os.execv(str(python), [str(python), str(Path(__file__).resolve()),
                               *(argv if argv is not None else sys.argv[1:])])

    chosen = [lib for lib in LIBRARIES
              if not args.only or lib.name.lower() in {o.lower() for o in args.only}]
    print(f"{environment()}; best of {args.repeat} x {args.number} messages", file=sys.stderr,
          flush=True)
    results = []
    for library in chosen:
        if library.name == "sipline" and args.build == "mypyc" and "mypyc" not in library.label:
            if args.json:  # the child process must be running the compiled build
                raise SystemExit(f"expected the mypyc build, imported {library.label}")
            print("  measuring sipline (mypyc) in a child process ...", file=sys.stderr, flush=True)
            results.append(measure_mypyc_build(args.number, args.repeat))
            continue
        print(f"  measuring {library.label} ...", file=sys.stderr, flush=True)
        results.append(measure(library, args.number, args.repeat))
        if library.name == "sipline" and args.build == "both" and "mypyc" not in library.label:
            print("  measuring sipline (mypyc) in a child process ...", file=sys.stderr, flush=True)
            results.insert(0, measure_mypyc_build(args.number, args.repeat))
    if args.json:
        print(json.dumps([{"label": r.label, "version": r.version, "invite": r.invite,
                           "ok": r.ok, "problem": r.problem} for r in results]))
        return 0
    rows = table(results)
    print(render_text(rows))
    if args.write:
        write_results(rows, args.number, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
