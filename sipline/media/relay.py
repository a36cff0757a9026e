"""The SBC's built-in RTP relay: media of both legs anchored on our own ports.

Why anchor at all: without it the SDP of one side tells the other where the PBX or the
carrier's media gateway lives (topology hiding ends at ``c=``), a PBX behind NAT advertises
an address nobody can reach, and nothing can be counted.  So every call gets, per media
stream, two RTP/RTCP port pairs from the :class:`~sipline.media.ports.PortAllocator`: one
facing the caller, one facing the callee.  SDP crossing from one side to the other is
rewritten (``c=`` and the ``m=`` port become the relay's address and the port pair facing
the receiver), and packets arriving on one side's pair leave through the other side's pair.
RTP, RTCP (the odd port) and RFC 4733 telephone-events (RTP packets of a dynamic payload
type) are forwarded as they are, byte for byte: the relay never parses a payload.

Where to send (the "remote" of a side) comes from that side's SDP, except for peers behind
NAT: when the SDP advertises a private or unspecified address, the relay waits for the
first packet from that side and *latches* to its real source address ("comedia",
symmetric RTP), and sends there from then on.  Once a side's address is known, packets
from any other host are dropped, so a stray sender cannot inject audio into a call.

Bounded pool: the port range is the capacity; when it is used up :class:`PortsExhausted`
propagates and the SBC refuses the call with 503.  :meth:`RelayCall.close` releases every
port, whichever way the call ended.

The SDP arithmetic (:func:`anchor_sdp`, :func:`needs_latching`) is pure; the sockets are a
thin asyncio shell (one datagram endpoint per port).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sipline.media.errors import MediaUsageError, PortsExhausted
from sipline.media.ports import PortAllocator
from sipline.sip.errors import ProtocolError
from sipline.sip.sdp import Connection, SessionDescription, parse_sdp

__all__ = [
    "Side",
    "StreamTarget",
    "anchor_sdp",
    "needs_latching",
    "MediaRelay",
    "RelayCall",
    "SilenceWatch",
]

log = logging.getLogger("sipline.media.relay")

#: ``"a"`` faces the caller, ``"b"`` the callee.
Side = Literal["a", "b"]
Address = tuple[str, int]

#: Attributes that name the sender's own transport addresses (ICE, explicit RTCP port):
#: they would leak the far side and point the receiver past the relay.
_ADDRESS_ATTRIBUTES = ("rtcp", "candidate", "remote-candidates", "ice-ufrag", "ice-pwd", "ice-options",
                       "ice-lite", "end-of-candidates")


def _other(side: Side) -> Side:
    return "b" if side == "a" else "a"


# -- pure SDP arithmetic -----------------------------------------------------------------------

def needs_latching(address: str) -> bool:
    """Whether media for an SDP that advertises ``address`` must be latched to its source.

    Private (RFC 1918, RFC 4193), link-local, shared (RFC 6598) and unspecified addresses
    cannot be reached from outside the peer's own network, so the advertised address is a
    NAT's inside; loopback is reachable (tests, co-located services) and is used as given.
    A host name is not latched either: the relay resolves it.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_unspecified or any(ip in net for net in _INSIDE_NETWORKS if net.version == ip.version)


# Addresses only meaningful inside the peer's own network (not Python's is_private, which
# also counts documentation ranges, reachable in a lab).
_INSIDE_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "fc00::/7", "fe80::/10",
))


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """Where one media stream of an SDP wants to receive: address and RTP port.

    ``port`` 0 is a rejected or disabled stream; ``latch`` says the address cannot be used
    as is (see :func:`needs_latching`).
    """

    address: str
    port: int
    latch: bool


def stream_targets(sdp: SessionDescription) -> list[StreamTarget]:
    """One :class:`StreamTarget` per ``m=`` line, in order."""
    out = []
    for media in sdp.media:
        conn = sdp.effective_connection(media)
        address = conn.address if conn is not None else "0.0.0.0"
        port = 0 if media.is_rejected else media.port
        out.append(StreamTarget(address, port, needs_latching(address) or (conn is not None and conn.is_null)))
    return out


def anchor_sdp(sdp: SessionDescription, address: str, ports: Sequence[int]) -> SessionDescription:
    """``sdp`` pointing at the relay: ``c=`` is ``address`` at session level and no media
    level, stream ``i`` listens on ``ports[i]``; streams without a port (rejected, or more
    streams than ports) get port 0.  ICE and ``a=rtcp`` lines go: they name the sender.
    The ``o=`` line keeps its ids and gets the relay's address.
    """
    conn = Connection.for_address(address)
    media = []
    for index, stream in enumerate(sdp.media):
        port = ports[index] if index < len(ports) and not stream.is_rejected else 0
        media.append(stream.with_connection(None).with_port(port).without_attributes(*_ADDRESS_ATTRIBUTES))
    origin = sdp.origin
    new_origin = type(origin)(origin.username, origin.session_id, origin.session_version, address,
                              origin.net_type, conn.addr_type)
    attributes = tuple(a for a in sdp.attributes if a.name not in _ADDRESS_ATTRIBUTES)
    return sdp.replace(origin=new_origin, connection=conn, media=tuple(media), attributes=attributes)


# -- silence --------------------------------------------------------------------------------

class SilenceWatch:
    """Whether a call's media went quiet: no packet in either direction for ``timeout``.

    Pure (time is an argument): fed the call's running packet count at each sweep, it
    remembers when the count last moved.  Counting instead of time-stamping every packet
    keeps the datagram path free of clock reads.
    """

    __slots__ = ("timeout", "_count", "_since")

    def __init__(self, timeout: float, count: int, now: float) -> None:
        self.timeout = timeout
        self._count = count
        self._since = now

    def silent(self, count: int, now: float) -> bool:
        if count != self._count:
            self._count, self._since = count, now
            return False
        return now - self._since >= self.timeout


# -- sockets -----------------------------------------------------------------------------------

class _Port(asyncio.DatagramProtocol):
    """One bound UDP port of a side (RTP or RTCP).

    The datagram path does no parsing and no lookups: ``expect`` (the host packets must come
    from, None while unknown), ``fwd_send``/``fwd_dest`` (the other side's matching socket
    and where it sends) are precomputed by :meth:`_Stream.refresh` whenever an address is
    learnt, latched or forgotten.
    """

    def __init__(self, half: _Half, rtcp: bool) -> None:
        self.half = half
        self.rtcp = rtcp
        self.transport: asyncio.DatagramTransport | None = None
        self.expect: str | None = None
        self.fwd_send: Any = None
        self.fwd_dest: Address | None = None
        self.packets = 0
        self.octets = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        expect = self.expect
        if expect is None:
            self.half.learn(addr, self.rtcp)
        elif addr[0] != expect:
            self.half.dropped += 1
            return
        self.packets += 1
        self.octets += len(data)
        dest = self.fwd_dest
        if dest is not None:
            self.fwd_send(data, dest)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and the like
        log.debug("relay port %s: %s", self.half.port, exc)


@dataclass(slots=True)
class _Half:
    """One side of one stream: our port pair facing that side's peer."""

    stream: _Stream
    side: Side
    port: int
    rtp: _Port | None = None
    rtcp: _Port | None = None
    #: From the side's SDP; None before it is known.
    remote: Address | None = None
    latch: bool = False
    latched: Address | None = None
    dropped: int = 0

    @property
    def target(self) -> Address | None:
        if self.latched is not None:
            return self.latched
        return None if self.latch else self.remote

    @property
    def packets(self) -> int:
        return sum(p.packets for p in (self.rtp, self.rtcp) if p is not None)

    @property
    def octets(self) -> int:
        return sum(p.octets for p in (self.rtp, self.rtcp) if p is not None)

    def learn(self, source: Any, rtcp: bool) -> None:
        """A packet while the peer's address is unknown: latch to it (RTP only)."""
        if self.latch and not rtcp and self.latched is None:
            self.latched = (source[0], source[1])
            log.debug("relay port %d latched to %s:%d", self.port, *self.latched)
            self.stream.refresh()


@dataclass(slots=True)
class _Stream:
    """One media line: the half facing the caller and the half facing the callee."""

    halves: dict[Side, _Half] = field(default_factory=dict)

    def refresh(self) -> None:
        """Recompute every port's fast-path fields from the halves' addresses."""
        for half in self.halves.values():
            out = self.halves.get(_other(half.side))
            target = half.target
            for port, out_port in ((half.rtp, out.rtp if out else None), (half.rtcp, out.rtcp if out else None)):
                if port is None:
                    continue
                port.expect = target[0] if target is not None else None
                out_target = out.target if out is not None else None
                transport = out_port.transport if out_port is not None else None
                if out_target is None or out_target[1] == 0 or transport is None or transport.is_closing():
                    port.fwd_send, port.fwd_dest = None, None
                else:
                    port.fwd_send = transport.sendto
                    port.fwd_dest = (out_target[0], out_target[1] + 1) if port.rtcp else out_target


class MediaRelay:
    """The relay of one SBC: an address, a port range and the calls using it."""

    def __init__(self, address: str, ports: PortAllocator, *, bind_host: str | None = None,
                 media_timeout: float = 0.0) -> None:
        self.address = address
        self.bind_host = bind_host or address
        self.ports = ports
        self.calls: set[RelayCall] = set()
        #: Seconds without a packet either way before a watched call is reported; 0 = off.
        self.media_timeout = media_timeout
        self._watched: dict[RelayCall, SilenceWatch] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    # -- media timeout: one sweep timer for the whole relay, not one per call --------------------

    def _watch(self, call: RelayCall) -> None:
        loop = asyncio.get_running_loop()
        self._watched[call] = SilenceWatch(self.media_timeout, call.received, loop.time())
        if self._sweeper is None:
            self._arm_sweep(loop)

    def _arm_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        interval = min(max(self.media_timeout / 4, 0.01), 5.0)
        self._sweeper = loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for call, watch in list(self._watched.items()):
            if call.closed:
                del self._watched[call]
            elif watch.silent(call.received, now):
                del self._watched[call]
                log.info("[%s] no media for %.0f s", call.name, self.media_timeout)
                if call.on_timeout is not None:
                    call.on_timeout()
        if self._watched:
            self._arm_sweep(loop)

    @property
    def capacity(self) -> int:
        """RTP/RTCP pairs in the range (each relayed stream takes two)."""
        return self.ports.capacity

    @property
    def in_use(self) -> int:
        return len(self.ports.in_use)

    def open(self, name: str = "") -> RelayCall:
        """A relay for one call; no port is taken before the first SDP."""
        call = RelayCall(self, name)
        self.calls.add(call)
        return call

    async def _bind_pair(self, half: _Half) -> None:
        loop = asyncio.get_running_loop()
        tries = self.ports.capacity
        failed: list[int] = []
        try:
            while True:
                port = self.ports.allocate()  # raises PortsExhausted
                try:
                    rtp = _Port(half, False)
                    rtcp = _Port(half, True)
                    await loop.create_datagram_endpoint(lambda: rtp, local_addr=(self.bind_host, port))
                    try:
                        await loop.create_datagram_endpoint(lambda: rtcp, local_addr=(self.bind_host, port + 1))
                    except OSError:
                        if rtp.transport is not None:
                            rtp.transport.close()
                        raise
                except OSError:
                    failed.append(port)  # held by another process: keep it out for now
                    tries -= 1
                    if tries <= 0:
                        raise PortsExhausted(f"no bindable RTP port in {self.ports.first}-{self.ports.last}") from None
                    continue
                half.port, half.rtp, half.rtcp = port, rtp, rtcp
                return
        finally:
            for port in failed:
                self.ports.release(port)

    def _release(self, half: _Half) -> None:
        for port in (half.rtp, half.rtcp):
            if port is not None and port.transport is not None:
                port.transport.close()
        half.rtp = half.rtcp = None
        if half.port:
            try:
                self.ports.release(half.port)
            except MediaUsageError:
                pass
            half.port = 0


class RelayCall:
    """The relayed media of one call (see the module docstring)."""

    def __init__(self, relay: MediaRelay, name: str = "") -> None:
        self.relay = relay
        self.name = name
        self.streams: list[_Stream] = []
        self.closed = False
        #: Called once when a watched call's media times out (see :meth:`watch`).
        self.on_timeout: Callable[[], None] | None = None

    @property
    def received(self) -> int:
        """Packets received from both sides on every port so far."""
        return sum(h.packets for s in self.streams for h in s.halves.values())

    def watch(self, on_timeout: Callable[[], None]) -> bool:
        """Report (once) when no packet arrives either way for the relay's ``media_timeout``;
        from now on, i.e. the answer (ringing without early media is silent by nature).
        False when the timeout is off."""
        if self.relay.media_timeout <= 0 or self.closed:
            return False
        self.on_timeout = on_timeout
        self.relay._watch(self)
        return True

    async def _ensure(self, count: int) -> None:
        while len(self.streams) < count:
            stream = _Stream()
            stream.halves = {"a": _Half(stream, "a", 0), "b": _Half(stream, "b", 0)}
            self.streams.append(stream)
            for half in stream.halves.values():
                await self.relay._bind_pair(half)
            stream.refresh()

    #: :meth:`rewrite` takes ``finish`` (the SBC writes its o= line without a second parse).
    takes_finish = True

    async def rewrite(self, body: bytes, from_side: Side, kind: str = "offer", *,
                      finish: Callable[[SessionDescription], bytes] | None = None) -> bytes:
        """SDP that ``from_side`` sent, rewritten for the other side (``kind``, offer or
        answer, does not matter to this relay: both are handled alike).

        Learns where ``from_side`` receives each stream (or that it must be latched), takes
        port pairs for new streams (:class:`PortsExhausted` when the pool is empty) and
        returns the SDP pointing at the pairs facing the other side, written by ``finish``
        when given (the caller's own o= line).  A body that is not SDP is returned unchanged.
        """
        if self.closed:
            raise MediaUsageError("relay already closed")
        try:
            sdp = parse_sdp(body)
        except ProtocolError:
            return body
        targets = stream_targets(sdp)
        await self._ensure(len(targets))
        to_side = _other(from_side)
        ports = []
        for index, target in enumerate(targets):
            half = self.streams[index].halves[from_side]
            if target.port == 0:
                half.remote, half.latch, half.latched = None, False, None
                self.streams[index].refresh()
                ports.append(0)
                continue
            remote = (target.address, target.port)
            if remote != half.remote or target.latch != half.latch:
                # New address (re-INVITE, failover to another callee): learn afresh.
                half.remote, half.latch, half.latched = remote, target.latch, None
            ports.append(self.streams[index].halves[to_side].port)
            self.streams[index].refresh()
        anchored = anchor_sdp(sdp, self.relay.address, ports)
        return finish(anchored) if finish is not None else bytes(anchored)

    def reset_side(self, side: Side) -> None:
        """Forget ``side``'s peer (failover placed the callee leg elsewhere)."""
        for stream in self.streams:
            half = stream.halves[side]
            half.remote, half.latch, half.latched = None, False, None
            stream.refresh()

    def stats(self) -> dict[str, Any]:
        """Packets, octets and drops per side, summed over the streams (for call records)."""
        out: dict[str, Any] = {}
        for side in ("a", "b"):
            halves = [s.halves[side] for s in self.streams]
            out[side] = {
                "packets": sum(h.packets for h in halves),
                "octets": sum(h.octets for h in halves),
                "dropped": sum(h.dropped for h in halves),
                "latched": any(h.latched is not None for h in halves),
            }
        out["streams"] = len(self.streams)
        return out

    async def close(self) -> dict[str, Any]:
        """Close every port and give them back to the pool; returns :meth:`stats`."""
        stats = self.stats()
        if not self.closed:
            self.closed = True
            for stream in self.streams:
                for half in stream.halves.values():
                    self.relay._release(half)
                stream.refresh()
            self.relay.calls.discard(self)
            self.relay._watched.pop(self, None)
            await asyncio.sleep(0)  # let the transports really close their sockets
        return stats
