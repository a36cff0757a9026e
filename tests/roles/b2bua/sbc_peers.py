"""Raw-UDP SIP peers on loopback for the SBC tests (helpers; fixtures are in conftest): a PBX we drive by hand and carriers that
answer by script, both keeping every message they receive for inspection."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sipline.roles.b2bua.sbc import Sbc, SbcOptions
from sipline.sip.auth import DigestServer, NonceFactory, parse_credentials
from sipline.sip.message import Message, Request, Response, parse_message
from sipline.sip.message.builders import response_to
from sipline.sip.timers import TimerConfig
from sipline.sip.transport import Peer
from sipline.storage.models import compute_ha1

FAST = TimerConfig(t1=0.05, t2=0.2, t4=0.25)
HOST = "127.0.0.1"

PBX_SDP = (
    "v=0\r\n"
    "o=FancyPBX 4711 1 IN IP4 10.0.0.5\r\n"
    "s=FancyPBX call\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 8\r\n"
)
CARRIER_SDP = (
    "v=0\r\n"
    "o=CarrierSBC 99 1 IN IP4 198.51.100.9\r\n"
    "s=CarrierSBC\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 50000 RTP/AVP 0\r\n"
)


class RawPeer:
    """One UDP socket; every message received is kept and queued."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.received: list[tuple[bytes, Message]] = []
        self.queue: asyncio.Queue[tuple[Message, tuple[str, int]]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data, addr = await loop.sock_recvfrom(self.sock, 65535)
            msg = parse_message(data)
            self.received.append((data, msg))
            self.queue.put_nowait((msg, addr))

    def send(self, data: bytes | Message, addr: tuple[str, int]) -> None:
        self.sock.sendto(bytes(data), addr)

    async def expect(self, pred: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            msg, _ = await asyncio.wait_for(self.queue.get(), max(0.01, deadline - time.monotonic()))
            if pred(msg):
                return msg

    def requests(self, method: str) -> list[Request]:
        return [m for _, m in self.received if isinstance(m, Request) and m.method == method]

    def raw(self) -> bytes:
        return b"\n".join(data for data, _ in self.received)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self.sock.close()


@dataclass
class Script:
    """How a carrier answers an INVITE: statuses in order (180, 200, 486...)."""

    statuses: Sequence[int] = (180, 200)
    challenge: bool = False
    reason: str | None = None
    #: Send 1xx (other than 100) reliably (RFC 3262) and go on only after their PRACK.
    reliable: bool = False


@dataclass
class Carrier:
    peer: RawPeer
    script: Script = field(default_factory=Script)
    answer_options: bool = True
    username: str = "acct"
    password: str = "secret"
    tag: str = "carrier-tag"
    invites: dict[str, Request] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    rseq: int = 7
    #: What is left of the script while a reliable 1xx waits for its PRACK.
    waiting: tuple[Request, tuple[str, int], list[int]] | None = None
    digest: DigestServer = field(default_factory=lambda: DigestServer(
        "carrier.example", NonceFactory(b"k" * 32, 60), algorithms=("MD5",)))

    @property
    def port(self) -> int:
        return self.peer.port

    def start(self) -> None:
        self.peer.start()
        self.task = asyncio.ensure_future(self._serve())

    async def _serve(self) -> None:
        while True:
            msg, addr = await self.peer.queue.get()
            if isinstance(msg, Request):
                self._on_request(msg, addr)

    def _reply(self, request: Request, status: int, addr: tuple[str, int], **kw: Any) -> None:
        headers = list(kw.pop("headers", ()))
        if 180 <= status < 300:
            headers.append(("Contact", f"<sip:gw@{HOST}:{self.port}>"))
            headers.append(("Server", "CarrierSBC 9.9"))
        self.peer.send(response_to(request, status, to_tag=self.tag, headers=headers, **kw), addr)

    def _on_request(self, req: Request, addr: tuple[str, int]) -> None:
        if req.method == "OPTIONS":
            if self.answer_options:
                self._reply(req, 200, addr)
        elif req.method == "INVITE" and req.to.tag is None:
            if self.script.challenge and not self._authorized(req):
                challenges = self.digest.challenge(time.time())
                self._reply(req, 407, addr, headers=[("Proxy-Authenticate", str(c)) for c in challenges])
                return
            self.invites[req.call_id] = req
            self._play(req, addr, list(self.script.statuses))
        elif req.method == "PRACK":
            self._reply(req, 200, addr)
            if self.waiting is not None:
                invite, where, rest = self.waiting
                self.waiting = None
                self._play(invite, where, rest)
        elif req.method == "CANCEL":
            self._reply(req, 200, addr)
            invite = self.invites.get(req.call_id)
            if invite is not None:
                self._reply(invite, 487, addr)
        elif req.method in ("BYE", "INVITE", "UPDATE", "INFO", "NOTIFY"):
            self._reply(req, 200, addr)
        elif req.method == "REFER":
            self._reply(req, 202, addr)

    def _play(self, req: Request, addr: tuple[str, int], statuses: list[int]) -> None:
        while statuses:
            status = statuses.pop(0)
            body = CARRIER_SDP.encode() if status in (183, 200) else b""
            extra = [("Reason", self.script.reason)] if self.script.reason and status >= 300 else []
            reliable = self.script.reliable and 100 < status < 200
            if reliable:
                extra += [("Require", "100rel"), ("RSeq", str(self.rseq))]
                self.rseq += 1
            self._reply(req, status, addr, body=body, content_type="application/sdp" if body else None,
                        headers=extra)
            if reliable:
                self.waiting = (req, addr, statuses)
                return

    def _authorized(self, req: Request) -> bool:
        for value in req.headers.get_all("Proxy-Authorization"):
            creds = parse_credentials(value, header="Proxy-Authorization")
            result = self.digest.verify(
                creds, "INVITE", req.uri_text, time.time(),
                lambda u, r, a: compute_ha1(u, r, self.password, a) if u == self.username else None)
            if result.ok:
                return True
        return False


def pbx_invite(pbx: RawPeer, sbc_port: int, callee: str, *, caller: str = "0301111", call_id: str = "pbx-call-1",
               branch: str = "z9hG4bKpbx1", extra: str = "") -> bytes:
    body = PBX_SDP.encode()
    return (
        f"INVITE sip:{callee}@{HOST}:{sbc_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{pbx.port};branch={branch};rport\r\n"
        f"Record-Route: <sip:{HOST}:{pbx.port};lr>\r\n"
        "Max-Forwards: 70\r\n"
        f"From: \"Alice\" <sip:{caller}@{HOST}:{pbx.port}>;tag=pbx-tag\r\n"
        f"To: <sip:{callee}@{HOST}:{sbc_port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:alice@{HOST}:{pbx.port}>\r\n"
        "User-Agent: FancyPBX 1.2\r\n"
        "X-Internal-Queue: sales\r\n"
        "Subject: hello\r\n"
        f"{extra}"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def in_dialog(pbx: RawPeer, ok: Response, method: str, sbc_port: int, cseq: int, branch: str) -> bytes:
    contact = ok.contacts[0].uri
    return (
        f"{method} {contact} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{pbx.port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {ok.headers.get('From')}\r\n"
        f"To: {ok.headers.get('To')}\r\n"
        f"Call-ID: {ok.call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def cancel_for_raw(invite: bytes) -> bytes:
    msg = parse_message(invite)
    assert isinstance(msg, Request)
    return (
        f"CANCEL {msg.uri_text} SIP/2.0\r\n"
        f"Via: {msg.headers.get('Via')}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {msg.headers.get('From')}\r\n"
        f"To: {msg.headers.get('To')}\r\n"
        f"Call-ID: {msg.call_id}\r\n"
        "CSeq: 1 CANCEL\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def is_status(status: int) -> Callable[[Message], bool]:
    return lambda m: isinstance(m, Response) and m.status == status


def final(m: Message) -> bool:
    return isinstance(m, Response) and m.status >= 200


def sbc_options(trunks: Any, routes: Any, **kw: Any) -> SbcOptions:
    kw.setdefault("timers", FAST)
    kw.setdefault("listen", (Peer("udp", HOST, 0),))
    kw.setdefault("pick", lambda weights: 0)
    return SbcOptions(trunks=trunks, routes=routes, **kw)


async def eventually(cond: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``cond`` until it returns something truthy (carriers answer on their own)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
