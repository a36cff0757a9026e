"""REGISTER through the whole server: digest challenge, binding stored, survives restart."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from sipline.roles.server import Server, ServerOptions
from sipline.sip.auth.client import build_credentials
from sipline.sip.auth.header import parse_challenges
from sipline.sip.message import Response, parse_message
from sipline.sip.transport import Peer
from sipline.storage import open_storage
from sipline.storage.models import make_subscriber

DOMAIN = "example.com"


def register(port: int, branch: str, cseq: int, auth: str = "", expires: int = 600) -> bytes:
    return (
        f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@{DOMAIN}>;tag=a1\r\n"
        f"To: <sip:alice@{DOMAIN}>\r\n"
        "Call-ID: reg-1@127.0.0.1\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:alice@127.0.0.1:{port}>;expires={expires}\r\n"
        f"{auth}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def exchange(sock: socket.socket, data: bytes, port: int) -> Response:
    loop = asyncio.get_running_loop()
    sock.sendto(data, ("127.0.0.1", port))
    reply = parse_message(await asyncio.wait_for(loop.sock_recv(sock, 65535), 5))
    assert isinstance(reply, Response)
    return reply


async def start(data_dir: Path) -> Server:
    server = Server(ServerOptions(listen=(Peer("udp", "127.0.0.1", 0),), domains=(DOMAIN,),
                                  data_dir=data_dir, secret=b"k" * 32))
    await server.start()
    return server


async def test_register_challenge_bind_and_restart(tmp_path: Path) -> None:
    storage = await open_storage(tmp_path / "sipline.db")
    await storage.subscribers.add(make_subscriber("alice", DOMAIN, "secret"))
    await storage.close()

    server = await start(tmp_path)
    port = server.listening[0].port
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    me = sock.getsockname()[1]
    try:
        r = await exchange(sock, register(me, "r1", 1), port)
        assert r.status == 401
        challenges = parse_challenges(r.headers.get_fields("WWW-Authenticate")[0])
        creds = build_credentials(challenges[0], "alice", "REGISTER", f"sip:{DOMAIN}", password="secret",
                                  cnonce="c1", nc=1, qop="auth")
        r = await exchange(sock, register(me, "r2", 2, f"Authorization: {creds}\r\n"), port)
        assert r.status == 200, r.reason
        assert [str(c.uri) for c in r.contacts] == [f"sip:alice@127.0.0.1:{me}"]
        # wrong password is refused with a fresh challenge
        bad = build_credentials(challenges[0], "alice", "REGISTER", f"sip:{DOMAIN}", password="wrong",
                                cnonce="c2", nc=2, qop="auth")
        r = await exchange(sock, register(me, "r3", 3, f"Authorization: {bad}\r\n"), port)
        assert r.status == 401
    finally:
        await server.stop(0.1)

    server = await start(tmp_path)  # restart: the binding is still there
    try:
        assert server.registrar is not None
        import time

        bindings = await server.registrar.lookup(f"sip:alice@{DOMAIN}", time.time())
        assert [b.contact for b in bindings] == [f"sip:alice@127.0.0.1:{me}"]
    finally:
        sock.close()
        await server.stop(0.1)
