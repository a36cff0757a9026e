"""Fixtures: one ``storage`` per backend, a private redis-server and PostgreSQL cluster.

The Redis server is started by the tests themselves on a free loopback port with a temp
directory and no persistence, and stopped by PID afterwards; the Redis cases are skipped
only when no redis-server binary is installed.

The PostgreSQL cluster (call records) is made by initdb for the session and removed
afterwards (see postgres_fixture.py).  Without the PostgreSQL binaries its cases skip on a
developer's machine and fail under CI, where scripts/setup must have installed them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from sipline.storage import Storage, open_storage

sys.path.insert(0, str(Path(__file__).resolve().parent))

from postgres_fixture import (  # noqa: E402
    PostgresCluster,
    empty_postgres,
    postgres_bin_dir,
    start_cluster,
)

BACKENDS = ("memory", "sqlite", "redis")
MAX_BINDINGS = 8


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server binary not installed (apt-get install redis-server)")
    workdir = tmp_path_factory.mktemp("redis")
    for _ in range(5):  # another process may grab the port between bind and start
        port = _free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5.0
        while proc.poll() is None and time.monotonic() < deadline:
            if _ping(port):
                break
            time.sleep(0.02)
        if proc.poll() is None and _ping(port):
            break
        proc.kill()
        proc.wait()
    else:  # pragma: no cover - only when the machine is out of ports
        pytest.fail("could not start redis-server")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster on 127.0.0.1, shared by the session."""
    cluster = start_cluster(postgres_bin_dir())
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    return postgres_cluster.url


async def open_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if name == "memory":
        return await open_storage("memory://", max_bindings=MAX_BINDINGS)
    if name == "sqlite":
        return await open_storage(f"sqlite://{tmp_path}/data/sipline.db", max_bindings=MAX_BINDINGS)
    url = request.getfixturevalue("redis_url")
    storage = await open_storage(url, max_bindings=MAX_BINDINGS)
    await storage.location.client.flushdb()  # type: ignore[attr-defined]
    return storage


@pytest_asyncio.fixture(params=BACKENDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    st = await open_backend(request.param, request, tmp_path)
    try:
        yield st
    finally:
        await st.close()


@pytest_asyncio.fixture(params=("memory", "sqlite", "postgres"))
async def record_storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    """Backends with a real call-record store (Redis delegates records elsewhere);
    "postgres" is SQLite for the rest with records_url pointing at PostgreSQL."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        await empty_postgres(url)
        st = await open_storage(f"sqlite://{tmp_path}/data/sipline.db", records_url=url)
    else:
        st = await open_backend(request.param, request, tmp_path)
    try:
        yield st
    finally:
        await st.close()
