"""A call through the proxy between raw UDP peers: INVITE/180/200/ACK/BYE, 486, CANCEL, 404/480."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from sipline.roles.server import Server, ServerOptions
from sipline.sip.message import Request, Response, parse_message
from sipline.sip.transport import Peer
from sipline.storage import open_storage
from sipline.storage.models import Binding, Source, make_subscriber

DOMAIN = "example.com"


class Phone:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def send(self, data: bytes | Request | Response, port: int) -> None:
        self.sock.sendto(bytes(data), ("127.0.0.1", port))

    async def recv(self, timeout: float = 5) -> Request | Response:
        loop = asyncio.get_running_loop()
        while True:
            msg = parse_message(await asyncio.wait_for(loop.sock_recv(self.sock, 65535), timeout))
            assert isinstance(msg, (Request, Response))
            if isinstance(msg, Response) and msg.status == 100:
                continue
            return msg


def invite(caller: Phone, branch: str, ruri: str = f"sip:bob@{DOMAIN}", call_id: str = "call-1") -> bytes:
    return (
        f"INVITE {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:carol@other.net>;tag=c1\r\n"
        f"To: <{ruri}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:carol@127.0.0.1:{caller.port}>\r\n"
        "X-Custom: kept\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def answer(req: Request, status: int, reason: str, tag: str = "b1", contact: int | None = None) -> bytes:
    lines = [f"SIP/2.0 {status} {reason}"]
    for name, value in req.headers:
        if name.lower() in ("via", "from", "call-id", "cseq", "record-route"):
            lines.append(f"{name}: {value}")
        elif name.lower() == "to":
            lines.append(f"To: {value};tag={tag}" if "tag=" not in value else f"To: {value}")
    if contact is not None:
        lines.append(f"Contact: <sip:bob@127.0.0.1:{contact}>")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture
async def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    bob = Phone()
    storage = await open_storage(tmp_path / "sipline.db")
    await storage.subscribers.add(make_subscriber("bob", DOMAIN, "pw"))
    await storage.subscribers.add(make_subscriber("dave", DOMAIN, "pw"))
    await storage.location.upsert(Binding(f"sip:bob@{DOMAIN}", f"sip:bob@127.0.0.1:{bob.port}", time.time() + 600,
                                          call_id="r", cseq=1, received=Source("udp", "127.0.0.1", bob.port)))
    await storage.close()
    server = Server(ServerOptions(listen=(Peer("udp", "127.0.0.1", 0),), domains=(DOMAIN,), data_dir=tmp_path,
                                  secret=b"s" * 32))
    await server.start()
    yield server, bob, Phone()
    await server.stop(0.1)


async def test_call_answered_and_hung_up(setup) -> None:  # type: ignore[no-untyped-def]
    server, bob, carol = setup
    port = server.listening[0].port
    carol.send(invite(carol, "i1"), port)
    inv = await bob.recv()
    assert isinstance(inv, Request) and inv.method == "INVITE"
    assert inv.uri_text == f"sip:bob@127.0.0.1:{bob.port}"
    assert len(inv.vias) == 2 and inv.max_forwards == 69
    assert inv.headers.get("X-Custom") == "kept" and inv.record_routes
    bob.send(answer(inv, 180, "Ringing"), port)
    ringing = await carol.recv()
    assert isinstance(ringing, Response) and ringing.status == 180 and len(ringing.vias) == 1
    bob.send(answer(inv, 200, "OK", contact=bob.port), port)
    ok = await carol.recv()
    assert isinstance(ok, Response) and ok.status == 200 and ok.record_routes
    # ACK and BYE follow the Record-Route through the proxy
    rr = str(ok.record_routes[0])
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        carol.send((
            f"{method} sip:bob@127.0.0.1:{bob.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{carol.port};branch=z9hG4bK{method};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:carol@other.net>;tag=c1\r\n"
            f"To: <sip:bob@{DOMAIN}>;tag=b1\r\nCall-ID: call-1\r\nCSeq: {cseq} {method}\r\n"
            f"Route: {rr}\r\nContent-Length: 0\r\n\r\n").encode(), port)
        got = await bob.recv()
        assert isinstance(got, Request) and got.method == method and not got.routes
        if method == "BYE":
            bob.send(answer(got, 200, "OK"), port)
            done = await carol.recv()
            assert isinstance(done, Response) and done.status == 200 and done.cseq.method == "BYE"


async def test_busy_and_unknown_and_offline(setup) -> None:  # type: ignore[no-untyped-def]
    server, bob, carol = setup
    port = server.listening[0].port
    carol.send(invite(carol, "b1", call_id="busy"), port)
    inv = await bob.recv()
    assert isinstance(inv, Request)
    bob.send(answer(inv, 486, "Busy Here"), port)
    ack = await bob.recv()  # the proxy's client transaction ACKs the 486
    assert isinstance(ack, Request) and ack.method == "ACK"
    busy = await carol.recv()
    assert isinstance(busy, Response) and busy.status == 486
    carol.send(invite(carol, "u1", f"sip:nobody@{DOMAIN}", "unknown"), port)
    r = await carol.recv()
    assert isinstance(r, Response) and r.status == 404
    carol.send(invite(carol, "o1", f"sip:dave@{DOMAIN}", "offline"), port)
    r = await carol.recv()
    assert isinstance(r, Response) and r.status == 480


async def test_cancel_during_ringing(setup) -> None:  # type: ignore[no-untyped-def]
    server, bob, carol = setup
    port = server.listening[0].port
    carol.send(invite(carol, "c1", call_id="cancel"), port)
    inv = await bob.recv()
    assert isinstance(inv, Request)
    bob.send(answer(inv, 180, "Ringing"), port)
    assert (await carol.recv()).status == 180  # type: ignore[union-attr]
    carol.send((
        f"CANCEL sip:bob@{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{carol.port};branch=z9hG4bKc1;rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:carol@other.net>;tag=c1\r\n"
        f"To: <sip:bob@{DOMAIN}>\r\nCall-ID: cancel\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n").encode(), port)
    got = [await carol.recv(), await bob.recv()]
    responses = {m.status for m in got if isinstance(m, Response)}
    assert 200 in responses  # the CANCEL is answered hop by hop
    cancel = next(m for m in got if isinstance(m, Request))
    assert cancel.method == "CANCEL" and cancel.via.branch == inv.via.branch
    bob.send(answer(cancel, 200, "OK"), port)
    bob.send(answer(inv, 487, "Request Terminated"), port)
    final = await carol.recv()
    assert isinstance(final, Response) and final.status == 487
