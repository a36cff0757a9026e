"""The server answers OPTIONS to itself, refuses malformed input, drains with 503."""

from __future__ import annotations

import asyncio
import socket

from sipline.roles.server import Server, ServerOptions
from sipline.sip.message import Response, parse_message
from sipline.sip.transport import Peer


def options(port: int, ruri: str, branch: str, extra: str = "") -> bytes:
    return (
        f"OPTIONS {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:probe@127.0.0.1>;tag=p1\r\n"
        f"To: <{ruri}>\r\n"
        f"Call-ID: {branch}@127.0.0.1\r\n"
        f"CSeq: 1 OPTIONS\r\n{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def exchange(sock: socket.socket, data: bytes, port: int) -> Response:
    loop = asyncio.get_running_loop()
    sock.sendto(data, ("127.0.0.1", port))
    reply = parse_message(await asyncio.wait_for(loop.sock_recv(sock, 65535), 5), validate=False)
    assert isinstance(reply, Response)
    return reply


async def test_options_ping_malformed_and_drain() -> None:
    server = Server(ServerOptions(listen=(Peer("udp", "127.0.0.1", 0),), domains=("example.com",)))
    await server.start()
    port = server.listening[0].port
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    me = sock.getsockname()[1]
    try:
        r = await exchange(sock, options(me, f"sip:127.0.0.1:{port}", "a"), port)
        assert r.status == 200 and "INVITE" in r.allow and "REGISTER" in r.allow
        assert r.to.tag and r.via.rport == me
        r = await exchange(sock, options(me, "sip:example.com", "b"), port)
        assert r.status == 200
        r = await exchange(sock, options(me, f"sip:127.0.0.1:{port}", "c").replace(b"Max-Forwards: 70", b"Max-Forwards: x"), port)
        assert r.status == 400 and "Max-Forwards" in r.reason
        # a retransmission is absorbed: the same response comes back
        r1 = await exchange(sock, options(me, "sip:example.com", "d"), port)
        r2 = await exchange(sock, options(me, "sip:example.com", "d"), port)
        assert (r1.status, r1.to.tag) == (r2.status, r2.to.tag)
        server.draining = True
        r = await exchange(sock, options(me, "sip:example.com", "e"), port)
        assert r.status == 503 and r.headers.get("Retry-After") == "30"
    finally:
        sock.close()
        await server.stop(0.1)
