"""The UDP sockets of an RTP session: bound by us, read through asyncio, written directly.

Why our own socket: the session sends one small datagram per call every 20 ms, and the
datagram transport's ``sendto`` only adds checks and a buffer on top of the socket's -- a
media packet that cannot leave now is better dropped than sent late.  So the session keeps
the socket and calls ``sock.sendto`` itself, while the transport (which closes the socket
with itself, on asyncio and on uvloop alike) delivers what arrives.

Why a small receive buffer: asyncio's selector transport reads each datagram into a
256 KiB buffer; allocating and trimming it cost ~13 µs per packet, more than everything
else the receive path does.  Audio RTP and RTCP fit in far less (a 20 ms G.711 packet is
172 bytes), so :data:`MAX_DATAGRAM` bounds it; longer datagrams would be truncated.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_DATAGRAM", "Address", "not_bound", "open_udp"]

Address = tuple[str, int]
MAX_DATAGRAM = 8192


def not_bound(data: bytes, address: Address) -> None:
    """The send function of a session without a socket (not bound yet, or closed)."""
    raise OSError("RTP session has no socket")


class _Endpoint(asyncio.DatagramProtocol):
    """Forwards datagrams of one socket to a handler."""

    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self._on_datagram = on_datagram
        self.errors = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        # Datagram sockets report (host, port[, flow, scope]) with a str host already.
        self._on_datagram(data, addr if len(addr) == 2 else (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the peer is not listening yet; keep going.
        self.errors += 1


async def open_udp(loop: asyncio.AbstractEventLoop, host: str, port: int,
                   handler: Callable[[bytes, Address], None]) -> tuple[asyncio.DatagramTransport, socket.socket]:
    """Bind ``host:port`` and deliver its datagrams to *handler*; raises ``OSError``."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        address: tuple[Any, ...] = (host, port)
    except ValueError:  # a host name: resolve it as create_datagram_endpoint would
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, address = infos[0][0], infos[0][4]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind(address)
        sock.setblocking(False)
        transport, _ = await loop.create_datagram_endpoint(lambda: _Endpoint(handler), sock=sock)
    except BaseException:
        sock.close()
        raise
    if hasattr(transport, "max_size"):  # asyncio's selector transport (uvloop reuses one buffer)
        transport.max_size = MAX_DATAGRAM
    return transport, sock
