"""``serve`` lifecycle against a fake server: banner, signals, drain, forced exit, reload.

Signals are sent to a child process running :func:`sipline.ops.cli.run`, never to the
test process itself, and only to that child's pid.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipline.ops.cli import render_banner, run
from sipline.ops.config import load_config
from sipline.sip.transport import Peer

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from pathlib import Path
    from sipline.ops.cli import run
    from sipline.ops.config import load_config
    from sipline.sip.transport import Peer

    MODE = sys.argv[2]

    class FakeServer:
        def __init__(self, config):
            self.listening = [Peer("udp", "127.0.0.1", 5099), Peer("tcp", "::1", 5099)]
            self.closed = None

        async def start(self):
            self.closed = asyncio.Event()
            print("EVENT start", flush=True)

        async def stop(self, drain_timeout):
            print(f"EVENT stop {drain_timeout}", flush=True)
            if MODE == "hang":
                await asyncio.sleep(3600)
            self.closed.set()

        async def wait_closed(self):
            await self.closed.wait()

        async def reload(self, config):
            print(f"EVENT reload {config.logging.level}", flush=True)

    path = Path(sys.argv[1])
    load = lambda: load_config(path, os.environ)
    sys.exit(run(load(), server_factory=FakeServer, reload_config=load, config_path=path))
    """
)


class Child:
    def __init__(self, tmp_path: Path, mode: str) -> None:
        self.config = tmp_path / "sipline.toml"
        self.config.write_text(f'data_dir = "{tmp_path / "data"}"\ndrain_timeout = 2.5\n'
                               '[logging]\nlevel = "info"\ncolor = "never"\n')
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIPLINE_")},
               "SIPLINE_DOMAINS": "pbx.test", "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.config), mode],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []

    def read_until(self, needle: str, timeout: float = 20.0) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} not seen; got {self.lines!r}; stderr {self.stderr()!r}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self) -> int:
        return self.proc.wait(timeout=20)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def child_factory(tmp_path: Path) -> Iterator[type[Child]]:
    children: list[Child] = []

    def make(mode: str) -> Child:
        child = Child(tmp_path, mode)
        children.append(child)
        return child

    yield make  # type: ignore[misc]
    for child in children:
        child.close()


pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")


def test_sigterm_drains_and_exits_0(child_factory: type[Child]) -> None:
    child = child_factory("normal")  # type: ignore[call-arg]
    child.read_until("Press Ctrl-C to stop.")
    banner = "".join(child.lines)
    assert banner.count("is running") == 1
    assert "udp:127.0.0.1:5099  tcp:[::1]:5099" in banner
    assert "sipline users add alice@pbx.test --config" in banner
    child.signal(signal.SIGTERM)
    assert child.read_until("EVENT stop") == "EVENT stop 2.5\n"
    assert child.wait() == 0
    assert "SIGTERM: stopping; draining for up to 2.5s" in child.stderr()


def test_second_ctrl_c_forces_exit(child_factory: type[Child]) -> None:
    child = child_factory("hang")  # type: ignore[call-arg]
    child.read_until("Press Ctrl-C")
    child.signal(signal.SIGINT)
    child.read_until("EVENT stop")
    child.signal(signal.SIGINT)
    assert child.wait() == 1
    err = child.stderr()
    assert "SIGINT again: forcing exit" in err and "Traceback" not in err


def test_sighup_reloads(child_factory: type[Child]) -> None:
    child = child_factory("normal")  # type: ignore[call-arg]
    child.read_until("Press Ctrl-C")
    child.config.write_text(child.config.read_text().replace('"info"', '"debug"'))
    child.signal(signal.SIGHUP)
    assert child.read_until("EVENT reload") == "EVENT reload debug\n"
    # A broken file keeps the running configuration.
    child.config.write_text("[logging]\nlevel = 3\n")
    child.signal(signal.SIGHUP)
    child.signal(signal.SIGUSR1)
    time.sleep(0.3)
    child.signal(signal.SIGTERM)
    child.read_until("EVENT stop")
    assert child.wait() == 0
    err = child.stderr()
    assert "reload failed, keeping the running configuration: config error: [logging] level" in err
    assert "SIGUSR1: reopened 0 log file(s)" in err


# ---------------------------------------------------------------------------------------
# In-process: no signals involved


class _FailingServer:
    listening: list[Peer] = []

    def __init__(self, config: object) -> None:
        self.stopped = False

    async def start(self) -> None:
        raise PermissionError(13, "Permission denied: udp:0.0.0.0:5060")

    async def stop(self, drain_timeout: float) -> None:
        raise RuntimeError("not started")

    async def wait_closed(self) -> None:
        pass


class _DyingServer:
    listening = [Peer("udp", "127.0.0.1", 5060)]

    def __init__(self, config: object) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self, drain_timeout: float) -> None:
        pass

    async def wait_closed(self) -> None:
        raise RuntimeError("transport lost")


def test_start_failure_exits_1(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(overrides={"data_dir": str(tmp_path)})
    out = io.StringIO()
    assert run(config, server_factory=_FailingServer, out=out, setup_log=False) == 1
    assert out.getvalue() == ""  # no banner when nothing listens
    assert "cannot start: [Errno 13] Permission denied" in caplog.text


def test_server_dying_exits_1(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(overrides={"data_dir": str(tmp_path)})
    out = io.StringIO()
    assert run(config, server_factory=_DyingServer, out=out, setup_log=False) == 1
    assert "is running" in out.getvalue()
    assert "server stopped unexpectedly: transport lost" in caplog.text


def test_banner_contents(tmp_path: Path) -> None:
    (tmp_path / "admin.port").write_text("127.0.0.1:4321\n")
    config = load_config(overrides={"data_dir": str(tmp_path), "domains": ["pbx.test", "10.0.0.1"]})
    text = render_banner(config, [Peer("udp", "0.0.0.0", 5060), Peer("tls", "::", 5061)],
                         admin="127.0.0.1:4321")
    lines = text.splitlines()
    assert lines[0].startswith("sipline ") and "is running" in lines[0]
    assert "udp:0.0.0.0:5060  tls:[::]:5061" in lines[1]
    assert 'pbx.test, 10.0.0.1  (realm "each domain")' in lines[2]
    assert str(tmp_path) in lines[3] and "sipline.db" in lines[3]
    assert lines[4].split() == ["admin", "http://127.0.0.1:4321"]
    assert lines[5].split()[3:] == ["sipline", "users", "add", "alice@pbx.test", "--data", str(tmp_path)]
    assert lines[-1] == "Press Ctrl-C to stop."
