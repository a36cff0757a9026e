"""A throw-away PostgreSQL cluster on loopback for the call-record tests.

``initdb`` refuses to run as root, so when the tests run as root the cluster belongs to
an unprivileged system user (``postgres`` from the Debian package, else ``nobody``) and
every server command runs through ``runuser``.  The data directory and the unix socket
live in a fresh directory under /tmp that this user owns: pytest's own temp root is mode
0700 and root's, which the cluster's owner could not enter.

The server listens on 127.0.0.1 on a free port (retried if another process takes it
first), with durability switched off (fsync, synchronous_commit): the tests check what
sipline writes, not the disk.  Host connections need the password, so the tests also
exercise the ``user:password@`` part of the URL.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

USER = "sipline"
PASSWORD = "cdr-secret"
DATABASE = "sipline"


def find_bin_dir() -> Path | None:
    """Directory holding initdb, pg_ctl and postgres, or None when PostgreSQL is missing.

    Debian keeps them in /usr/lib/postgresql/<major>/bin, off the PATH; take the newest.
    """
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _owner() -> str | None:
    """The unprivileged user to run the server as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to own the cluster")


@dataclass
class PostgresCluster:
    """One initdb'd cluster; ``start()``/``stop()`` may be called repeatedly (outage tests)."""

    bin_dir: Path
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sipline-pg-")))
    port: int = 0
    owner: str | None = field(default_factory=_owner)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self.owner is not None:
            command = ["runuser", "-u", self.owner, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=check,
                              cwd=self.root)

    def init(self) -> None:
        if self.owner is not None:
            shutil.chown(self.root, self.owner, self.owner)
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.owner is not None:
            shutil.chown(pwfile, self.owner, self.owner)
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile),
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                  "--no-sync")
        pwfile.unlink()

    def running(self) -> bool:
        status = self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status", check=False)
        return status.returncode == 0

    def start(self) -> None:
        """Start the server (on a new free port the first time, the same port afterwards)."""
        if self.port and self.running():
            return
        attempts = 1 if self.port else 5
        for _ in range(attempts):
            port = self.port or _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -c port={port} "
                       f"-c unix_socket_directories={self.root} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
            done = self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l",
                             str(self.root / "server.log"), "-w", "-t", "30", "-o", options, "start",
                             check=False)
            if done.returncode == 0:
                self.port = port
                return
        log = (self.root / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()}\n{log}")

    def create_database(self) -> None:
        # createdb ships with the server packages (postgresql-client-NN, a dependency).
        self._run(str(self.bin_dir / "createdb"), "-h", str(self.root), "-p", str(self.port), "-U", USER,
                  DATABASE)

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop",
                  check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(bin_dir: Path) -> PostgresCluster:
    """initdb, start and create the test database; the caller must ``destroy()`` it."""
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.init()
        cluster.start()
        cluster.create_database()
    except BaseException:
        cluster.destroy()
        raise
    return cluster


def wait_until_down(port: int, timeout: float = 10.0) -> None:
    """Block until nothing accepts connections on ``port`` any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            return
        time.sleep(0.05)
    raise RuntimeError(f"PostgreSQL still accepting on port {port}")


def postgres_bin_dir() -> Path:
    """Where initdb and pg_ctl are; skips outside CI and fails under CI when missing."""
    found = find_bin_dir()
    if found is not None:
        return found
    message = "PostgreSQL server binaries not found (Debian package postgresql; scripts/setup installs it)"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


async def empty_postgres(url: str) -> None:
    """Drop what earlier tests wrote, so each test starts from no schema at all."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS call_records, sipline_schema_migrations")
    finally:
        await conn.close()
