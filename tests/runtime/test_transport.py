"""Transport layer over real loopback sockets: UDP, TCP, TLS."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

import pytest

from sipline.runtime.transport import Origin, TransportConfig, TransportManager
from sipline.sip.limits import Limits
from sipline.sip.message import Message, Request, Response, parse_message
from sipline.sip.transport import Peer

OPTIONS = (
    "OPTIONS sip:server@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/{t} 127.0.0.1:{port};branch=z9hG4bK{b};rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:probe@127.0.0.1>;tag=1\r\n"
    "To: <sip:server@127.0.0.1>\r\n"
    "Call-ID: c{b}@127.0.0.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
)


def options(t: str, port: int, b: str) -> bytes:
    return OPTIONS.format(t=t, port=port, b=b).encode()


class Collector:
    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[Message, Origin]] = asyncio.Queue()
        self.errors: list[tuple[Peer, BaseException]] = []

    def on_message(self, msg: Message, origin: Origin) -> None:
        self.messages.put_nowait((msg, origin))

    def on_error(self, peer: Peer, exc: BaseException) -> None:
        self.errors.append((peer, exc))

    async def get(self) -> tuple[Message, Origin]:
        return await asyncio.wait_for(self.messages.get(), 5)


async def make(config: TransportConfig | None = None, **kw: object) -> tuple[TransportManager, Collector]:
    c = Collector()
    m = TransportManager(c.on_message, on_error=c.on_error, config=config, tag_source=lambda: "rejtag", **kw)  # type: ignore[arg-type]
    return m, c


async def test_udp_request_stamped_and_response_routed() -> None:
    server, sc = await make()
    client, cc = await make()
    s = await server.listen("udp", "127.0.0.1", 0)
    c = await client.listen("udp", "127.0.0.1", 0)
    client.send(options("UDP", 9, "u1"), s)  # sent-by port 9 is wrong: rport must fix it
    msg, origin = await sc.get()
    assert isinstance(msg, Request) and msg.method == "OPTIONS"
    assert origin.peer == Peer("udp", "127.0.0.1", c.port) and origin.local == s
    assert msg.via.rport == c.port and msg.via.received == "127.0.0.1"
    server.send(b"SIP/2.0 200 OK\r\n" + b"".join(
        f"{n}: {v}\r\n".encode() for n, v in msg.headers if n.lower() not in ("max-forwards", "content-length")
    ) + b"Content-Length: 0\r\n\r\n", origin.peer)
    resp, _ = await cc.get()
    assert isinstance(resp, Response) and resp.status == 200
    assert server.stats["received"] == 1 and server.local_for("udp") == s and s in server.listeners
    await server.close()
    await client.close()


async def test_udp_malformed_request_gets_400_naming_header() -> None:
    import socket

    server, sc = await make()
    s = await server.listen("udp", "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    bad = options("UDP", 5060, "bad").replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS")
    sock.sendto(bad, ("127.0.0.1", s.port))
    data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
    resp = parse_message(data, validate=False)
    assert isinstance(resp, Response) and resp.status == 400
    assert "CSeq" in resp.reason and resp.to.tag == "rejtag"
    # garbage and keep-alives are dropped silently, and the server keeps serving
    for junk in (b"\r\n\r\n", b"\x00", b"hello world", b"SIP/2.0 200 OK\r\n\r\n"):
        sock.sendto(junk, ("127.0.0.1", s.port))
    sock.sendto(options("UDP", 5060, "ok"), ("127.0.0.1", s.port))
    msg, _ = await sc.get()
    assert msg.call_id == "cok@127.0.0.1"
    assert server.stats["malformed"] == 3
    sock.close()
    await server.close()


async def test_tcp_split_message_keepalive_and_reuse() -> None:
    server, sc = await make()
    client, cc = await make()
    s = await server.listen("tcp", "127.0.0.1", 0)
    data = options("TCP", 5060, "t1")
    reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
    writer.write(data[:37])
    await writer.drain()
    await asyncio.sleep(0.05)
    assert sc.messages.empty()
    writer.write(data[37:] + b"\r\n\r\n")  # rest, then a keep-alive ping
    await writer.drain()
    msg, origin = await sc.get()
    assert msg.call_id == "ct1@127.0.0.1" and origin.connection is not None
    assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"  # pong
    # the response goes back on the same connection
    server.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", origin.peer, connection=origin.connection)
    got = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert got.startswith(b"SIP/2.0 200 OK")
    assert server.connection_to(origin.peer) is origin.connection and server.connection_count == 1
    writer.close()
    await server.close()
    await client.close()


async def test_tcp_client_connects_and_reuses_connection() -> None:
    server, sc = await make()
    client, cc = await make()
    s = await server.listen("tcp", "127.0.0.1", 0)
    client.send(options("TCP", 5060, "a"), s)
    client.send(options("TCP", 5060, "b"), s)
    m1, o1 = await sc.get()
    m2, o2 = await sc.get()
    assert (m1.call_id, m2.call_id) == ("ca@127.0.0.1", "cb@127.0.0.1")
    assert o1.peer == o2.peer and client.connection_count == 1
    # the server answers over the connection the request came on
    server.send(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP x;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\n"
                b"Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", o1.peer)
    resp, origin = await cc.get()
    assert isinstance(resp, Response) and origin.peer.port == s.port
    await server.close()
    await client.close()


async def test_tcp_garbage_flood_closes_connection_only() -> None:
    server, sc = await make(TransportConfig(limits=Limits(max_message_size=2000, max_header_size=1000)))
    s = await server.listen("tcp", "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
    writer.write(b"X" * 5000)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # server closed us
    assert server.stats["malformed"] == 1
    # still serving others
    r2, w2 = await asyncio.open_connection("127.0.0.1", s.port)
    w2.write(options("TCP", 5060, "after"))
    msg, _ = await sc.get()
    assert msg.call_id == "cafter@127.0.0.1"
    w2.close()
    await server.close()


async def test_tcp_malformed_frame_answered_400_and_connection_kept() -> None:
    server, sc = await make()
    s = await server.listen("tcp", "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
    writer.write(options("TCP", 5060, "m").replace(b"Max-Forwards: 70", b"Max-Forwards: many"))
    resp = parse_message(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
    assert isinstance(resp, Response) and resp.status == 400 and "Max-Forwards" in resp.reason
    writer.write(options("TCP", 5060, "n"))
    msg, _ = await sc.get()
    assert msg.call_id == "cn@127.0.0.1"
    writer.close()
    await server.close()


async def test_connect_failure_reported() -> None:
    client, cc = await make(TransportConfig(connect_timeout=2))
    s, _ = await make()
    port = await s.listen("tcp", "127.0.0.1", 0)
    await s.close()
    client.send(b"x", Peer("tcp", "127.0.0.1", port.port))
    for _ in range(100):
        if cc.errors:
            break
        await asyncio.sleep(0.02)
    assert cc.errors and cc.errors[0][0].port == port.port
    await client.close()


async def test_idle_connections_closed() -> None:
    server, sc = await make(TransportConfig(idle_timeout=0.2))
    s = await server.listen("tcp", "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await server.close()


def make_cert(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_roundtrip(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    server, sc = await make(server_tls=server_ctx)
    client, cc = await make(client_tls=client_ctx)
    s = await server.listen("tls", "127.0.0.1", 0)
    client.send(options("TLS", 5061, "tls"), s)
    msg, origin = await sc.get()
    assert msg.call_id == "ctls@127.0.0.1" and origin.peer.transport == "tls"
    server.send(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS x;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\n"
                b"Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", origin.peer, connection=origin.connection)
    resp, _ = await cc.get()
    assert isinstance(resp, Response) and resp.status == 200
    await server.close()
    await client.close()


async def test_tls_listener_requires_context() -> None:
    server, _ = await make()
    with pytest.raises(ValueError):
        await server.listen("tls", "127.0.0.1", 0)
    with pytest.raises(ValueError):
        await server.listen("sctp", "127.0.0.1", 0)
    await server.close()
