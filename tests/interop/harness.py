"""Drive real SIP peers around a server under test: sipline, Kamailio, SIPp, baresip.

Interop tests and the comparison benchmarks (``bench/*_vs_kamailio.py``) need
the same plumbing: start a server on ephemeral loopback ports with its own
scratch directory, know when it is ready, feed it subscribers, run SIPp
scenarios and read their verdict, and stop everything they started.  This
module is that plumbing, and nothing here is specific to one test.

Rules every helper follows, because the suite runs on small CI machines next
to other jobs:

- everything binds 127.0.0.1, on ports from :func:`free_port`;
- every process is started here, tracked by its PID and stopped by that PID
  (SIGTERM, then SIGKILL of its own process group), never by name;
- every wait has a deadline, and failures carry the tail of the peer's log.

Import it from a test (tests run with ``--import-mode=importlib``, so the
folder is not on ``sys.path`` by itself)::

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness

The scenarios in ``scenarios/`` take their variable parts as SIPp keys
(``-key domain ...``, ``-key caller ...``); :func:`sipp_command` always passes
them, with defaults.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
REPO = HERE.parents[1]
BENCH = REPO / "bench"
DEFAULT_DOMAIN = "sipline.test"
KAMAILIO_MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
BARESIP_MODULES = Path("/usr/lib/baresip/modules")


class HarnessError(RuntimeError):
    """A peer did not start, did not become ready, or misbehaved."""


# --------------------------------------------------------------------------- ports


def free_port(host: str = LOOPBACK) -> int:
    """A port free for both UDP and TCP on ``host`` (same rule as tests/conftest.py).

    Kept here as well so that the benchmarks, which run outside pytest, share
    the harness without importing the test configuration.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise HarnessError(f"no port free for both UDP and TCP on {host}")


def free_port_run(count: int, host: str = LOOPBACK) -> int:
    """The first of *count* consecutive ports that are all free for UDP and TCP right now.

    baresip binds SIP/TLS on its SIP port + 1 and RTP on a range, so one free port is not
    enough for it.
    """
    for _ in range(100):
        first = free_port(host)
        if first + count > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    sock = socket.socket(socket.AF_INET, kind)
                    held.append(sock)
                    sock.bind((host, port))
            return first
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise HarnessError(f"no run of {count} free ports on {host}")


def find_binary(name: str) -> str:
    """Path of a peer binary, also looking in sbin (Kamailio); raises when missing."""
    found = shutil.which(name)
    if found:
        return found
    for sbin in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        candidate = Path(sbin) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise HarnessError(f"{name} not found")


def tail(path: Path, limit: int = 4000) -> str:
    """The end of a log file, for failure messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"<{path.name}: not written>"
    return text[-limit:] or f"<{path.name}: empty>"


# --------------------------------------------------------------------------- processes


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(word) for word in text.split()]


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (Kamailio forks one per worker)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(_children(current))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its descendants.

    Reads utime and stime (fields 14 and 15 of /proc/PID/stat) of every
    process in the tree, plus cutime/cstime for children already reaped.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces: split after its closing paren.
        fields = stat[stat.rindex(")") + 2:].split()
        total += sum(int(value) for value in fields[11:15])
    return total / ticks


@dataclass
class Peer:
    """A process started by the harness, with its log, stopped by PID."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    workdir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def log_tail(self, limit: int = 4000) -> str:
        return tail(self.log, limit)

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise HarnessError(f"{self.name} exited with {code}:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL the process group it leads; returns its exit code."""
        if self.process.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self.process.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        # Workers that outlive their parent (Kamailio children) share its group.
        self._kill_group()
        return self.process.returncode

    def _kill_group(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def spawn(name: str, command: Sequence[str], workdir: Path, *,
          env: Mapping[str, str] | None = None,
          stdin: int | None = subprocess.DEVNULL) -> Peer:
    """Start ``command`` in its own session (so its group can be killed), logging to a file."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(list(command), stdin=stdin, stdout=out,
                                   stderr=subprocess.STDOUT, cwd=workdir,
                                   env=None if env is None else dict(env),
                                   start_new_session=True)
    return Peer(name=name, process=process, log=log, workdir=workdir)


# --------------------------------------------------------------------------- SIP probe


def options_request(host: str, port: int, local_port: int, transport: str = "UDP") -> bytes:
    """A minimal OPTIONS addressed to the server itself (RFC 3261 section 11)."""
    tag = uuid.uuid4().hex[:10]
    lines = [
        f"OPTIONS sip:{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/{transport} {LOOPBACK}:{local_port};branch=z9hG4bK{uuid.uuid4().hex}",
        "Max-Forwards: 70",
        f"From: <sip:probe@{LOOPBACK}>;tag={tag}",
        f"To: <sip:{host}:{port}>",
        f"Call-ID: {uuid.uuid4().hex}@{LOOPBACK}",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
        "", "",
    ]
    return "\r\n".join(lines).encode()


def options_ping(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> int | None:
    """Send one OPTIONS over UDP; the status code of the first final answer, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.settimeout(timeout)
        sock.sendto(options_request(host, port, sock.getsockname()[1]), (host, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError, OSError):
                return None
            first = data.split(b"\r\n", 1)[0].split()
            if len(first) >= 2 and first[0] == b"SIP/2.0" and first[1].isdigit():
                status = int(first[1])
                if status >= 200:
                    return status
    return None


def tcp_accepts(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_sip_ready(peer: Peer, port: int, *, tcp: bool = True, timeout: float = 20.0) -> None:
    """Wait until ``peer`` answers OPTIONS on UDP ``port`` (and accepts TCP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        peer.check_alive()
        if options_ping(port) is not None and (not tcp or tcp_accepts(port)):
            return
        time.sleep(0.1)
    raise HarnessError(f"{peer.name} not answering OPTIONS on {LOOPBACK}:{port} after "
                       f"{timeout:.0f} s:\n{peer.log_tail()}")


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A SIP server under test (sipline or Kamailio) listening on UDP+TCP ``port``."""

    peer: Peer
    port: int
    domain: str
    kind: str

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        return self.peer.pid

    def cpu_seconds(self) -> float:
        return self.peer.cpu_seconds()

    def stop(self) -> int | None:
        return self.peer.stop()


def sipline_command() -> list[str]:
    """How to run the CLI: the repo's .venv interpreter when there is one (the
    benchmarks may run under a bare python3), else the one running us."""
    venv = REPO / ".venv" / "bin" / "python"
    return [str(venv) if venv.exists() else sys.executable, "-m", "sipline"]


def _sipline_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_sipline_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run one ``sipline`` subcommand to completion (e.g. ``registrations --data DIR``)."""
    return subprocess.run([*sipline_command(), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, env=_sipline_env(),
                          timeout=timeout, check=False)


def sipline_add_user(name: str, password: str, *, data: Path,
                     domain: str = DEFAULT_DOMAIN, timeout: float = 30.0) -> None:
    """``sipline users add NAME --password PW --data DIR --domain D``; raises on failure."""
    command = [*sipline_command(), "users", "add", name, "--password", password,
               "--data", str(data), "--domain", domain]
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                            env=_sipline_env(), timeout=timeout, check=False)
    if result.returncode != 0:
        raise HarnessError(f"{' '.join(command)} exited with {result.returncode}:\n"
                           f"{result.stdout.decode(errors='replace')}"
                           f"{result.stderr.decode(errors='replace')}")


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def sipline_config(*, md5_only: bool = True,
                   static_routes: Iterable[tuple[str, str]] = (),
                   require_auth_for_local_callers: bool | None = None,
                   log_level: str | None = None, drain_timeout: float | None = None,
                   extra: str = "") -> str:
    """TOML for ``sipline serve --config`` in interop runs (see sipline.example.toml).

    ``md5_only``: SIPp 3.6 answers only the first challenge and only knows MD5,
    while sipline offers SHA-256 first (RFC 8760); SIPp runs need MD5 alone.
    ``static_routes`` are ``(match, next_hop)`` pairs, e.g.
    ``("prefix:1", "sip:127.0.0.1:6000;transport=udp")``.
    ``drain_timeout`` bounds the graceful stop on SIGTERM (default 10 s): the
    server waits for every transaction, completed ones absorbing
    retransmissions included, so a test that stops it wants a short one.
    """
    parts: list[str] = []
    if drain_timeout is not None:
        # A top-level key: it must come before the first [table].
        parts.append(f"drain_timeout = {drain_timeout:g}\n")
    if log_level is not None:
        parts.append(f"[logging]\nlevel = {_toml_string(log_level)}\n")
    auth: list[str] = []
    if md5_only:
        auth.append('algorithms = ["MD5"]')
    if require_auth_for_local_callers is not None:
        auth.append(f"require_auth_for_local_callers = {str(require_auth_for_local_callers).lower()}")
    if auth:
        parts.append("[auth]\n" + "\n".join(auth) + "\n")
    for match, next_hop in static_routes:
        parts.append(f"[[proxy.static_routes]]\nmatch = {_toml_string(match)}\n"
                     f"next_hop = {_toml_string(next_hop)}\n")
    if extra:
        parts.append(extra.rstrip("\n") + "\n")
    return "\n".join(parts)


def start_sipline(workdir: Path, *, domain: str = DEFAULT_DOMAIN, port: int | None = None,
                  config: str | Path | None = "",
                  users: Iterable[tuple[str, str]] = (),
                  extra_args: Sequence[str] = (), timeout: float = 20.0) -> Server:
    """Start ``sipline serve`` on UDP+TCP 127.0.0.1:``port`` with data in ``workdir/data``.

    ``config`` is TOML text (written to ``workdir/sipline.toml``) or a path;
    by default :func:`sipline_config` (MD5-only digest, which SIPp needs).
    ``users`` are added with the CLI before the server starts.  Returns once
    the server answers OPTIONS over UDP and accepts TCP connections.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    for name, password in users:
        sipline_add_user(name, password, data=data, domain=domain)
    port = port or free_port()
    command = [*sipline_command(), "serve",
               "--listen", f"udp:{LOOPBACK}:{port}",
               "--listen", f"tcp:{LOOPBACK}:{port}",
               "--data", str(data), "--domain", domain]
    if config == "":
        config = sipline_config()
    if config is not None:
        if isinstance(config, str) and ("\n" in config or not config):
            path = workdir / "sipline.toml"
            path.write_text(config)
        else:
            path = Path(config)
        command += ["--config", str(path)]
    command += list(extra_args)
    peer = spawn("sipline", command, workdir, env=_sipline_env())
    server = Server(peer=peer, port=port, domain=domain, kind="sipline")
    try:
        wait_sip_ready(peer, port, timeout=timeout)
    except BaseException:
        peer.stop()
        raise
    return server


def write_kamailio_dbtext(directory: Path, users: Iterable[tuple[str, str]],
                          domain: str = DEFAULT_DOMAIN) -> str:
    """Write the db_text tables auth_db reads (``version``, ``subscriber``); returns the URL.

    Passwords are stored in clear and Kamailio computes HA1 (calculate_ha1).
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "version").write_text(
        "table_name(str) table_version(int)\nsubscriber:7\nlocation:9\n")
    rows = ["id(int,auto) username(str) domain(str) password(str) ha1(str,null) ha1b(str,null)"]
    for index, (name, password) in enumerate(users, start=1):
        rows.append(f"{index}:{name}:{domain}:{password}:::")
    (directory / "subscriber").write_text("\n".join(rows) + "\n")
    return f"text://{directory}"


def kamailio_command(binary: str, cfg: Path, port: int, runtime: Path,
                     defines: Mapping[str, str | None]) -> list[str]:
    command = [binary, "-f", str(cfg), "-P", str(runtime / "kamailio.pid"),
               "-Y", str(runtime), "-w", str(runtime),
               "-l", f"udp:{LOOPBACK}:{port}", "-l", f"tcp:{LOOPBACK}:{port}",
               # Foreground (-DD keeps the main process attached), log to stderr,
               # small memory pools: the machine is shared.
               "-DD", "-E", "-m", "64", "-M", "8"]
    if KAMAILIO_MODULES.is_dir():
        command += ["-L", str(KAMAILIO_MODULES)]
    for name, value in defines.items():
        command += ["-A", name if value is None else f"{name}={value}"]
    return command


def start_kamailio(workdir: Path, cfg: Path, *, binary: str = "kamailio",
                   port: int | None = None, domain: str = DEFAULT_DOMAIN,
                   defines: Mapping[str, str | None] | None = None,
                   timeout: float = 20.0) -> Server:
    """Start Kamailio on ``cfg`` with UDP+TCP 127.0.0.1:``port`` and a private runtime dir.

    ``defines`` become ``-A NAME=VALUE`` (``None``: ``-A NAME``); string values
    must carry their own quotes, e.g. ``{"NEXT_HOP": '"sip:127.0.0.1:5070"'}``.
    No root needed: the pid file, control FIFO and working dir are in ``workdir``.
    The config must answer OPTIONS to itself (both bench configs do).
    """
    port = port or free_port()
    runtime = workdir / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    command = kamailio_command(binary, cfg, port, runtime, defines or {})
    peer = spawn("kamailio", command, workdir)
    server = Server(peer=peer, port=port, domain=domain, kind="kamailio")
    try:
        wait_sip_ready(peer, port, timeout=timeout)
    except BaseException:
        peer.stop()
        raise
    return server


@contextmanager
def running(server: Server) -> Iterator[Server]:
    """``with running(start_...(...)) as server:`` stops it on the way out."""
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- SIPp


@dataclass(frozen=True, slots=True)
class SippStats:
    """The last row of SIPp's ``-trace_stat`` CSV (cumulative counters)."""

    row: Mapping[str, str]

    def count(self, name: str) -> int:
        """A cumulative counter, e.g. ``count("SuccessfulCall")``."""
        value = self.row.get(f"{name}(C)", self.row.get(name, "0"))
        try:
            return int(float(value or 0))
        except ValueError:
            return 0

    @property
    def created(self) -> int:
        return self.count("TotalCallCreated")

    @property
    def successful(self) -> int:
        return self.count("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.count("FailedCall")

    @property
    def elapsed(self) -> float:
        """Seconds from SIPp's start to the last dump (ElapsedTime(C) is HH:MM:SS:mmm...)."""
        text = self.row.get("ElapsedTime(C)", "")
        parts = text.split(":")
        try:
            hours, minutes, seconds = int(parts[0]), int(parts[1]), int(parts[2])
            millis = int(parts[3][:3]) if len(parts) > 3 else 0
        except (IndexError, ValueError):
            return 0.0
        return hours * 3600 + minutes * 60 + seconds + millis / 1000


def parse_sipp_stats(path: Path) -> SippStats | None:
    """Read SIPp's statistics CSV (``;``-separated, header then one row per dump)."""
    try:
        with path.open(newline="", errors="replace") as handle:
            rows = list(csv.reader(handle, delimiter=";"))
    except OSError:
        return None
    rows = [row for row in rows if row]
    if len(rows) < 2:
        return None
    header = [name.strip() for name in rows[0]]
    return SippStats(row=dict(zip(header, (value.strip() for value in rows[-1]))))


@dataclass
class SippResult:
    """SIPp's verdict: exit code 0 all calls succeeded, 1 some failed, >1 error."""

    returncode: int
    command: list[str]
    stdout: str
    stderr: str
    stats: SippStats | None
    workdir: Path
    errors_log: Path
    messages_log: Path | None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self, limit: int = 3000) -> str:
        """Everything needed to understand a failure, for an assertion message."""
        parts = [f"sipp exited with {self.returncode}: {' '.join(self.command)}"]
        if self.stats is not None:
            parts.append(f"created={self.stats.created} successful={self.stats.successful} "
                         f"failed={self.stats.failed}")
        parts.append(f"--- stderr\n{self.stderr[-limit:]}")
        parts.append(f"--- errors\n{tail(self.errors_log, limit)}")
        if self.messages_log is not None:
            parts.append(f"--- messages\n{tail(self.messages_log, limit)}")
        return "\n".join(parts)


def scenario(name: str) -> Path:
    """Path of a scenario in tests/interop/scenarios (``name`` with or without .xml)."""
    path = SCENARIOS / (name if name.endswith(".xml") else f"{name}.xml")
    if not path.is_file():
        raise HarnessError(f"no SIPp scenario {path}")
    return path


def write_users_csv(path: Path, users: Iterable[tuple[str, str]]) -> Path:
    """A SIPp injection file: SEQUENTIAL, then one ``user;password`` line per user."""
    lines = ["SEQUENTIAL"] + [f"{name};{password}" for name, password in users]
    path.write_text("\n".join(lines) + "\n")
    return path


def sipp_command(scenario_path: Path, *, workdir: Path, target: str | None = None,
                 binary: str = "sipp", port: int | None = None, transport: str = "u1",
                 service: str = "service", calls: int = 1, rate: float = 10.0,
                 rate_period_ms: int = 1000, limit: int | None = None,
                 duration_ms: int = 0, domain: str = DEFAULT_DOMAIN,
                 caller: str = "alice", auth: tuple[str, str] | None = None,
                 auth_uri: str | None = None, inf: Path | None = None, keys: Mapping[str, str] | None = None,
                 timeout_s: float = 20.0, trace_messages: bool = True,
                 stat_period_s: int = 1, media_port: int | None = None,
                 extra: Sequence[str] = ()) -> list[str]:
    """The SIPp command line used everywhere: bounded, quiet, traced into ``workdir``.

    ``target`` is ``host:port`` for a UAC; None for a UAS.  ``auth`` is the
    (user, password) answering challenges (``[field0]``-style injections work),
    ``auth_uri`` the digest uri without "sip:" (default ``service@domain``, the
    Request-URI of the uac_* scenarios).  ``keys`` add or
    override ``-key`` values (``domain``, ``caller`` and ``expires`` are always set).
    """
    name = scenario_path.stem
    command = [binary]
    if target is not None:
        command.append(target)
    all_keys = {"domain": domain, "caller": caller, "expires": "3600", **(keys or {})}
    command += ["-sf", str(scenario_path), "-t", transport,
                "-i", LOOPBACK, "-p", str(port or free_port()),
                "-mi", LOOPBACK, "-mp", str(media_port or free_port()),
                "-s", service,
                "-r", f"{rate:g}", "-rp", str(rate_period_ms),
                "-d", str(duration_ms),
                "-timeout", f"{timeout_s:g}s", "-timeout_error",
                "-nostdin", "-nr",
                "-default_behaviors", "all,-abortunexp",
                "-trace_err", "-error_file", str(workdir / f"{name}.errors.log"),
                "-trace_stat", "-stf", str(workdir / f"{name}.stat.csv"),
                "-fd", str(stat_period_s)]
    if calls > 0:  # 0: no limit (a UAS serving a whole benchmark)
        command += ["-m", str(calls)]
    if limit is not None:
        command += ["-l", str(limit)]
    for key, value in all_keys.items():
        command += ["-key", key, value]
    if auth is not None:
        # SIPp's digest uri defaults to remote_ip:remote_port; a server that
        # checks it against the Request-URI (RFC 3261 22.4) needs the real one.
        command += ["-au", auth[0], "-ap", auth[1],
                    "-auth_uri", auth_uri or f"{service}@{domain}"]
    if inf is not None:
        command += ["-inf", str(inf)]
    if trace_messages:
        command += ["-trace_msg", "-message_file", str(workdir / f"{name}.messages.log")]
    command += list(extra)
    return command


@dataclass
class SippProcess:
    """A SIPp running in the background (a UAS, or a UAC under load)."""

    peer: Peer
    command: list[str]
    scenario: Path

    def wait(self, timeout: float = 30.0) -> SippResult:
        """Wait for SIPp to end by itself (``-m`` calls done, or its -timeout)."""
        try:
            self.peer.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.peer.stop()
        return self._result()

    def stop(self) -> SippResult:
        self.peer.stop()
        return self._result()

    def _result(self) -> SippResult:
        workdir = self.peer.workdir
        name = self.scenario.stem
        messages = workdir / f"{name}.messages.log"
        code = self.peer.process.returncode
        return SippResult(
            returncode=-1 if code is None else code,
            command=self.command,
            stdout=tail(self.peer.log, 6000),
            stderr="",
            stats=parse_sipp_stats(workdir / f"{name}.stat.csv"),
            workdir=workdir,
            errors_log=workdir / f"{name}.errors.log",
            messages_log=messages if messages.exists() else None,
        )


def start_sipp(scenario_name: str | Path, workdir: Path, **options: object) -> SippProcess:
    """Start SIPp in the background with :func:`sipp_command` options; see :meth:`SippProcess.wait`."""
    path = scenario_name if isinstance(scenario_name, Path) else scenario(scenario_name)
    workdir.mkdir(parents=True, exist_ok=True)
    command = sipp_command(path, workdir=workdir, **options)  # type: ignore[arg-type]
    peer = spawn(f"sipp-{path.stem}", command, workdir)
    return SippProcess(peer=peer, command=command, scenario=path)


def run_sipp(scenario_name: str | Path, workdir: Path, *, wait_s: float | None = None,
             **options: object) -> SippResult:
    """Run SIPp to completion (bounded by its ``-timeout`` plus a margin)."""
    timeout_s = float(options.get("timeout_s", 20.0))  # type: ignore[arg-type]
    process = start_sipp(scenario_name, workdir, **options)
    return process.wait(timeout=wait_s if wait_s is not None else timeout_s + 10.0)


def wait_udp_bound(port: int, timeout: float = 5.0) -> None:
    """Wait until some process holds UDP ``port`` on the loopback (SIPp UAS is listening)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                return
        time.sleep(0.05)
    raise HarnessError(f"nothing bound UDP {LOOPBACK}:{port} within {timeout:.0f} s")


def sipp_register(server: Server, users: Sequence[tuple[str, str]], workdir: Path, *,
                  port: int | None = None, transport: str = "u1", rate: float = 50.0,
                  expires: int = 3600, timeout_s: float = 15.0,
                  **options: object) -> SippResult:
    """Register ``users`` (digest auth) with ``register_auth.xml``, one call per user.

    With ``port`` given, the Contact is 127.0.0.1:``port``: start a SIPp UAS
    on that port afterwards and calls to the users reach it.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    inf = write_users_csv(workdir / "users.csv", users)
    return run_sipp("register_auth", workdir, target=server.address, port=port,
                    transport=transport, calls=len(users), rate=rate, inf=inf,
                    auth=("[field0]", "[field1]"), auth_uri=server.domain,
                    domain=server.domain, keys={"expires": str(expires)},
                    timeout_s=timeout_s, **options)  # type: ignore[arg-type]


def start_uas(scenario_name: str, workdir: Path, *, port: int, user: str = "bob",
              calls: int = 1, timeout_s: float = 20.0, **options: object) -> SippProcess:
    """Start a SIPp UAS on UDP/TCP ``port`` and return once it is listening."""
    process = start_sipp(scenario_name, workdir, port=port, service=user, calls=calls,
                         timeout_s=timeout_s, **options)  # type: ignore[arg-type]
    if options.get("transport", "u1") == "u1":
        try:
            wait_udp_bound(port)
        except HarnessError:
            process.stop()
            raise
    else:
        time.sleep(0.3)
    return process


# --------------------------------------------------------------------------- SBC


def toml_value(value: object) -> str:
    """One TOML value: strings, booleans, numbers, lists and (inline) tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, Iterable):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def toml_tables(name: str, rows: Iterable[Mapping[str, object]]) -> str:
    """An array of tables (``[[trunks]]``, ``[[routes]]`` ...), one table per row."""
    parts = []
    for row in rows:
        lines = [f"[[{name}]]"] + [f"{key} = {toml_value(item)}" for key, item in row.items()]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def sipline_admin_get(data: Path, path: str, timeout: float = 5.0) -> object:
    """GET ``path`` (``/trunks``, ``/calls`` ...) from the admin endpoint of the server
    whose data directory is ``data`` (its address is in ``data/admin.port``)."""
    import urllib.request

    text = (data / "admin.port").read_text().strip()
    host, _, port = text.rpartition(":")
    url = f"http://{host or LOOPBACK}:{port}{path}"
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


@dataclass(frozen=True, slots=True)
class SippMessage:
    """One message of a SIPp ``-trace_msg`` log, as SIPp sent or received it."""

    sent: bool
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    def header(self, name: str) -> list[str]:
        """Values of header ``name`` (case-insensitive; no compact forms)."""
        head = self.text.split("\n\n", 1)[0]
        prefix = name.lower() + ":"
        return [line.split(":", 1)[1].strip() for line in head.splitlines()[1:]
                if line.lower().startswith(prefix)]

    @property
    def body(self) -> str:
        return self.text.split("\n\n", 1)[1] if "\n\n" in self.text else ""


def sipp_messages(path: Path) -> list[SippMessage]:
    """Parse a SIPp ``-trace_msg`` log into messages, in order (CRLF folded to LF)."""
    try:
        text = path.read_text(errors="replace").replace("\r\n", "\n")
    except OSError:
        return []
    messages: list[SippMessage] = []
    for chunk in text.split("\n-----------------------------------------------")[0:]:
        lines = chunk.lstrip("-").split("\n")
        # lines[0]: the time stamp; lines[1]: "UDP message sent (N bytes):" or "... received [N] bytes :"
        if len(lines) < 3 or " message " not in lines[1]:
            continue
        sent = " message sent" in lines[1]
        body = "\n".join(lines[2:]).strip("\n")
        if body:
            messages.append(SippMessage(sent=sent, text=body + "\n"))
    return messages


# --------------------------------------------------------------------------- baresip


def write_tone_wav(path: Path, seconds: float = 2.0, hertz: float = 440.0) -> Path:
    """A mono 16-bit 8 kHz WAV with a sine tone (baresip's aufile source loops it)."""
    import math
    import struct
    import wave

    rate = 8000
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * hertz * index / rate)))
        for index in range(int(seconds * rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


class Baresip:
    """A headless baresip driven over its ctrl_tcp JSON/netstring socket.

    Started by :meth:`start` with a generated config dir: no audio device
    (aufile playing a generated 8 kHz tone as source, an unconnected aubridge
    device as player), G.711 only, one account
    registering through ``outbound`` to the server under test, ``answermode``
    auto so that incoming calls are answered without a command.
    """

    def __init__(self, peer: Peer, aor: str, ctrl_port: int, sip_port: int) -> None:
        self.peer = peer
        self.aor = aor
        self.ctrl_port = ctrl_port
        self.sip_port = sip_port
        self.events: list[dict[str, object]] = []
        self._buffer = b""
        self._token = 0
        self._sock = self._connect()

    @classmethod
    def start(cls, workdir: Path, *, user: str, password: str | None, server: Server,
              binary: str = "baresip", answer: bool = True, timeout: float = 10.0,
              transport: str = "udp") -> Baresip:
        workdir.mkdir(parents=True, exist_ok=True)
        sip_port = free_port_run(2)  # SIP on sip_port, SIP/TLS on sip_port + 1
        ctrl_port = free_port()
        rtp = free_port_run(21)
        domain = server.domain
        tone = write_tone_wav(workdir / "tone.wav")
        modules = "\n".join(f"module {name}" for name in
                            ("g711.so", "aufile.so", "aubridge.so", "ctrl_tcp.so"))
        config = f"""\
poll_method		epoll
sip_listen		{LOOPBACK}:{sip_port}
sip_trans_def		{transport}
audio_player		aubridge,nowhere
audio_source		aufile,{tone}
audio_alert		aubridge,nowhere
rtp_ports		{rtp}-{rtp + 20}
rtcp_mux		no
jitter_buffer_delay	0-5
dns_server		{LOOPBACK}:53
net_interface		{LOOPBACK}
module_path		{BARESIP_MODULES}
{modules}
module_app		account.so
module_app		menu.so
ctrl_tcp_listen		{LOOPBACK}:{ctrl_port}
"""
        (workdir / "config").write_text(config)
        params = [f'outbound="sip:{server.address};transport={transport}"',
                  "regint=600", "audio_codecs=PCMU,PCMA", "mediaenc=",
                  "answermode=" + ("auto" if answer else "manual")]
        if password is not None:
            params.insert(0, f"auth_pass={password}")
        aor = f"sip:{user}@{domain}"
        account = f"<{aor};transport={transport}>;" + ";".join(p for p in params if not p.endswith("="))
        (workdir / "accounts").write_text(account + "\n")
        (workdir / "contacts").write_text("")
        command = [binary, "-4", "-f", str(workdir), "-t", "120"]
        peer = spawn(f"baresip-{user}", command, workdir)
        deadline = time.monotonic() + timeout
        while True:
            if not peer.alive():
                raise HarnessError(f"baresip exited:\n{peer.log_tail()}")
            if tcp_accepts(ctrl_port):
                break
            if time.monotonic() > deadline:
                peer.stop()
                raise HarnessError(f"baresip ctrl_tcp not listening:\n{peer.log_tail()}")
            time.sleep(0.1)
        return cls(peer, aor, ctrl_port, sip_port)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((LOOPBACK, self.ctrl_port), timeout=2.0)
        sock.settimeout(0.2)
        return sock

    # -- protocol

    def _read(self, timeout: float) -> dict[str, object] | None:
        deadline = time.monotonic() + timeout
        while True:
            message = self._parse_one()
            if message is not None:
                return message
            if time.monotonic() > deadline:
                return None
            try:
                chunk = self._sock.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            if not chunk:
                raise HarnessError(f"baresip closed ctrl_tcp:\n{self.peer.log_tail()}")
            self._buffer += chunk

    def _parse_one(self) -> dict[str, object] | None:
        head, colon, rest = self._buffer.partition(b":")
        if not colon or not head.isdigit():
            return None
        size = int(head)
        if len(rest) < size + 1:
            return None
        payload, self._buffer = rest[:size], rest[size + 1:]
        message: dict[str, object] = json.loads(payload)
        if message.get("event"):
            self.events.append(message)
        return message

    def command(self, name: str, params: str = "", timeout: float = 5.0) -> dict[str, object]:
        """Run a baresip long command (``dial``, ``hangup``, ``accept`` ...) and return its response."""
        self._token += 1
        token = str(self._token)
        request = {"command": name, "params": params, "token": token}
        self._sock.sendall(_netstring(json.dumps(request).encode()))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._read(deadline - time.monotonic())
            if message is not None and message.get("response") and message.get("token") == token:
                return message
        raise HarnessError(f"baresip gave no response to {name!r}:\n{self.peer.log_tail()}")

    def wait_event(self, *types: str, timeout: float = 10.0) -> dict[str, object]:
        """The first event (already seen or new) whose ``type`` is one of ``types``; consumes it."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self.events):
                if event.get("type") in types:
                    return self.events.pop(index)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [event.get("type") for event in self.events]
                raise HarnessError(f"baresip {self.aor}: none of {types} within {timeout:.0f} s "
                                   f"(events: {seen}):\n{self.peer.log_tail()}")
            self._read(min(remaining, 0.5))

    def wait_registered(self, timeout: float = 10.0) -> None:
        """Wait for the account's registration to succeed.

        baresip registers as soon as it starts, often before our ctrl_tcp
        connection exists, so the REGISTER_OK event may never reach us: its
        console line ("user@domain: {0/UDP/v4} 200 OK ...") counts as well.
        """
        deadline = time.monotonic() + timeout
        marker = self.aor.removeprefix("sip:") + ": {"
        while True:
            for index, event in enumerate(self.events):
                if event.get("type") == "REGISTER_OK":
                    self.events.pop(index)
                    return
                if event.get("type") == "REGISTER_FAIL":
                    raise HarnessError(f"baresip {self.aor} registration failed: {event}\n"
                                       f"{self.peer.log_tail()}")
            for line in self.peer.log_tail(20000).splitlines():
                if marker in line and "} 200 " in line:
                    return
            if time.monotonic() > deadline:
                raise HarnessError(f"baresip {self.aor} not registered within {timeout:.0f} s:\n"
                                   f"{self.peer.log_tail()}")
            self._read(0.2)

    def dial(self, uri: str) -> dict[str, object]:
        return self.command("dial", uri)

    def hangup(self) -> dict[str, object]:
        return self.command("hangup")

    def stop(self) -> int | None:
        try:
            self._sock.sendall(_netstring(json.dumps(
                {"command": "quit", "params": "", "token": "quit"}).encode()))
            self.peer.process.wait(timeout=3)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            self._sock.close()
        except OSError:
            pass
        return self.peer.stop()


# --------------------------------------------------------------------------- benchmarks


@dataclass(frozen=True, slots=True)
class LoadStep:
    """One fixed-rate SIPp run against a server, and what the server spent on it."""

    rate: float
    attempted: int
    successful: int
    wall_s: float
    cpu_s: float
    returncode: int

    @property
    def failure_ratio(self) -> float:
        return 1.0 if self.attempted == 0 else 1 - self.successful / self.attempted

    @property
    def cpu_per_1000(self) -> float:
        return float("nan") if self.successful == 0 else self.cpu_s * 1000 / self.successful

    def passed(self, max_failure_ratio: float, expected_wall_s: float) -> bool:
        """Few enough failures, and SIPp kept the rate.

        The slack covers the last calls finishing after the last one started
        (about one second); 1.5x + 2 s let a saturated server pass a 3 s step
        at barely half the asked rate (sipline: 1710 calls in 6.3 s at 570/s).
        """
        return (self.failure_ratio < max_failure_ratio
                and self.wall_s <= expected_wall_s * 1.2 + 1.0)


def run_load_step(server: Server, scenario_name: str, workdir: Path, *, rate: float,
                  seconds: float, **options: object) -> LoadStep:
    """Run ``scenario_name`` at ``rate`` calls/s for ``seconds``; server CPU measured around it.

    Message tracing is off (it would cost SIPp more than the server); errors
    still go to the step's error log.
    """
    calls = max(1, int(rate * seconds))
    before = server.cpu_seconds()
    started = time.monotonic()
    result = run_sipp(scenario_name, workdir, target=server.address, calls=calls, rate=rate,
                      trace_messages=False, timeout_s=seconds * 2 + 10,
                      limit=max(100, int(rate * 10)), **options)  # type: ignore[arg-type]
    wall = time.monotonic() - started
    cpu = server.cpu_seconds() - before
    successful = result.stats.successful if result.stats is not None else 0
    return LoadStep(rate=rate, attempted=calls, successful=successful, wall_s=wall,
                    cpu_s=cpu, returncode=result.returncode)


def search_max_rate(step: Callable[[float], LoadStep], rates: Sequence[float], *,
                    seconds: float, max_failure_ratio: float = 0.001,
                    log: Callable[[str], None] = print) -> tuple[LoadStep | None, list[LoadStep]]:
    """Try ``rates`` in increasing order; stop at the first failing step.

    Returns the last passing step (None if even the first failed) and all steps.
    """
    best: LoadStep | None = None
    steps: list[LoadStep] = []
    for rate in rates:
        current = step(rate)
        steps.append(current)
        ok = current.passed(max_failure_ratio, seconds)
        log(f"  rate {rate:>7g}/s: {current.successful}/{current.attempted} ok "
            f"in {current.wall_s:.1f} s, server CPU {current.cpu_s:.2f} s "
            f"({current.cpu_per_1000:.2f} s/1000) -> {'pass' if ok else 'FAIL'}")
        if not ok:
            break
        best = current
    return best, steps


def geometric_rates(start: float, stop: float, factor: float) -> list[float]:
    rates: list[float] = []
    rate = start
    while rate <= stop:
        rates.append(round(rate))
        rate *= factor
    return rates


def comparison_table(title: str, unit: str, rows: Mapping[str, LoadStep | None]) -> str:
    """Markdown table: server, max rate, CPU s per 1000, ratios sipline/kamailio."""
    lines = [f"| server | max {unit}/s (<0.1% failed) | server CPU s per 1000 {unit} |",
             "|---|---:|---:|"]
    for name, best in rows.items():
        if best is None:
            lines.append(f"| {name} | below the first step | - |")
        else:
            lines.append(f"| {name} | {best.rate:g} | {best.cpu_per_1000:.3f} |")
    sipline, kamailio = rows.get("sipline"), rows.get("kamailio")
    if sipline is not None and kamailio is not None:
        lines.append(f"| ratio sipline/kamailio | {sipline.rate / kamailio.rate:.2f}x | "
                     f"{sipline.cpu_per_1000 / kamailio.cpu_per_1000:.2f}x |")
    return f"{title}\n\n" + "\n".join(lines) + "\n"


def append_results(path: Path, heading: str, body: str) -> None:
    """Append a dated section to bench/RESULTS.md."""
    stamp = time.strftime("%Y-%m-%d %H:%M")
    with path.open("a") as out:
        out.write(f"\n## {heading} ({stamp})\n\n{body}")
