"""Several worker processes on one SIP port: which worker owns which datagram.

Theory of operation.  ``sipline.ops.workers`` forks N workers; each opens the same UDP and
TCP listeners with ``SO_REUSEPORT``.  The kernel spreads UDP datagrams by the sender's
address, which keeps no SIP state together: one SIPp socket, or one SBC in front of us,
sends every call from one address, so a single worker would get all the work.  And a
transaction must stay where it began -- a retransmitted INVITE, its CANCEL and the ACK of
its error response have to meet the server transaction that saw the INVITE.

So every call belongs to one worker, ``crc32(Call-ID) % N``.  A worker that receives a UDP
datagram of a call it does not own relays it, untouched and with its source address, to
the owner's inbox, which handles it as if it had arrived on the shared port.  Inboxes are
loopback UDP sockets created before the fork: a Unix datagram socket would be the obvious
choice, but Linux queues at most ``net.unix.max_dgram_qlen`` (often 10) datagrams on it,
which a burst overflows at once.  An inbox accepts only datagrams sent from the workers'
own relay sockets (their ports are known before the fork), so nobody else can inject a
message with a forged source address.  All the
transactions of a call (both legs of a proxied call, REGISTER's 401 then 200) therefore
live in one process, and requests the owner forwards leave from the owner's *own* UDP
port, which is also its Via sent-by: the next hop's responses (``rport`` or not) come
straight back to it, without a relay.  Responses that arrive on the shared port anyway are
relayed by Call-ID like requests.  Record-Route keeps the shared port, so a dialog
survives any one worker.

Stream connections (TCP, TLS) cannot move between processes, but their calls can: a
connection stays in the worker that accepted or opened it (the *holder*), each message read
from it goes to the owner of its Call-ID like a datagram, and whatever the owner must write
on the connection -- the responses, and requests to a phone registered over it (RFC 5626
flow reuse) -- it hands back to the holder.  Every worker announces the connections it
holds, so any owner can reach any registered flow.  See :mod:`sipline.runtime.siblings`;
the control packets are :class:`Control` (they start with ``!``, which no host does).

Finding the Call-ID costs one regex search over the raw bytes; the relay one ``send`` --
microseconds, against a millisecond or so for handling the message.
"""

from __future__ import annotations

import re
import socket
import zlib
from dataclasses import dataclass, field

__all__ = ["WorkerGroup", "Control", "owner_of", "call_id_owner", "encode_relay", "decode_relay", "encode_control",
           "decode_control", "current", "set_current", "MAX_RELAY"]

# Call-ID or its compact form "i", at the start of a header line (RFC 3261 §7.3.3, §20.8).
_CALL_ID = re.compile(rb"\r\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r\n", re.IGNORECASE)

#: Socket buffer for each inbox: bursts are absorbed, overflow is dropped like UDP.
INBOX_BUFFER = 4 << 20

#: Largest packet the inboxes carry: one loopback UDP datagram.
MAX_RELAY = 65507

#: Control packet kinds (see sipline.runtime.siblings): a frame read from a stream
#: connection, a write on the holder's connection, a connection up / down, a failed write,
#: and "tell me your connections" from a (re)started worker.
CONTROL_KINDS = frozenset(b"FWUDEH")


@dataclass(slots=True)
class WorkerGroup:
    """This process's place among the workers, and the inboxes of all of them."""

    index: int
    count: int
    #: ``inboxes[i]`` is worker i's receiving end; only ``inboxes[index]`` is read here.
    inboxes: list[socket.socket]
    #: ``outboxes[i]`` is the socket worker i relays from.
    outboxes: list[socket.socket]
    #: ``admin[i]``: worker i's listening loopback socket for its local admin state (empty
    #: without an admin endpoint; see sipline.ops.gather).
    admin: list[socket.socket] = field(default_factory=list)
    _targets: list[tuple[str, int]] = field(init=False, repr=False)
    _senders: frozenset[object] = field(init=False, repr=False)

    _indexes: dict[object, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._targets = [sock.getsockname() for sock in self.inboxes]
        self._senders = frozenset(sock.getsockname() for sock in self.outboxes)
        self._indexes = {sock.getsockname(): index for index, sock in enumerate(self.outboxes)}

    def trusted(self, sender: object) -> bool:
        """Whether an inbox datagram comes from one of the workers' relay sockets."""
        return sender in self._senders

    def sender_index(self, sender: object) -> int | None:
        """Which worker sent an inbox datagram; None for a stranger."""
        return self._indexes.get(sender)

    def send(self, index: int, packet: bytes) -> bool:
        """Put a packet in worker ``index``'s inbox; False when it cannot (full, too big)."""
        if len(packet) > MAX_RELAY:
            return False
        try:
            self.outboxes[self.index].sendto(packet, self._targets[index])
        except (BlockingIOError, InterruptedError, OSError):
            return False
        return True

    def owner(self, data: bytes) -> int:
        found = owner_of(data, self.count)
        return self.index if found is None else found

    def relay(self, owner: int, data: bytes, peer: tuple[str, int], local_port: int) -> bool:
        """Hand a datagram to its owner; False when the inbox is full (dropped, like UDP)."""
        try:
            self.outboxes[self.index].sendto(encode_relay(data, peer, local_port), self._targets[owner])
        except (BlockingIOError, InterruptedError, OSError):
            return False
        return True


def owner_of(data: bytes, count: int) -> int | None:
    """The worker owning the call of this message, None without a findable Call-ID."""
    found = _CALL_ID.search(data)
    if found is None:
        return None
    return call_id_owner(found.group(1), count)


def call_id_owner(call_id: bytes | str, count: int) -> int:
    """The worker owning a Call-ID: the one hash every worker agrees on.  Exposed so that a
    worker originating a call (the SBC's outbound legs) can pick a Call-ID it owns itself;
    a ``str`` is encoded the way messages are serialized."""
    raw = call_id.encode("utf-8", "surrogateescape") if isinstance(call_id, str) else call_id
    return zlib.crc32(raw) % count


def encode_relay(data: bytes, peer: tuple[str, int], local_port: int) -> bytes:
    """``host SP port SP local-port LF`` followed by the datagram as received."""
    return f"{peer[0]} {peer[1]} {local_port}\n".encode("ascii") + data


def decode_relay(packet: bytes) -> tuple[bytes, tuple[str, int], int] | None:
    head, sep, data = packet.partition(b"\n")
    if not sep:
        return None
    parts = head.split(b" ")
    if len(parts) != 3:
        return None
    try:
        return data, (parts[0].decode("ascii"), int(parts[1])), int(parts[2])
    except (UnicodeDecodeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Control:
    """A control packet between workers about one stream connection."""

    #: One of :data:`CONTROL_KINDS`.
    kind: str
    #: The connection, named by its transport and remote address (unique per holder).
    transport: str = ""
    host: str = ""
    port: int = 0
    #: "F": our listening port the connection was accepted on (0 for one we opened).
    local_port: int = 0
    #: "F": the message read; "W": the bytes to write.
    data: bytes = b""


def encode_control(control: Control) -> bytes:
    """``! kind SP transport SP host SP port SP local-port LF data``."""
    head = f"!{control.kind} {control.transport or '-'} {control.host or '-'} {control.port} {control.local_port}\n"
    return head.encode("ascii") + control.data


def decode_control(packet: bytes) -> Control | None:
    head, sep, data = packet.partition(b"\n")
    if not sep or len(head) < 2 or head[0:1] != b"!" or head[1] not in CONTROL_KINDS:
        return None
    parts = head[2:].split(b" ")
    if len(parts) != 5 or parts[0] != b"":
        return None
    try:
        transport, host = parts[1].decode("ascii"), parts[2].decode("ascii")
        port, local_port = int(parts[3]), int(parts[4])
    except (UnicodeDecodeError, ValueError):
        return None
    return Control(chr(head[1]), "" if transport == "-" else transport, "" if host == "-" else host,
                   port, local_port, data)


def make_inboxes(count: int) -> tuple[list[socket.socket], list[socket.socket]]:
    """Per worker an inbox and a relay socket, both on loopback: (inboxes, outboxes)."""
    inboxes: list[socket.socket] = []
    outboxes: list[socket.socket] = []
    for _ in range(count):
        for group in (inboxes, outboxes):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, INBOX_BUFFER)
                except OSError:  # pragma: no cover - kernel limits
                    pass
            group.append(sock)
    return inboxes, outboxes


_current: WorkerGroup | None = None


def current() -> WorkerGroup | None:
    """The worker group of this process, None when it is the only server process."""
    return _current


def set_current(group: WorkerGroup | None) -> None:
    global _current
    _current = group
