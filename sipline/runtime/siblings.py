"""Worker mode over TCP and TLS: calls owned by one worker, connections held by another.

Theory of operation.  With ``workers = N`` the kernel hands each accepted connection to
one worker (``SO_REUSEPORT``), and a connection cannot move to another process.  But SIP
state must stay with the call (:mod:`sipline.runtime.dispatch`): an INVITE, its CANCEL and
its responses meet in the worker owning the Call-ID.  And a phone registered over TCP or
TLS is reachable only through the connection it registered on (RFC 5626 flow reuse, NAT),
which some other worker may hold.  So:

* The *holder* of a connection reads and frames it as usual, but hands each message whose
  Call-ID another worker owns to that owner (control packet ``F``: the bytes as read and
  the connection's name -- transport, remote address, our listening port).
* The owner handles it as if it had been read locally.  The message's origin carries a
  :class:`RelayedConnection`: anything written on it -- the responses -- goes back to the
  holder (``W``), which writes it on the real connection.
* Each worker announces the connections it holds to all others (``U`` when up, ``D`` when
  gone; a (re)started worker asks with ``H``), so :meth:`StreamLinks.connection_to` finds
  the flow of any registered phone and a request for it is written through its holder.
  The phone's responses then arrive at the holder and travel to the owner like any
  message of the call.
* A write the holder cannot do (the connection closed meanwhile) is answered with ``E``,
  which the owner reports as a transport error for that peer.

Packets ride the workers' loopback inboxes, which carry one datagram of at most
:data:`~sipline.runtime.dispatch.MAX_RELAY` bytes; the rare bigger message is handled by
the worker that read it (correct for everything but matching a CANCEL or ACK that another
worker owns), and a bigger write fails like a broken connection.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..sip.transport import Peer
from . import dispatch
from .dispatch import Control, WorkerGroup
from .transport import Origin, StreamConnection, _Receiver

if TYPE_CHECKING:
    from .transport import TransportManager

__all__ = ["StreamLinks", "RelayedConnection"]

log = logging.getLogger("sipline.transport")

_Key = tuple[str, str, int]


class RelayedConnection(StreamConnection):
    """A stream connection another worker holds: writes go through that worker.

    It stands where a :class:`StreamConnection` is expected (an :class:`Origin`, a
    ``Destination``), so the endpoint and the roles need not know about workers.
    """

    def __init__(self, links: StreamLinks, holder: int, name: str, peer: Peer, local: Peer | None) -> None:
        # Deliberately not StreamConnection.__init__: no socket, framer or future here.
        self.manager = links.manager
        self.links = links
        self.holder = holder
        self.name = name
        self.peer = peer
        self.local = local
        self.transport = None

    @property
    def key(self) -> _Key:
        assert self.peer is not None
        return (self.name, self.peer.host, self.peer.port)

    @property
    def is_open(self) -> bool:
        return self.links.holder_of(self.key) == self.holder

    def write(self, data: bytes) -> None:
        if not self.is_open:
            raise ConnectionError(f"{self.name} connection to {self.peer} (worker {self.holder}) is closed")
        if not self.links.write_through(self, data):
            raise ConnectionError(f"cannot hand {len(data)} bytes for {self.peer} to worker {self.holder}")

    def close(self) -> None:
        self.links.forget(self.key, self.holder)

    def __repr__(self) -> str:
        return f"<RelayedConnection {self.name}:{self.peer} via worker {self.holder}>"


class _RelayingReceiver(_Receiver):
    """The receiver of a connection this worker holds: other workers' calls go to them."""

    def __init__(self, links: StreamLinks, conn: StreamConnection) -> None:
        super().__init__(links.manager)
        self.links = links
        self.conn = conn

    def handle(self, data: bytes, origin: Origin, datagram: bool) -> None:
        group = self.links.group
        owner = group.owner(data)
        if owner == group.index or not self.links.hand_over(owner, self.conn, data):
            super().handle(data, origin, datagram)


class StreamLinks:
    """This worker's side of the stream connections shared between workers."""

    def __init__(self, manager: TransportManager, group: WorkerGroup) -> None:
        self.manager = manager
        self.group = group
        #: Connections other workers hold: name -> holder index.
        self._holders: dict[_Key, int] = {}
        self._remote: dict[_Key, RelayedConnection] = {}
        self._receiver = _Receiver(manager)
        manager.stats.setdefault("stream_relayed", 0)
        manager.stats.setdefault("stream_relay_fallbacks", 0)

    # -- the connections we hold ---------------------------------------------------------

    def adopt(self, conn: StreamConnection) -> None:
        """A connection of ours is up: relay its other workers' calls, announce it."""
        conn.receiver = _RelayingReceiver(self, conn)
        self._broadcast(Control("U", *_key(conn)))

    def drop(self, conn: StreamConnection) -> None:
        self._broadcast(Control("D", *_key(conn)))

    def hand_over(self, owner: int, conn: StreamConnection, data: bytes) -> bool:
        """Send a message read from our connection to the worker owning its call."""
        local_port = conn.local.port if conn.local is not None else 0
        packet = dispatch.encode_control(Control("F", *_key(conn), local_port, data))
        if self.group.send(owner, packet):
            self.manager.stats["stream_relayed"] += 1
            return True
        self.manager.stats["stream_relay_fallbacks"] += 1
        log.warning("cannot hand a %d-byte message from %s to worker %d; handling it here",
                    len(data), conn.peer, owner)
        return False

    def hello(self) -> None:
        """A (re)started worker: ask the others which connections they hold."""
        self._broadcast(Control("H"))

    # -- the connections others hold -------------------------------------------------------

    def holder_of(self, key: _Key) -> int | None:
        return self._holders.get(key)

    def connection_to(self, peer: Peer) -> RelayedConnection | None:
        """The flow to ``peer`` through the worker holding it, None when nobody does."""
        key = (peer.transport, peer.host, peer.port)
        holder = self._holders.get(key)
        if holder is None:
            return None
        return self._relayed(key, holder, None)

    def write_through(self, conn: RelayedConnection, data: bytes) -> bool:
        return self.group.send(conn.holder, dispatch.encode_control(Control("W", *conn.key, 0, data)))

    def forget(self, key: _Key, holder: int) -> None:
        if self._holders.get(key) == holder:
            del self._holders[key]
        self._remote.pop(key, None)

    def _relayed(self, key: _Key, holder: int, local: Peer | None) -> RelayedConnection:
        conn = self._remote.get(key)
        if conn is None or conn.holder != holder:
            if len(self._remote) >= self.manager.config.max_connections:
                self._remote.clear()  # rebuilt on demand; bounded like the real ones
            conn = RelayedConnection(self, holder, key[0], Peer(*key), local)
            self._remote[key] = conn
        elif local is not None and conn.local is None:
            conn.local = local
        return conn

    # -- the inbox -------------------------------------------------------------------------

    def handle(self, packet: bytes, sender: object) -> None:
        """A control packet from another worker's relay socket (already trusted)."""
        source = self.group.sender_index(sender)
        control = dispatch.decode_control(packet)
        if control is None or source is None or source == self.group.index:
            return
        key = (control.transport, control.host, control.port)
        kind = control.kind
        if kind == "F":
            self._holders[key] = source
            local = self._local(control.transport, control.local_port)
            conn = self._relayed(key, source, local)
            origin = Origin(Peer(*key), local, conn, self.manager.loop.time())
            self._receiver.handle(control.data, origin, False)
        elif kind == "W":
            self._write_local(key, control.data, source)
        elif kind == "U":
            self._holders[key] = source
        elif kind == "D":
            self.forget(key, source)
        elif kind == "E":
            self.forget(key, source)
            self.manager.on_error(Peer(*key), ConnectionError(f"connection held by worker {source} is gone"))
        elif kind == "H":
            for held in list(self.manager._connections.values()):
                if held.is_open:
                    self.group.send(source, dispatch.encode_control(Control("U", *_key(held))))

    def _write_local(self, key: _Key, data: bytes, owner: int) -> None:
        conn = self.manager._connections.get(key)
        try:
            if conn is None or not conn.is_open:
                raise ConnectionError("gone")
            conn.write(data)
            self.manager.stats["sent"] += 1
        except ConnectionError:
            self.manager.stats["send_errors"] += 1
            self.group.send(owner, dispatch.encode_control(Control("E", *key)))

    def _local(self, transport: str, port: int) -> Peer:
        for local in self.manager.listeners:
            if local.transport == transport and local.port == port:
                return local
        found = self.manager.local_for(transport) or self.manager.local_for("udp")
        return found if found is not None else Peer(transport, "0.0.0.0", port)

    def _broadcast(self, control: Control) -> None:
        packet = dispatch.encode_control(control)
        for index in range(self.group.count):
            if index != self.group.index:
                self.group.send(index, packet)


def _key(conn: StreamConnection) -> _Key:
    assert conn.peer is not None
    return (conn.name, conn.peer.host, conn.peer.port)
