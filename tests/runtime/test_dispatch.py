"""Worker mode: Call-ID ownership, the relay between workers, and the transport using both."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from sipline.runtime import dispatch
from sipline.runtime.transport import Origin, TransportManager
from sipline.sip.message import Message

INVITE = (
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{cid}\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@example.com>;tag=1\r\n"
    "To: <sip:bob@example.com>\r\n"
    "{name}: {cid}\r\n"
    "CSeq: 1 INVITE\r\n"
    "Content-Length: 0\r\n\r\n"
)


def message(cid: str, name: str = "Call-ID") -> bytes:
    return INVITE.format(cid=cid, name=name).encode()


def call_id_owned_by(owner: int, count: int) -> str:
    for n in range(1000):
        cid = f"call{n}"
        if dispatch.owner_of(message(cid), count) == owner:
            return cid
    raise AssertionError("no Call-ID found")


def test_owner_is_stable_and_reads_every_spelling() -> None:
    owners = {dispatch.owner_of(message(f"c{n}"), 4) for n in range(200)}
    assert owners == {0, 1, 2, 3}
    for name in ("Call-ID", "call-id", "CALL-ID", "i", "Call-ID "):
        assert dispatch.owner_of(message("abc", name), 7) == dispatch.owner_of(message("abc"), 7)
    assert dispatch.owner_of(b"OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n", 3) is None


def test_relay_encoding_round_trip_and_garbage() -> None:
    packet = dispatch.encode_relay(b"SIP/2.0 200 OK\r\n\r\n", ("192.0.2.1", 5062), 5060)
    assert dispatch.decode_relay(packet) == (b"SIP/2.0 200 OK\r\n\r\n", ("192.0.2.1", 5062), 5060)
    for garbage in (b"no newline", b"a b\nx", b"h x 1\nx", b"\xff 1 2\nx"):
        assert dispatch.decode_relay(garbage) is None


@pytest.fixture
def groups() -> Iterator[list[dispatch.WorkerGroup]]:
    inboxes, outboxes = dispatch.make_inboxes(2)
    yield [dispatch.WorkerGroup(i, 2, inboxes, outboxes) for i in range(2)]
    for sock in (*inboxes, *outboxes):
        sock.close()
    dispatch.set_current(None)


def test_relay_reaches_the_owner_from_a_trusted_sender(groups: list[dispatch.WorkerGroup]) -> None:
    zero, one = groups
    assert zero.relay(1, b"data", ("192.0.2.1", 5062), 5060)
    one.inboxes[1].settimeout(1.0)
    packet, sender = one.inboxes[1].recvfrom(65536)
    assert one.trusted(sender)
    assert dispatch.decode_relay(packet) == (b"data", ("192.0.2.1", 5062), 5060)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.1", 0))
        assert not one.trusted(stranger.getsockname())


async def test_transport_in_worker_mode(groups: list[dispatch.WorkerGroup]) -> None:
    """Worker 0: relays worker 1's calls, handles its own and what worker 1 relays to it."""
    zero, one = groups
    dispatch.set_current(zero)
    got: list[tuple[Message, Origin]] = []
    manager = TransportManager(lambda msg, origin: got.append((msg, origin)))
    try:
        shared = await manager.listen("udp", "127.0.0.1", 0)
        [private] = manager.private_ports
        assert private.port != shared.port
        assert manager.via_local("udp") == private
        assert manager.via_local("tcp") is None
        mine, theirs = call_id_owned_by(0, 2), call_id_owned_by(1, 2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
            phone.bind(("127.0.0.1", 0))
            phone.sendto(message(theirs), ("127.0.0.1", shared.port))
            phone.sendto(message(mine), ("127.0.0.1", shared.port))
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0.01)
            [(msg, origin)] = got
            assert msg.call_id == mine and origin.peer.port == phone.getsockname()[1]
            # Worker 0 relayed the other call to worker 1's inbox, source address kept.
            one.inboxes[1].settimeout(1.0)
            packet, sender = one.inboxes[1].recvfrom(65536)
            assert one.trusted(sender)
            data, peer, local_port = dispatch.decode_relay(packet)  # type: ignore[misc]
            assert dispatch.owner_of(data, 2) == 1
            assert peer == phone.getsockname() and local_port == shared.port
            # What worker 1 relays to worker 0 is handled as if it came from the phone.
            got.clear()
            assert one.relay(0, message(mine + "x"), ("192.0.2.9", 5070), shared.port)
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0.01)
            [(msg, origin)] = got
            assert (origin.peer.host, origin.peer.port) == ("192.0.2.9", 5070)
            assert origin.local == shared
            # A relay from anybody else is ignored.
            got.clear()
            phone.sendto(dispatch.encode_relay(message(mine), ("192.0.2.9", 1), shared.port),
                         zero.inboxes[0].getsockname())
            await asyncio.sleep(0.05)
            assert got == []
    finally:
        await manager.close()
