"""ICMP "unreachable" on UDP as a transport error (Linux ``IP_RECVERR``).

Why.  A phone that vanished leaves a binding whose address answers every datagram with an
ICMP port (or host) unreachable.  Without this module nobody hears it: an unconnected UDP
socket drops ICMP errors, so a forked INVITE waits for Timer B/C (32 s, or minutes) before
the caller learns anything.  RFC 3261 §17.1.4 wants a transport failure reported to the
client transaction, which then acts as on a 503; the proxy ends that branch (§16.7) and the
caller gets the best other answer at once.

How.  With ``IP_RECVERR`` (``IPV6_RECVERR``) set, Linux queues every ICMP error for the
socket on its *error queue*, with the original destination as ``msg_name`` and a
``sock_extended_err`` control message saying what happened.  The kernel also sets the
socket's pending error, which makes the next ``recvfrom`` -- or the next ``sendto``! --
fail once; asyncio and uvloop turn either into ``error_received``.  That is our cue to
drain the queue with ``recvmsg(MSG_ERRQUEUE)``.  Two consequences shape the code:

* the queue must be drained completely, or the socket stays in ``POLLERR`` and the event
  loop spins; draining goes in batches, the next batch scheduled with ``call_soon``;
* a ``sendto`` can fail because of an *earlier* ICMP for another destination, so the
  datagram socket retries such a send once (see ``_DatagramProtocol.sendto``).

Hostile input.  Anyone on the path can send ICMP errors quoting our datagrams, and a flood
of them must not turn into a flood of work (each report walks the transaction table).  So
only "unreachable" kinds count (not "fragmentation needed", not local errors), errors for
one destination read together make one report, reports beyond a token bucket (``rate``
per second, ``burst``) are counted and dropped, and every report is delivered from
``call_soon`` -- never from inside a send, which may be running inside the endpoint's own
flush.  (No longer hold-off per destination: a new call to the same dead phone a moment
later must fail fast too, and once a transaction has failed it sends nothing more.)  Other platforms keep the old behaviour: :func:`watch` returns None.
"""

from __future__ import annotations

import asyncio
import errno as errno_codes
import logging
import os
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Unreachable", "RateLimit", "ErrorQueue", "parse_extended_error", "watch", "STALE_SEND_ERRORS"]

log = logging.getLogger("sipline.transport")

# <linux/in.h>, <linux/in6.h>, <linux/errqueue.h>; Python < 3.12 lacks the names.
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3

# struct sock_extended_err { u32 ee_errno; u8 ee_origin, ee_type, ee_code, ee_pad;
#                            u32 ee_info; u32 ee_data; }  -- then the offender's sockaddr.
_EXTENDED_ERR = struct.Struct("=IBBBBII")

# ICMP type 3 "destination unreachable" (RFC 792, RFC 1812 §5.2.7.1): net, host, protocol,
# port, and the administratively prohibited codes.  Code 4 (fragmentation needed) is path
# MTU discovery, not a failure.
_ICMP4 = {3: {0: "net", 1: "host", 2: "protocol", 3: "port", 9: "prohibited", 10: "prohibited",
              13: "prohibited"}}
# ICMPv6 type 1 "destination unreachable" (RFC 4443 §3.1): no route, prohibited, address,
# port, and the policy codes 5 and 6.
_ICMP6 = {1: {0: "net", 1: "prohibited", 3: "host", 4: "port", 5: "prohibited", 6: "prohibited"}}

#: ``sendto`` errors that may be a pending ICMP error of an earlier datagram rather than
#: a fault of this one: the send is worth one retry.
STALE_SEND_ERRORS = frozenset({errno_codes.ECONNREFUSED, errno_codes.EHOSTUNREACH, errno_codes.ENETUNREACH,
                               errno_codes.EHOSTDOWN, errno_codes.EACCES})


@dataclass(frozen=True, slots=True)
class Unreachable:
    """One ICMP error read from the queue: which destination failed, and how."""

    #: The original destination of the datagram the ICMP error quotes.
    host: str
    port: int
    #: "port", "host", "net", "protocol" or "prohibited".
    kind: str
    #: The errno the kernel maps the ICMP error to (ECONNREFUSED for "port" ...).
    errno: int

    def exception(self) -> OSError:
        return OSError(self.errno, f"{os.strerror(self.errno)} (ICMP {self.kind} unreachable)")


def parse_extended_error(level: int, kind: int, data: bytes) -> tuple[int, str] | None:
    """``(errno, kind)`` of a ``sock_extended_err`` control message that reports an ICMP
    destination unreachable; None for anything else (local errors, PMTU, other types)."""
    if (level, kind) not in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)):
        return None
    if len(data) < _EXTENDED_ERR.size:
        return None
    ee_errno, origin, icmp_type, icmp_code, _pad, _info, _data = _EXTENDED_ERR.unpack_from(data)
    table = _ICMP4 if origin == SO_EE_ORIGIN_ICMP else _ICMP6 if origin == SO_EE_ORIGIN_ICMP6 else None
    if table is None:
        return None
    name = table.get(icmp_type, {}).get(icmp_code)
    return None if name is None else (ee_errno, name)


class RateLimit:
    """A token bucket: ``rate`` events per second, at most ``burst`` at once (pure; time
    is an argument)."""

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at: float | None = None

    def allow(self, now: float) -> bool:
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


Report = Callable[[str, int, OSError], None]


class ErrorQueue:
    """The error queue of one UDP socket, drained into bounded transport-error reports."""

    def __init__(self, sock: socket.socket, report: Report, loop: asyncio.AbstractEventLoop, *,
                 rate: float = 50.0, burst: float = 100.0, batch: int = 256) -> None:
        #: Our own duplicate of the listener's descriptor: the loop's transport does not
        #: expose ``recvmsg``; both descriptors name the same socket and error queue.
        self.sock = sock
        self.report = report
        self.loop = loop
        self.limit = RateLimit(rate, burst)
        self.batch = batch
        self.stats: dict[str, int] = {"icmp": 0, "reported": 0, "suppressed": 0, "ignored": 0}
        self._pending: dict[tuple[str, int], OSError] = {}
        self._drain_scheduled = False
        self._report_scheduled = False

    # -- reading the queue -------------------------------------------------------------

    def drain(self) -> None:
        """Read one batch of queued errors; schedule the next batch if the queue may hold
        more (a full queue keeps the socket in POLLERR, which the loop would spin on)."""
        self._drain_scheduled = False
        sock = self.sock
        for _ in range(self.batch):
            try:
                _data, ancillary, _flags, address = sock.recvmsg(1, 256, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # pragma: no cover - socket closed under us
                log.debug("error queue of %s: %s", sock, exc)
                return
            self.stats["icmp"] += 1
            found = None
            for level, kind, payload in ancillary:
                found = parse_extended_error(level, kind, payload)
                if found is not None:
                    break
            if found is None or not isinstance(address, tuple) or len(address) < 2:
                self.stats["ignored"] += 1
                continue
            host = _plain_host(str(address[0]))
            unreachable = Unreachable(host, int(address[1]), found[1], found[0])
            self.failed(unreachable.host, unreachable.port, unreachable.exception())
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.loop.call_soon(self.drain)

    # -- reporting ---------------------------------------------------------------------

    def failed(self, host: str, port: int, exc: OSError) -> None:
        """Queue a report that ``host:port`` is unreachable, subject to the bounds; the
        report itself runs from ``call_soon``."""
        key = (host, port)
        if key in self._pending or not self.limit.allow(self.loop.time()):
            self.stats["suppressed"] += 1
            return
        self._pending[key] = exc
        if not self._report_scheduled:
            self._report_scheduled = True
            self.loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        self._report_scheduled = False
        pending, self._pending = self._pending, {}
        for (host, port), exc in pending.items():
            self.stats["reported"] += 1
            log.info("udp:%s:%d unreachable: %s", host, port, exc)
            self.report(host, port, exc)

    def close(self) -> None:
        self.sock.close()


def _plain_host(host: str) -> str:
    if host.startswith("::ffff:") and "." in host:
        return host[7:]  # an IPv4 peer seen through a dual-stack socket
    return host


def watch(transport: asyncio.BaseTransport, report: Report, loop: asyncio.AbstractEventLoop, *,
          rate: float = 50.0, burst: float = 100.0) -> ErrorQueue | None:
    """Turn on ICMP error reporting for a datagram transport's socket (Linux only); None
    when the platform or the socket does not support it."""
    if not sys.platform.startswith("linux"):
        return None
    raw = transport.get_extra_info("socket")
    if raw is None:
        return None
    try:
        sock = socket.socket(fileno=os.dup(raw.fileno()))
    except OSError:  # pragma: no cover - descriptor gone
        return None
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
            try:  # a dual-stack socket also sends to IPv4 peers
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            except OSError:
                pass
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        sock.setblocking(False)
    except OSError as exc:
        log.debug("no ICMP error reporting on %s: %s", sock, exc)
        sock.close()
        return None
    return ErrorQueue(sock, report, loop, rate=rate, burst=burst)
