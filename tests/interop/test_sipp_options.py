"""SIPp sends OPTIONS to a real ``sipline serve`` process over UDP and TCP.

This is the smallest end-to-end check that exists: the console entry point
starts, binds both transports on the requested port, frames messages from a
foreign implementation and answers them (RFC 3261 section 11).  SIPp's exit
status is the verdict: 0 only when every one of its calls got its 200.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

SCENARIO = Path(__file__).parent / "scenarios" / "options.xml"
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 20.0
CALLS = 5


@dataclass(frozen=True, slots=True)
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"<{path.name}: not written>"
    return text[-limit:] or f"<{path.name}: empty>"


def _tcp_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def _udp_taken(port: int) -> bool:
    # Without speaking SIP we can still tell that the server holds the UDP
    # port: binding it ourselves fails.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
        return False


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            pytest.fail(f"sipline serve exited with {code} during startup:\n{_tail(server.log)}")
        if _tcp_accepts(server.port) and _udp_taken(server.port):
            return
        time.sleep(0.1)
    pytest.fail(f"sipline serve not listening on {HOST}:{server.port} after "
                f"{STARTUP_TIMEOUT:.0f} s:\n{_tail(server.log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           port_factory: Callable[[], int]) -> Iterator[Server]:
    """One ``sipline serve`` for the module, on a fresh port and data dir."""
    workdir = tmp_path_factory.mktemp("sipline-serve")
    data = workdir / "data"
    data.mkdir()
    port = port_factory()
    log = workdir / "server.log"
    command = [
        sys.executable, "-m", "sipline", "serve",
        "--listen", f"udp:{HOST}:{port}",
        "--listen", f"tcp:{HOST}:{port}",
        "--data", str(data),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, cwd=workdir)
    running = Server(port=port, process=process, log=log)
    try:
        _wait_ready(running)
        yield running
    finally:
        _stop(process)


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_sipp_options_get_200(server: Server, sipp_binary: str, transport: str,
                              tmp_path: Path, port_factory: Callable[[], int]) -> None:
    errors = tmp_path / "sipp-errors.log"
    messages = tmp_path / "sipp-messages.log"
    command = [
        sipp_binary, f"{HOST}:{server.port}",
        "-sf", str(SCENARIO),
        "-t", transport,
        "-i", HOST, "-p", str(port_factory()),
        "-m", str(CALLS), "-r", "10",
        "-timeout", "20s", "-timeout_error",
        "-nostdin",
        "-trace_err", "-error_file", str(errors),
        "-trace_msg", "-message_file", str(messages),
    ]
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                            cwd=tmp_path, timeout=60, check=False)
    assert server.process.poll() is None, f"server died:\n{_tail(server.log)}"
    assert result.returncode == 0, (
        f"sipp -t {transport} exited with {result.returncode}\n"
        f"--- sipp stderr\n{result.stderr.decode(errors='replace')[-2000:]}\n"
        f"--- sipp errors\n{_tail(errors)}\n"
        f"--- sipp messages\n{_tail(messages)}\n"
        f"--- server log\n{_tail(server.log)}"
    )
