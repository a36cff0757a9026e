"""Listeners and connections: UDP, TCP and TLS over asyncio.

The transport layer turns bytes into parsed messages and back, and nothing more: what a message
means is decided above it.  It owns

* one datagram endpoint per UDP listener,
* stream listeners for TCP and TLS and a pool of connections, reused both for responses
  (back on the connection the request came on) and for new requests to the same peer,
* the defences every network-facing path needs: size limits from :class:`~sipline.sip.limits.
  Limits`, idle timeouts, a cap on unsent bytes per connection (a peer that stops reading is
  disconnected, not buffered for), and a ``400`` naming the fault for malformed requests.

Incoming messages are delivered to a single callback with an :class:`Origin` describing where
they came from; that is what response routing (§18.2.2) and NAT traversal (a binding that
remembers its flow) need.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from ..sip.errors import ProtocolError
from ..sip.limits import DEFAULT_LIMITS, Limits
from ..sip.message import KeepAlivePing, Message, Request, StreamFramer, parse_message
from ..sip.message.rejection import rejection_for
from ..sip.transport import Peer, stamp_received
from . import dispatch, icmp

if TYPE_CHECKING:
    from .siblings import StreamLinks

__all__ = ["Origin", "TransportManager", "StreamConnection", "TransportConfig"]

log = logging.getLogger("sipline.transport")
TRACE = 5


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Tunables of the transport layer."""

    limits: Limits = DEFAULT_LIMITS
    #: Seconds without traffic after which a stream connection is closed.
    idle_timeout: float = 600.0
    #: Unsent bytes allowed per connection before the peer is considered stuck.
    max_write_buffer: int = 1 << 20
    #: Most simultaneous stream connections (accepted plus opened).
    max_connections: int = 10000
    #: Seconds allowed for an outgoing TCP/TLS connection to be established.
    connect_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from."""

    #: The remote address (transport, IP, port) of the packet or connection.
    peer: Peer
    #: Our own address that received it.
    local: Peer
    #: The stream connection, None for UDP.
    connection: StreamConnection | None = field(default=None, compare=False)
    #: ``loop.time()`` when it arrived.
    received_at: float = field(default=0.0, compare=False)


MessageHandler = Callable[[Message, Origin], None]
ErrorHandler = Callable[[Peer, BaseException], None]


def _peer_of(transport: str, sockaddr: tuple[object, ...]) -> Peer:
    host = str(sockaddr[0])
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return Peer(transport, host, int(sockaddr[1]))  # type: ignore[call-overload]


class _Receiver:
    """Shared receive logic: parse, stamp Via, reject garbage, deliver."""

    def __init__(self, manager: TransportManager) -> None:
        self.manager = manager

    def handle(self, data: bytes, origin: Origin, datagram: bool) -> None:
        manager = self.manager
        if log.isEnabledFor(TRACE):
            log.log(TRACE, "recv %d bytes from %s:\n%s", len(data), origin.peer, data.decode("utf-8", "replace"))
        try:
            msg = parse_message(data, manager.config.limits, datagram=datagram)
            if isinstance(msg, Request):
                stamp_received(msg, origin.peer.host, origin.peer.port)
        except ProtocolError as exc:
            manager.stats["malformed"] += 1
            first = data[:80].split(b"\r\n", 1)[0].decode("utf-8", "replace")
            log.warning("refused message from %s (%s): %s", origin.peer, first, exc.reason)
            response = rejection_for(data, exc, manager.id_tag())
            if response is not None:
                manager.send(bytes(response), origin.peer, connection=origin.connection)
            return
        manager.stats["received"] += 1
        manager.on_message(msg, origin)


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, manager: TransportManager, local: Peer,
                 group: dispatch.WorkerGroup | None = None) -> None:
        self.manager = manager
        self.local = local
        self.receiver = _Receiver(manager)
        self.transport: asyncio.DatagramTransport | None = None
        #: Set on a port shared by several workers: datagrams of other workers' calls are
        #: relayed to them (see sipline.runtime.dispatch).
        self.group = group
        #: ICMP unreachable reporting (Linux), see sipline.runtime.icmp.
        self.errors: icmp.ErrorQueue | None = None
        self._sending = False
        self._send_error: OSError | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.errors = icmp.watch(transport, self._unreachable, self.manager.loop)

    def _unreachable(self, host: str, port: int, exc: OSError) -> None:
        self.manager.stats["send_errors"] += 1
        self.manager.on_error(Peer("udp", host, port), exc)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send a datagram; with ICMP reporting on, a send that fails because an earlier
        datagram's ICMP error was pending is sent again (see sipline.runtime.icmp)."""
        transport = self.transport
        assert transport is not None
        if self.errors is None:
            transport.sendto(data, addr)
            return
        self._sending = True
        try:
            transport.sendto(data, addr)
            failed = self._send_error
            if failed is not None and failed.errno in icmp.STALE_SEND_ERRORS:
                self._send_error = None
                transport.sendto(data, addr)
                failed = self._send_error
        finally:
            self._sending = False
            self._send_error = None
        if failed is not None and failed.errno in icmp.STALE_SEND_ERRORS:
            self.errors.failed(str(addr[0]), int(addr[1]), failed)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.errors is not None:
            self.errors.close()
            self.errors = None

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if len(data) < 64 and not data.strip(b"\r\n\x00 "):
            return  # keep-alive (CRLF or NUL) packets from NATed phones
        group = self.group
        if group is not None:
            owner = group.owner(data)
            if owner != group.index:
                if not group.relay(owner, data, (str(addr[0]), int(addr[1])), self.local.port):
                    self.manager.stats["relay_drops"] += 1
                return
        origin = Origin(_peer_of("udp", addr), self.local, None, self.manager.loop.time())
        self.receiver.handle(data, origin, True)

    def error_received(self, exc: Exception) -> None:
        if self._sending and isinstance(exc, OSError):
            self._send_error = exc
        if self.errors is not None:
            self.errors.drain()
        log.debug("UDP error on %s: %s", self.local, exc)


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection, inbound or outbound."""

    def __init__(self, manager: TransportManager, transport_name: str, local: Peer | None = None) -> None:
        self.manager = manager
        self.name = transport_name
        self.framer = StreamFramer(manager.config.limits)
        self.receiver = _Receiver(manager)
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.local: Peer | None = local
        self.last_activity = manager.loop.time()
        self.closed = asyncio.get_running_loop().create_future()
        self._pending: list[bytes] = []
        self._connected = False

    # -- asyncio callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the asyncio.Transport interface without subclassing it.
        stream = cast(asyncio.Transport, transport)
        self.transport = stream
        self.peer = _peer_of(self.name, transport.get_extra_info("peername"))
        self.local = _peer_of(self.name, transport.get_extra_info("sockname"))
        self._connected = True
        self.manager._register(self)
        stream.set_write_buffer_limits(high=self.manager.config.max_write_buffer)
        for data in self._pending:
            stream.write(data)
        self._pending.clear()

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.manager.loop.time()
        framer = self.framer
        try:
            framer.feed(data)
            while True:
                frame = framer.next_frame()
                if frame is None:
                    break
                if isinstance(frame, bytes):
                    assert self.peer is not None and self.local is not None
                    origin = Origin(self.peer, self.local, self, self.last_activity)
                    self.receiver.handle(frame, origin, False)
                elif isinstance(frame, KeepAlivePing):
                    self.write(b"\r\n")
        except ProtocolError as exc:
            log.warning("closing %s connection from %s: %s", self.name, self.peer, exc.reason)
            self.manager.stats["malformed"] += 1
            self.close()

    def pause_writing(self) -> None:
        # The peer does not read: it will not read the rest either.
        log.warning("closing %s connection to %s: peer is not reading", self.name, self.peer)
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.manager._unregister(self)
        if not self.closed.done():
            self.closed.set_result(None)

    # -- API ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is None:
            self._pending.append(data)
            return
        if self.transport.is_closing():
            raise ConnectionError(f"{self.name} connection to {self.peer} is closed")
        self.transport.write(data)

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TransportManager:
    """All listeners and connections of one endpoint."""

    def __init__(
        self,
        on_message: MessageHandler,
        *,
        config: TransportConfig | None = None,
        on_error: ErrorHandler | None = None,
        server_tls: ssl.SSLContext | None = None,
        client_tls: ssl.SSLContext | None = None,
        tag_source: Callable[[], str] | None = None,
    ) -> None:
        self.on_message = on_message
        self.on_error = on_error or (lambda peer, exc: log.info("transport error to %s: %s", peer, exc))
        self.config = config or TransportConfig()
        self.server_tls = server_tls
        self.client_tls = client_tls
        self.loop = asyncio.get_running_loop()
        self._udp: dict[Peer, _DatagramProtocol] = {}
        self._servers: dict[Peer, asyncio.AbstractServer] = {}
        self._connections: dict[tuple[str, str, int], StreamConnection] = {}
        self._connecting: dict[tuple[str, str, int], StreamConnection] = {}
        self._tag_source = tag_source
        self.stats: dict[str, int] = {"received": 0, "sent": 0, "malformed": 0, "send_errors": 0,
                                      "relay_drops": 0}
        self._idle_handle: asyncio.TimerHandle | None = None
        #: Worker mode (sipline.runtime.dispatch): shared listeners, an inbox, an own port.
        self._group = dispatch.current()
        self._private: dict[str, _DatagramProtocol] = {}
        self._inbox: socket.socket | None = None
        #: Worker mode: stream connections shared with the other workers (sipline.runtime.siblings).
        self._links: StreamLinks | None = None

    def id_tag(self) -> str | None:
        return self._tag_source() if self._tag_source is not None else None

    # -- listeners ---------------------------------------------------------------------

    async def listen(self, transport: str, host: str, port: int) -> Peer:
        """Open a listener; returns its bound address (port 0 picks a free one)."""
        transport = transport.lower()
        if transport == "udp":
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self._group is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            except OSError:  # pragma: no cover - kernel limits
                pass
            sock.bind((host, port))
            bound = _peer_of("udp", sock.getsockname())
            local = Peer("udp", host if host not in ("0.0.0.0", "::") else bound.host, bound.port)
            _, protocol = await self.loop.create_datagram_endpoint(
                lambda: _DatagramProtocol(self, local, self._group), sock=sock
            )
            self._udp[local] = protocol
            if self._group is not None:
                await self._open_private(local, family)
            return local
        if transport in ("tcp", "tls"):
            ctx = None
            if transport == "tls":
                if self.server_tls is None:
                    raise ValueError("a TLS listener needs a certificate and key")
                ctx = self.server_tls
            server = await self.loop.create_server(
                lambda: StreamConnection(self, transport), host, port, ssl=ctx, reuse_address=True,
                reuse_port=self._group is not None or None,
            )
            sockname = server.sockets[0].getsockname()
            local = Peer(transport, host, int(sockname[1]))
            self._servers[local] = server
            self._arm_idle_check()
            if self._group is not None:
                self._start_links()
            return local
        raise ValueError(f"unsupported transport {transport!r}")

    async def _open_private(self, shared: Peer, family: int) -> None:
        """Worker mode: this worker's own UDP port (Via sent-by of what it forwards), and
        the reader of its inbox of datagrams relayed by the other workers."""
        group = self._group
        assert group is not None
        key = "v6" if family == socket.AF_INET6 else "v4"
        if key not in self._private:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            except OSError:  # pragma: no cover - kernel limits
                pass
            sock.bind((shared.host, 0))
            local = Peer("udp", shared.host, _peer_of("udp", sock.getsockname()).port)
            _, protocol = await self.loop.create_datagram_endpoint(
                lambda: _DatagramProtocol(self, local), sock=sock
            )
            self._private[key] = protocol
        if self._inbox is None:
            self._inbox = group.inboxes[group.index]
            self.loop.add_reader(self._inbox.fileno(), self._read_inbox)

    def _start_links(self) -> None:
        """Worker mode with stream listeners: pass calls and writes between the worker
        holding a connection and the one owning the call (sipline.runtime.siblings)."""
        group = self._group
        assert group is not None
        if self._links is None:
            from .siblings import StreamLinks

            self._links = StreamLinks(self, group)
            self._links.hello()
        if self._inbox is None:
            self._inbox = group.inboxes[group.index]
            self.loop.add_reader(self._inbox.fileno(), self._read_inbox)

    def _read_inbox(self) -> None:
        inbox, group = self._inbox, self._group
        if inbox is None or group is None:
            return
        now = self.loop.time()
        for _ in range(64):  # then let the loop breathe; the reader fires again
            try:
                packet, sender = inbox.recvfrom(1 << 17)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # pragma: no cover - inbox torn down
                log.debug("worker inbox: %s", exc)
                return
            if not group.trusted(sender):
                continue
            if packet[:1] == b"!":
                if self._links is not None:
                    self._links.handle(packet, sender)
                continue
            relayed = dispatch.decode_relay(packet)
            if relayed is None:
                continue
            data, addr, local_port = relayed
            protocol = self._udp_listener(local_port, addr[0])
            if protocol is None:
                continue
            origin = Origin(_peer_of("udp", addr), protocol.local, None, now)
            protocol.receiver.handle(data, origin, True)

    def _udp_listener(self, port: int, remote_host: str) -> _DatagramProtocol | None:
        want_v6 = ":" in remote_host
        for local, protocol in self._udp.items():
            if local.port == port and (":" in local.host) == want_v6:
                return protocol
        return self._udp_for(remote_host)

    @property
    def listeners(self) -> list[Peer]:
        return list(self._udp) + list(self._servers)

    @property
    def private_ports(self) -> list[Peer]:
        """Worker mode: this worker's own UDP addresses (empty otherwise)."""
        return [protocol.local for protocol in self._private.values()]

    def via_local(self, transport: str) -> Peer | None:
        """The address for the Via of a request we send: in worker mode this worker's own
        UDP port, so responses reach the worker holding the client transaction."""
        if transport.lower() == "udp" and self._private:
            return next(iter(self._private.values())).local
        return self.local_for(transport)

    def local_for(self, transport: str) -> Peer | None:
        """A listening address for *transport*, used as Via sent-by."""
        transport = transport.lower()
        for peer in self.listeners:
            if peer.transport == transport:
                return peer
        if transport == "tls":
            return None
        return None

    # -- connections -------------------------------------------------------------------

    def _register(self, conn: StreamConnection) -> None:
        assert conn.peer is not None
        key = (conn.name, conn.peer.host, conn.peer.port)
        if len(self._connections) >= self.config.max_connections:
            log.warning("connection limit reached; refusing %s", conn.peer)
            conn.close()
            return
        self._connections[key] = conn
        if self._links is not None:
            self._links.adopt(conn)

    def _unregister(self, conn: StreamConnection) -> None:
        if conn.peer is None:
            return
        key = (conn.name, conn.peer.host, conn.peer.port)
        if self._connections.get(key) is conn:
            del self._connections[key]
            if self._links is not None:
                self._links.drop(conn)

    def connection_to(self, peer: Peer) -> StreamConnection | None:
        conn = self._connections.get((peer.transport, peer.host, peer.port))
        if conn is not None and conn.is_open:
            return conn
        return self._links.connection_to(peer) if self._links is not None else None

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def _arm_idle_check(self) -> None:
        if self._idle_handle is None:
            interval = max(1.0, min(30.0, self.config.idle_timeout / 4))
            self._idle_handle = self.loop.call_later(interval, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_handle = None
        deadline = self.loop.time() - self.config.idle_timeout
        for conn in list(self._connections.values()):
            if conn.last_activity < deadline:
                log.debug("closing idle %s connection %s", conn.name, conn.peer)
                conn.close()
        self._arm_idle_check()

    async def _connect(self, peer: Peer, conn: StreamConnection) -> None:
        key = (peer.transport, peer.host, peer.port)
        ctx = self.client_tls if peer.transport == "tls" else None
        if peer.transport == "tls" and ctx is None:
            ctx = ssl.create_default_context()
        try:
            await asyncio.wait_for(
                self.loop.create_connection(lambda: conn, peer.host, peer.port, ssl=ctx),
                self.config.connect_timeout,
            )
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            self.stats["send_errors"] += 1
            self.on_error(peer, exc)
        finally:
            self._connecting.pop(key, None)
        self._arm_idle_check()

    # -- sending -----------------------------------------------------------------------

    def send(self, data: bytes, peer: Peer, *, connection: StreamConnection | None = None,
             outbound: bool = False) -> None:
        """Send *data* to *peer*, on *connection* if given and still open.

        ``outbound`` marks a request we originate or forward: in worker mode a UDP one
        leaves from this worker's own port, the port its Via names.

        Never raises for network conditions: failures are reported to ``on_error`` so the
        transaction layer can turn them into a 503-equivalent (§8.1.3.1).
        """
        if log.isEnabledFor(TRACE):
            log.log(TRACE, "send %d bytes to %s:\n%s", len(data), peer, data.decode("utf-8", "replace"))
        self.stats["sent"] += 1
        transport = peer.transport
        if transport == "udp":
            protocol = self._private_for(peer.host) if outbound and self._private else self._udp_for(peer.host)
            if protocol is None or protocol.transport is None:
                self.on_error(peer, ConnectionError("no UDP listener to send from"))
                return
            try:
                protocol.sendto(data, (peer.host, peer.port))
            except (OSError, ValueError) as exc:  # unroutable or malformed address from the wire
                self.stats["send_errors"] += 1
                self.on_error(peer, exc)
            return
        conn = connection if connection is not None and connection.is_open else self.connection_to(peer)
        if conn is None:
            key = (transport, peer.host, peer.port)
            conn = self._connecting.get(key)
            if conn is None:
                conn = StreamConnection(self, transport)
                self._connecting[key] = conn
                self.loop.create_task(self._connect(peer, conn))
        try:
            conn.write(data)
        except ConnectionError as exc:
            self.stats["send_errors"] += 1
            self.on_error(peer, exc)

    def _private_for(self, host: str) -> _DatagramProtocol | None:
        own = self._private.get("v6" if ":" in host else "v4")
        return own if own is not None else self._udp_for(host)

    def _udp_for(self, host: str) -> _DatagramProtocol | None:
        want_v6 = ":" in host
        fallback = None
        for local, protocol in self._udp.items():
            if (":" in local.host) == want_v6:
                return protocol
            fallback = protocol
        return fallback

    async def close(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        for server in self._servers.values():
            server.close()
        if self._inbox is not None:
            self.loop.remove_reader(self._inbox.fileno())
            self._inbox = None
        for protocol in [*self._udp.values(), *self._private.values()]:
            if protocol.transport is not None:
                protocol.transport.close()
        for conn in list(self._connections.values()) + list(self._connecting.values()):
            conn.close()
        for server in self._servers.values():
            await server.wait_closed()
        self._servers.clear()
        self._udp.clear()
