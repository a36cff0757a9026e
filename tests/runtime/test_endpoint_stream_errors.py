"""A request sent on a stream flow that has died fails at once (RFC 3261 §17.1.4: a
transport error is a 503), instead of waiting for Timer B/F.

The runtime's destination for such a request names the connection as well as the peer
(RFC 5626 flow reuse), while the transport reports errors by peer; the endpoint must match
the two by address."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from sipline.runtime.endpoint import ClientCallbacks, Destination, Endpoint
from sipline.runtime.ids import SecureIdSource
from sipline.runtime.transport import Origin, TransportManager
from sipline.sip.message import Request, Response
from sipline.sip.message.builders import make_request
from sipline.sip.transaction.keys import TransactionKey


class _User:
    def __init__(self) -> None:
        self.requests: asyncio.Queue[tuple[Request, Origin]] = asyncio.Queue()

    def on_request(self, request: Request, key: TransactionKey, origin: Origin) -> None:
        self.requests.put_nowait((request, origin))

    def on_cancel(self, cancel: Request, invite_key: TransactionKey, origin: Origin) -> None: ...

    def on_ack(self, ack: Request, origin: Origin | None) -> None: ...

    def on_stray_response(self, response: Response, origin: Origin | None) -> None: ...


def _options(branch: str, port: int) -> bytes:
    return (f"OPTIONS sip:probe@127.0.0.1:{port};transport=tcp SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK{branch}\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:phone@127.0.0.1>;tag=1\r\nTo: <sip:probe@127.0.0.1>\r\n"
            f"Call-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.mark.timeout(20)
async def test_request_on_a_dead_flow_fails_fast() -> None:
    user = _User()
    ids = SecureIdSource()

    def factory(on_message: Any, on_error: Any) -> TransportManager:
        return TransportManager(on_message, on_error=on_error, tag_source=ids.tag)

    endpoint = Endpoint(factory, user, ids=ids)  # default timers: Timer F is 32 s
    try:
        local = await endpoint.transports.listen("tcp", "127.0.0.1", 0)
        phone = socket.create_connection(("127.0.0.1", local.port))
        phone.sendall(_options("flow", local.port))
        _, origin = await asyncio.wait_for(user.requests.get(), 5)
        assert origin.connection is not None
        phone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        phone.close()  # RST: the phone is gone
        await asyncio.sleep(0.2)

        failed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        request = make_request(
            "OPTIONS", f"sip:phone@{origin.peer.host}:{origin.peer.port};transport=tcp",
            from_="<sip:server@127.0.0.1>;tag=s1", to="<sip:phone@127.0.0.1>", call_id="dead-flow@test",
            cseq=1, via=f"SIP/2.0/TCP 127.0.0.1:{local.port};branch={ids.branch()}")
        started = asyncio.get_running_loop().time()
        endpoint.send_request(request, Destination(origin.peer, origin.connection),
                              ClientCallbacks(lambda r: None, lambda status: failed.set_result(status)))
        status = await asyncio.wait_for(failed, 5)
        assert status == 503
        assert asyncio.get_running_loop().time() - started < 2.0
    finally:
        await endpoint.close()
