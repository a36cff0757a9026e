"""The transport-layer rules of RFC 3261 §18 and RFC 3581, as pure functions.

The asyncio runtime moves bytes; these functions decide what the bytes must say and where they
go: the ``received``/``rport`` parameters a server adds to the top Via (§18.2.1, RFC 3581 §4),
where a response is sent (§18.2.2, RFC 3581 §4), when a request must move from UDP to a
congestion-controlled transport (§18.1.1), and which address family and default port apply.
Keeping them here means the runtime has no ``if`` about SIP semantics, and the rules are
tested without sockets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .message.fields import Via
from .message.model import Request

__all__ = [
    "Peer",
    "default_port",
    "is_reliable",
    "stamp_received",
    "response_destination",
    "must_use_congestion_controlled",
    "UDP_SIZE_THRESHOLD",
]

#: §18.1.1: a request within 200 bytes of the path MTU (1500 assumed) must not go over UDP.
UDP_SIZE_THRESHOLD = 1300

_RELIABLE = frozenset({"tcp", "tls", "ws", "wss", "sctp"})


@dataclass(frozen=True, slots=True)
class Peer:
    """A transport address: transport name (lower case), host (IP or name) and port."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport in _RELIABLE

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def is_reliable(transport: str) -> bool:
    """True for transports that retransmit by themselves (everything but UDP)."""
    return transport.lower() in _RELIABLE


def default_port(transport: str) -> int:
    """5061 for TLS-based transports, 5060 otherwise (§19.1.2, RFC 7118 for WS)."""
    t = transport.lower()
    if t in ("tls", "wss"):
        return 5061 if t == "tls" else 443
    if t == "ws":
        return 80
    return 5060


def _same_host(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def stamp_received(request: Request, source_host: str, source_port: int) -> bool:
    """Add ``received`` and fill ``rport`` on the top Via of a request we received.

    §18.2.1: ``received`` is added when sent-by is not the packet's source address.  RFC 3581
    §4: when the client asked with an empty ``rport``, we fill in the source port and always
    add ``received``.  Returns True if the Via changed.  Only the topmost Via value is rewritten;
    the rest of the header keeps its original text.
    """
    via = request.via
    params = via.params
    changed = False
    if via.has_rport and params.get("rport") is None:
        params = params.with_("received", source_host).with_("rport", str(source_port))
        changed = True
    elif not _same_host(via.host, source_host) or (
        via.received is not None and not _same_host(via.received, source_host)
    ):
        # A received parameter is ours to write: one the client put there (or a stale one)
        # would send our responses somewhere else.
        params = params.with_("received", source_host)
        changed = True
    if not changed:
        return False
    new_top = str(Via(via.transport, via.host, via.port, params, via.protocol))
    headers = request.headers
    headers.pop_first("Via")
    headers.prepend("Via", new_top)
    return True


def response_destination(via: Via, default_transport: str | None = None) -> Peer:
    """Where to send a response for a request whose top Via is *via* (§18.2.2, RFC 3581).

    Reliable transports should first try the connection the request arrived on; this gives the
    address to (re)connect to when that connection is gone.
    """
    transport = (default_transport or via.transport).lower()
    maddr = via.maddr
    if maddr is not None and not is_reliable(transport):
        return Peer(transport, maddr, via.port or default_port(transport))
    host = via.received or via.host
    rport = via.rport
    if rport is not None:
        port = rport
    else:
        port = via.port or default_port(transport)
    return Peer(transport, host, port)


def must_use_congestion_controlled(size: int, transport: str, threshold: int = UDP_SIZE_THRESHOLD) -> bool:
    """§18.1.1: a request larger than the threshold goes over TCP instead of UDP."""
    return transport.lower() == "udp" and size > threshold
