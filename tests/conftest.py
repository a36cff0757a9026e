"""Fixtures shared by the whole suite.

Only generic helpers live here: free ports on the loopback and locating the
external SIP peers (SIPp, baresip, Kamailio ...) that interop tests drive.
Anything specific to one area belongs in that area's own conftest.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"

# Debian package that provides each external peer, for the skip/fail message.
_PEER_PACKAGES = {
    "sipp": "sip-tester",
    "sipsak": "sipsak",
    "baresip": "baresip-core",
    "kamailio": "kamailio",
    "redis-server": "redis-server",
    "rtpengine": "rtpengine-daemon",
}


def in_ci() -> bool:
    """True when running under CI, where a missing peer is a broken setup."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def free_port(host: str = LOOPBACK) -> int:
    """Return a port that is free for both UDP and TCP on ``host``.

    SIP listens on the same number for both transports, so a port is only
    useful when both binds succeed.  The sockets are closed before returning:
    another process could still take the port, which is acceptable for tests.
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
    raise RuntimeError(f"no port free for both UDP and TCP on {host}")


def find_peer(name: str) -> str | None:
    """Path of an external peer binary, also looking in sbin (Kamailio)."""
    found = shutil.which(name)
    if found:
        return found
    for sbin in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        candidate = Path(sbin) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@pytest.fixture(name="free_port")
def free_port_fixture() -> int:
    """A loopback port free for both UDP and TCP."""
    return free_port()


@pytest.fixture(scope="session")
def port_factory() -> Callable[[], int]:
    """``free_port`` itself, for module- or session-scoped fixtures."""
    return free_port


@pytest.fixture(scope="session")
def require_peer() -> Callable[[str], str]:
    """Return a function that locates a peer binary or gives up.

    Outside CI a missing peer skips the test (a developer may not have run
    ``scripts/setup`` as root); under CI it fails, because ``scripts/setup``
    must have installed it.
    """

    def _require(name: str) -> str:
        path = find_peer(name)
        if path is not None:
            return path
        package = _PEER_PACKAGES.get(name, name)
        message = f"{name} not found (Debian package {package}; scripts/setup installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)

    return _require


@pytest.fixture(scope="session")
def sipp_binary(require_peer: Callable[[str], str]) -> str:
    """Path of SIPp; skips when missing, except under CI where it fails."""
    return require_peer("sipp")
