"""A real ``sipline serve`` facing broken and hostile datagrams over UDP.

A request whose header cannot be parsed gets 400 Bad Request whose reason
phrase names the faulty header (the receive path raises ``ParseError`` with
that reason), and the server keeps serving: an OPTIONS right after still
gets its 200.  A flood of garbage (random bytes, truncated messages, broken
headers, oversized datagrams) must not kill the process or wedge it.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

pytestmark = pytest.mark.interop

FLOOD = 2000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Server]:
    started = harness.start_sipline(tmp_path_factory.mktemp("sipline"),
                                    config=harness.sipline_config(drain_timeout=1.0))
    with harness.running(started):
        yield started


@pytest.fixture
def client() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((harness.LOOPBACK, 0))
        sock.settimeout(2.0)
        yield sock


def _request(sock: socket.socket, server: harness.Server, *, method: str = "INVITE",
             cseq: str | None = None, via_params: str = "") -> bytes:
    local_port = sock.getsockname()[1]
    lines = [
        f"{method} sip:bob@{server.domain} SIP/2.0",
        f"Via: SIP/2.0/UDP {harness.LOOPBACK}:{local_port};branch=z9hG4bK{uuid.uuid4().hex}"
        f"{via_params}",
        "Max-Forwards: 70",
        f"From: <sip:alice@{server.domain}>;tag={uuid.uuid4().hex[:8]}",
        f"To: <sip:bob@{server.domain}>",
        f"Call-ID: {uuid.uuid4().hex}@{harness.LOOPBACK}",
        f"CSeq: {cseq or '1 ' + method}",
        "Content-Length: 0",
        "", "",
    ]
    return "\r\n".join(lines).encode()


def _status_line(sock: socket.socket) -> str:
    data = sock.recv(65535)
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def _options_ok(server: harness.Server, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if harness.options_ping(server.port) == 200:
            return True
    return False


BROKEN = [
    pytest.param({"cseq": "abc INVITE"}, "CSeq", id="cseq-not-a-number"),
    pytest.param({"cseq": "1 OPTIONS"}, "CSeq", id="cseq-method-mismatch"),
    pytest.param({"cseq": "99999999999 INVITE"}, "CSeq", id="cseq-too-big"),
    pytest.param({"via_params": ";;"}, "Via", id="via-empty-param"),
    pytest.param({"via_params": ";maddr=@@"}, "Via", id="via-bad-maddr"),
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("fault", "header"), BROKEN)
def test_broken_header_gets_400_naming_it(server: harness.Server, client: socket.socket,
                                          fault: dict[str, str], header: str) -> None:
    client.sendto(_request(client, server, **fault), (harness.LOOPBACK, server.port))
    status = _status_line(client)
    assert status.startswith("SIP/2.0 400 "), status
    assert header in status.split(" ", 2)[2], status
    assert _options_ok(server), server.peer.log_tail()
    server.peer.check_alive()


def _garbage(rng: random.Random, index: int, port: int) -> bytes:
    """Datagrams of several kinds, so that every stage of the receive path is hit."""
    kind = index % 6
    if kind == 0:
        return rng.randbytes(rng.randint(1, 1400))
    if kind == 1:  # a plausible start line, then noise
        return b"INVITE sip:bob@sipline.test SIP/2.0\r\n" + rng.randbytes(rng.randint(0, 600))
    if kind == 2:  # truncated in the middle of the headers
        whole = (f"REGISTER sip:sipline.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port}"
                 f";branch=z9hG4bK{index}\r\nFrom: <sip:x@sipline.test>;tag=1\r\n").encode()
        return whole[:rng.randint(1, len(whole))]
    if kind == 3:  # a response nobody asked for
        return (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK{index}\r\n"
                f"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
    if kind == 4:  # broken header, answered with 400
        return (f"OPTIONS sip:sipline.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port}"
                f";branch=z9hG4bK{index}\r\nCSeq: x{index} OPTIONS\r\n\r\n").encode()
    return b"\r\n" * rng.randint(1, 4) + b"\x00\xff" * rng.randint(0, 30000)


@pytest.mark.timeout(30)
def test_garbage_flood_then_options_still_200(server: harness.Server,
                                              client: socket.socket) -> None:
    rng = random.Random(3261)
    port = client.getsockname()[1]
    target = (harness.LOOPBACK, server.port)
    client.setblocking(False)
    for index in range(FLOOD):
        try:
            client.sendto(_garbage(rng, index, port), target)
        except BlockingIOError:
            time.sleep(0.001)
        except OSError:
            pass  # EMSGSIZE and friends: that datagram just does not exist
        if index % 200 == 0:
            _drain(client)
    _drain(client)
    assert _options_ok(server, within=10.0), server.peer.log_tail()
    server.peer.check_alive()
    assert os.path.exists(f"/proc/{server.pid}")


def _drain(sock: socket.socket) -> None:
    """Read the 400s we provoked, so that our own receive buffer never fills."""
    while True:
        try:
            sock.recv(65535)
        except (BlockingIOError, OSError):
            return


@pytest.mark.timeout(20)
def test_bad_received_param_does_not_stop_retransmissions(server: harness.Server,
                                                          client: socket.socket) -> None:
    """Timer G keeps resending an unacknowledged 407 although another request was bad."""
    client.settimeout(0.1)
    client.sendto(_request(client, server), (harness.LOOPBACK, server.port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind((harness.LOOPBACK, 0))
        started = time.monotonic()
        arrivals: list[float] = []
        sent_bad = False
        # 407 at 0 s, then Timer G (T1 = 0.5 s, doubling): 0.5, 1.5, 3.5 s.
        while time.monotonic() - started < 4.0:
            if not sent_bad and time.monotonic() - started > 0.2:
                other.sendto(_request(other, server, via_params=";received=::1"),
                             (harness.LOOPBACK, server.port))
                sent_bad = True
            try:
                client.recv(65535)
            except OSError:
                continue
            arrivals.append(time.monotonic() - started)
    assert len(arrivals) >= 4, arrivals
    server.peer.check_alive()
