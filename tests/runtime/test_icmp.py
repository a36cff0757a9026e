"""ICMP unreachable as a transport error: parsing, bounds, real loopback sockets, a proxy fork."""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import sys
import time
from pathlib import Path

import pytest

from sipline.roles.server import Server, ServerOptions
from sipline.runtime import icmp
from sipline.runtime.transport import TransportManager
from sipline.sip.message import Request, Response, parse_message
from sipline.sip.transport import Peer
from sipline.storage import open_storage
from sipline.storage.models import Binding, Source, make_subscriber

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="IP_RECVERR is Linux only")


def extended(errno_: int, origin: int, icmp_type: int, code: int) -> bytes:
    return struct.pack("=IBBBBII", errno_, origin, icmp_type, code, 0, 0, 0) + bytes(16)


@pytest.mark.parametrize("level, kind, data, expected", [
    (socket.IPPROTO_IP, 11, extended(111, 2, 3, 3), (111, "port")),
    (socket.IPPROTO_IP, 11, extended(113, 2, 3, 1), (113, "host")),
    (socket.IPPROTO_IP, 11, extended(90, 2, 3, 4), None),          # fragmentation needed: PMTU
    (socket.IPPROTO_IP, 11, extended(111, 2, 11, 0), None),        # time exceeded
    (socket.IPPROTO_IP, 11, extended(90, 1, 0, 0), None),          # a local error, not ICMP
    (socket.IPPROTO_IPV6, 25, extended(111, 3, 1, 4), (111, "port")),
    (socket.IPPROTO_IPV6, 25, extended(113, 3, 1, 3), (113, "host")),
    (socket.IPPROTO_IPV6, 25, extended(111, 3, 2, 0), None),       # packet too big
    (socket.IPPROTO_IP, 12, extended(111, 2, 3, 3), None),         # another control message
    (socket.IPPROTO_IP, 11, b"\x00" * 8, None),                    # truncated
])
def test_only_unreachable_kinds_count(level: int, kind: int, data: bytes, expected: object) -> None:
    assert icmp.parse_extended_error(level, kind, data) == expected


def test_rate_limit_is_a_token_bucket() -> None:
    limit = icmp.RateLimit(rate=4, burst=3)
    assert [limit.allow(100.0) for _ in range(4)] == [True, True, True, False]
    assert limit.allow(100.125) is False      # half a token
    assert limit.allow(100.25) is True        # one token after 0.25 s
    assert [limit.allow(200.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def manager() -> tuple[TransportManager, list[tuple[Peer, BaseException]]]:
    errors: list[tuple[Peer, BaseException]] = []
    m = TransportManager(lambda msg, origin: None, on_error=lambda peer, exc: errors.append((peer, exc)))
    await m.listen("udp", "127.0.0.1", 0)
    return m, errors


async def wait_for(predicate, timeout: float = 2.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@linux_only
async def test_port_unreachable_is_reported_for_its_destination() -> None:
    m, errors = await manager()
    dead = closed_port()
    for _ in range(3):  # retransmissions: at most one report per datagram
        m.send(b"OPTIONS sip:x SIP/2.0\r\n\r\n", Peer("udp", "127.0.0.1", dead))
    await wait_for(lambda: bool(errors))
    await asyncio.sleep(0.1)
    assert 1 <= len(errors) <= 3
    for peer, exc in errors:
        assert peer == Peer("udp", "127.0.0.1", dead)
        assert isinstance(exc, ConnectionRefusedError) and "port unreachable" in str(exc)
    # A moment later, a new transaction to the same dead port hears of it too.
    reported = len(errors)
    m.send(b"OPTIONS sip:x SIP/2.0\r\n\r\n", Peer("udp", "127.0.0.1", dead))
    await wait_for(lambda: len(errors) == reported + 1)
    await m.close()


@linux_only
async def test_a_pending_icmp_error_does_not_eat_the_next_datagram() -> None:
    """The kernel fails the first send after an ICMP error; that send is made again."""
    m, errors = await manager()
    live = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    live.bind(("127.0.0.1", 0))
    live.settimeout(2.0)
    m.send(b"first", Peer("udp", "127.0.0.1", closed_port()))
    time.sleep(0.05)  # the ICMP error arrives while the loop is blocked: it is still pending
    m.send(b"second", Peer("udp", "127.0.0.1", live.getsockname()[1]))
    assert live.recv(100) == b"second"
    await wait_for(lambda: bool(errors))
    assert [peer.port for peer, _ in errors] != [live.getsockname()[1]]
    live.close()
    await m.close()


@linux_only
async def test_an_icmp_flood_is_bounded_and_the_queue_drained() -> None:
    m, errors = await manager()
    protocol = next(iter(m._udp.values()))
    assert protocol.errors is not None
    protocol.errors.limit = icmp.RateLimit(rate=1, burst=20)
    ports = [closed_port() for _ in range(300)]
    for port in ports:
        m.send(b"x", Peer("udp", "127.0.0.1", port))
    await wait_for(lambda: protocol.errors is not None and protocol.errors.stats["icmp"] >= 250)
    await asyncio.sleep(0.1)
    stats = protocol.errors.stats
    assert stats["reported"] == len(errors) <= 21 and stats["suppressed"] >= 230
    with pytest.raises(BlockingIOError):  # nothing left for POLLERR to spin on
        protocol.errors.sock.recvmsg(1, 256, icmp.MSG_ERRQUEUE)
    await m.close()


@linux_only
async def test_a_synchronous_unreachable_send_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    m, errors = await manager()
    protocol = next(iter(m._udp.values()))
    assert protocol.transport is not None

    def refuse(data: bytes, addr: tuple[str, int]) -> None:
        protocol.error_received(OSError(errno.ENETUNREACH, "Network is unreachable"))

    monkeypatch.setattr(protocol.transport, "sendto", refuse)
    m.send(b"x", Peer("udp", "127.0.0.1", 9))
    await wait_for(lambda: bool(errors))
    assert errors[0][0] == Peer("udp", "127.0.0.1", 9) and errors[0][1].errno == errno.ENETUNREACH
    monkeypatch.undo()
    await m.close()


# -- the proxy: a fork to a vanished phone ends at once -----------------------------------

DOMAIN = "example.com"


def invite(caller_port: int, call_id: str) -> bytes:
    return (
        f"INVITE sip:bob@{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{caller_port};branch=z9hG4bK{call_id};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:carol@other.net>;tag=c1\r\n"
        f"To: <sip:bob@{DOMAIN}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:carol@127.0.0.1:{caller_port}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def final_response(sock: socket.socket, timeout: float) -> Response:
    loop = asyncio.get_running_loop()
    while True:
        msg = parse_message(await asyncio.wait_for(loop.sock_recv(sock, 65535), timeout))
        if isinstance(msg, Response) and msg.status >= 200:
            return msg


async def start_server(tmp_path: Path, contacts: list[int]) -> Server:
    storage = await open_storage(tmp_path / "sipline.db")
    await storage.subscribers.add(make_subscriber("bob", DOMAIN, "pw"))
    for n, port in enumerate(contacts):
        await storage.location.upsert(Binding(
            f"sip:bob@{DOMAIN}", f"sip:bob@127.0.0.1:{port}", time.time() + 600, call_id=f"r{n}", cseq=1,
            received=Source("udp", "127.0.0.1", port)))
    await storage.close()
    server = Server(ServerOptions(listen=(Peer("udp", "127.0.0.1", 0),), domains=(DOMAIN,), data_dir=tmp_path,
                                  secret=b"s" * 32))
    await server.start()
    return server


@linux_only
async def test_fork_to_a_dead_contact_fails_fast_and_the_caller_gets_the_other_answer(tmp_path: Path) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    busy.setblocking(False)
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind(("127.0.0.1", 0))
    caller.setblocking(False)
    server = await start_server(tmp_path, [closed_port(), busy.getsockname()[1]])
    port = server.listening[0].port
    loop = asyncio.get_running_loop()
    try:
        # The live phone rings, so only the dead branch keeps the call from completing.
        started = time.monotonic()
        caller.sendto(invite(caller.getsockname()[1], "fork-1"), ("127.0.0.1", port))
        request = parse_message(await asyncio.wait_for(loop.sock_recv(busy, 65535), 2))
        assert isinstance(request, Request)
        busy.sendto(reply(request, 486, "Busy Here"), ("127.0.0.1", port))
        final = await final_response(caller, 2)
        assert final.status == 486 and time.monotonic() - started < 1.0
    finally:
        await server.stop(0.1)
        busy.close()
        caller.close()


@linux_only
async def test_a_lone_dead_contact_answers_the_caller_within_a_second(tmp_path: Path) -> None:
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind(("127.0.0.1", 0))
    caller.setblocking(False)
    server = await start_server(tmp_path, [closed_port()])
    try:
        started = time.monotonic()
        caller.sendto(invite(caller.getsockname()[1], "dead-1"), ("127.0.0.1", server.listening[0].port))
        final = await final_response(caller, 2)
        # §16.7 step 6: a 503 chosen as best response goes upstream as 500.
        assert final.status in (480, 500, 503) and time.monotonic() - started < 1.0
    finally:
        await server.stop(0.1)
        caller.close()


def reply(request: Request, status: int, reason: str) -> bytes:
    lines = [f"SIP/2.0 {status} {reason}"]
    for name, value in request.headers:
        lower = name.lower()
        if lower in ("via", "from", "call-id", "cseq"):
            lines.append(f"{name}: {value}")
        elif lower == "to":
            lines.append(f"To: {value};tag=b1")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
