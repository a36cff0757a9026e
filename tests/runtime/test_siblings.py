"""Worker mode over TCP: two transport managers sharing one TCP port, as two workers would.

The kernel picks which "worker" accepts the phone's connection; the test then uses Call-IDs
owned by the holder and by the other one, so both paths run whatever the kernel chose.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from sipline.runtime import dispatch
from sipline.runtime.siblings import RelayedConnection
from sipline.runtime.transport import Origin, TransportManager
from sipline.sip.message import Message, Request, parse_message
from sipline.sip.transport import Peer

OPTIONS = (
    "OPTIONS sip:server@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK{cid}\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@example.com>;tag=1\r\n"
    "To: <sip:server@example.com>\r\n"
    "Call-ID: {cid}\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
)


def options(cid: str) -> bytes:
    return OPTIONS.format(cid=cid).encode()


def owned_by(owner: int, salt: str) -> str:
    return next(f"{salt}{n}" for n in range(1000) if dispatch.owner_of(options(f"{salt}{n}"), 2) == owner)


class Worker:
    def __init__(self, group: dispatch.WorkerGroup) -> None:
        dispatch.set_current(group)
        self.got: asyncio.Queue[tuple[Message, Origin]] = asyncio.Queue()
        self.errors: list[Peer] = []
        self.manager = TransportManager(lambda msg, origin: self.got.put_nowait((msg, origin)),
                                        on_error=lambda peer, exc: self.errors.append(peer))
        dispatch.set_current(None)

    async def next(self) -> tuple[Message, Origin]:
        return await asyncio.wait_for(self.got.get(), 2)


async def until(predicate, timeout: float = 2.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def workers() -> AsyncIterator[tuple[list[Worker], int]]:
    inboxes, outboxes = dispatch.make_inboxes(2)
    pair = [Worker(dispatch.WorkerGroup(i, 2, inboxes, outboxes)) for i in range(2)]
    local = await pair[0].manager.listen("tcp", "127.0.0.1", 0)
    await pair[1].manager.listen("tcp", "127.0.0.1", local.port)
    yield pair, local.port
    for worker in pair:
        await worker.manager.close()
    for sock in (*inboxes, *outboxes):
        sock.close()


async def read_message(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)


async def test_calls_cross_workers_over_one_connection(workers: tuple[list[Worker], int]) -> None:
    pair, port = workers
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    phone = writer.get_extra_info("sockname")
    peer = Peer("tcp", "127.0.0.1", phone[1])
    await until(lambda: sum(w.manager.connection_count for w in pair) == 1)
    holder = next(i for i, w in enumerate(pair) if w.manager.connection_count == 1)
    other = 1 - holder
    # The other worker learns who holds the connection (control packet "U").
    await until(lambda: pair[other].manager.connection_to(peer) is not None)

    # A message of the holder's own call stays with the holder.
    writer.write(options(owned_by(holder, "mine")))
    msg, origin = await pair[holder].next()
    assert isinstance(msg, Request) and not isinstance(origin.connection, RelayedConnection)

    # A message of the other worker's call is handled there, with the phone as its origin...
    cid = owned_by(other, "theirs")
    writer.write(options(cid))
    msg, origin = await pair[other].next()
    assert isinstance(msg, Request) and msg.call_id == cid
    assert origin.peer == peer and origin.local.port == port
    assert isinstance(origin.connection, RelayedConnection) and origin.connection.holder == holder
    assert msg.via.received is None or msg.via.received == "127.0.0.1"
    # ... and what it writes on that origin reaches the phone through the holder.
    pair[other].manager.send(b"SIP/2.0 200 OK\r\nCall-ID: " + cid.encode() + b"\r\nContent-Length: 0\r\n\r\n",
                             origin.peer, connection=origin.connection)
    reply = await read_message(reader)
    assert reply.startswith(b"SIP/2.0 200 OK\r\n") and f"Call-ID: {cid}\r\n".encode() in reply

    # A new request to the phone (its registration flow) from the worker not holding it.
    flow = pair[other].manager.connection_to(peer)
    assert isinstance(flow, RelayedConnection)
    pair[other].manager.send(options("to-phone"), peer, connection=flow)
    request = parse_message(await read_message(reader), datagram=False)
    assert isinstance(request, Request) and request.call_id == "to-phone"

    # The phone hangs up: the other worker forgets the flow ("D").
    writer.close()
    await until(lambda: pair[other].manager.connection_to(peer) is None)
    assert pair[other].manager.stats["stream_relayed"] == 0 and pair[holder].manager.stats["stream_relayed"] == 1


async def test_a_write_on_a_vanished_connection_is_a_transport_error(workers: tuple[list[Worker], int]) -> None:
    pair, port = workers
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    peer = Peer("tcp", "127.0.0.1", writer.get_extra_info("sockname")[1])
    await until(lambda: sum(w.manager.connection_count for w in pair) == 1)
    holder = next(i for i, w in enumerate(pair) if w.manager.connection_count == 1)
    other = pair[1 - holder]
    await until(lambda: other.manager.connection_to(peer) is not None)
    flow = other.manager.connection_to(peer)
    assert isinstance(flow, RelayedConnection)
    # The holder loses the connection without the "D" reaching the other worker in time.
    pair[holder].manager._connections.clear()
    other.manager.send(options("late"), peer, connection=flow)
    await until(lambda: peer in other.errors)
    assert other.manager.connection_to(peer) is None
    writer.close()


async def test_control_packets_from_strangers_are_ignored(workers: tuple[list[Worker], int]) -> None:
    pair, _ = workers
    group = pair[0].manager._group
    assert group is not None
    packet = dispatch.encode_control(dispatch.Control("U", "tcp", "192.0.2.1", 5060))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.sendto(packet, group.inboxes[0].getsockname())
    await asyncio.sleep(0.05)
    assert pair[0].manager.connection_to(Peer("tcp", "192.0.2.1", 5060)) is None


def test_control_encoding_round_trip_and_garbage() -> None:
    control = dispatch.Control("F", "tls", "2001:db8::1", 5061, 5061, b"INVITE ...\r\n\r\n")
    assert dispatch.decode_control(dispatch.encode_control(control)) == control
    assert dispatch.decode_control(dispatch.encode_control(dispatch.Control("H"))) == dispatch.Control("H")
    for garbage in (b"!Z tcp h 1 2\nx", b"!F tcp h 1\nx", b"!F tcp h x 2\nx", b"1.2.3.4 5 6\nx", b"!F"):
        assert dispatch.decode_control(garbage) is None
