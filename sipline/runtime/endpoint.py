"""The endpoint: transports + transaction layer + one transaction user, on one event loop.

Theory of operation (the aioquic pattern): every input -- a parsed message from a transport,
a timer expiry, a transport failure, a request or response from the TU -- is fed to the
sans-I/O :class:`~sipline.sip.transaction.TransactionLayer` with ``now=loop.time()``.  Then the
endpoint flushes what the layer produced: datagrams go to the transport manager, events go to
the TU.  Finally it re-arms a single ``call_at`` handle to the layer's next deadline.  No
SIP decision is made here; the only logic is where bytes go (§18.2.2 response routing, the
§18.1.1 move to TCP for large requests), and both rules live in :mod:`sipline.sip.transport`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..sip.ids import IdSource
from ..sip.message import Message, Request, Response
from ..sip.timers import DEFAULT_TIMERS, TimerConfig
from ..sip.transaction.events import (
    AckReceived,
    CancelReceived,
    MessageIgnored,
    RequestReceived,
    ResponseReceived,
    StrayAck,
    StrayResponse,
    TransactionEvent,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from ..sip.transaction.keys import TransactionKey
from ..sip.transaction.layer import TransactionLayer
from ..sip.transport import Peer, must_use_congestion_controlled, response_destination
from .transport import Origin, StreamConnection, TransportManager

__all__ = ["Endpoint", "TransactionUser", "Destination", "ClientCallbacks"]

log = logging.getLogger("sipline.endpoint")


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a request goes: a peer, and optionally the flow to use (NAT, RFC 5626)."""

    peer: Peer
    connection: StreamConnection | None = None


class TransactionUser(Protocol):
    """What the endpoint tells its user (registrar, proxy, UA core...)."""

    def on_request(self, request: Request, key: TransactionKey, origin: Origin) -> None: ...

    def on_cancel(self, cancel: Request, invite_key: TransactionKey, origin: Origin) -> None: ...

    def on_ack(self, ack: Request, origin: Origin | None) -> None: ...

    def on_stray_response(self, response: Response, origin: Origin | None) -> None: ...


@dataclass(slots=True)
class ClientCallbacks:
    """How a client transaction reports back to whoever sent the request."""

    on_response: Callable[[Response], None]
    #: Timeout (B/F) or transport failure: the RFC says to act as on 408 / 503.
    on_failure: Callable[[int], None]


class Endpoint:
    """Runs the transaction layer for one set of listeners."""

    def __init__(
        self,
        transports_factory: Callable[[Callable[[Message, Origin], None], Callable[[Peer, BaseException], None]], TransportManager],
        user: TransactionUser,
        *,
        ids: IdSource,
        timers: TimerConfig = DEFAULT_TIMERS,
        max_transactions: int = 100_000,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.user = user
        self.ids = ids
        self.timers = timers
        self.layer = TransactionLayer(timers, ids, max_transactions=max_transactions)
        self.transports = transports_factory(self._on_message, self._on_transport_error)
        self._client: dict[TransactionKey, ClientCallbacks] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    # -- inputs ------------------------------------------------------------------------

    def _on_message(self, msg: Message, origin: Origin) -> None:
        self.layer.receive(msg, origin, origin.received_at or self.loop.time())
        self._flush()

    def _on_transport_error(self, peer: Peer, exc: BaseException) -> None:
        # Match by address: a stream transaction's destination also names its connection.
        self.layer.transport_failed(lambda used: isinstance(used, Destination) and used.peer == peer,
                                    self.loop.time())
        self._flush()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.layer.handle_timer(self.loop.time())
        self._flush()

    # -- TU API --------------------------------------------------------------------------

    def send_request(self, request: Request, destination: Peer | Destination, callbacks: ClientCallbacks | None = None) -> TransactionKey:
        """Start a client transaction; responses come back through *callbacks*."""
        dest = destination if isinstance(destination, Destination) else Destination(destination)
        key = self.layer.send_request(request, dest, self.loop.time(), reliable=dest.peer.reliable)
        if callbacks is not None:
            self._client[key] = callbacks
        self._flush()
        return key

    def respond(self, key: TransactionKey, response: Response) -> None:
        """Send a response on server transaction *key*."""
        self.layer.send_response(key, response, self.loop.time())
        self._flush()

    def send_stateless(self, message: Message, destination: Peer | Destination) -> None:
        """Send outside any transaction: ACK for 2xx, stateless forwarding of stray 2xx."""
        dest = destination if isinstance(destination, Destination) else Destination(destination)
        self._write(message, dest)

    def send_response_stateless(self, response: Response, origin: Origin | None) -> None:
        """Forward a response statelessly along its top Via (stray 2xx retransmissions)."""
        self._write(response, origin if origin is not None else None)

    # -- outputs -------------------------------------------------------------------------

    def _flush(self) -> None:
        # Whatever a TU callback or a send does, the timer must be re-armed: otherwise every
        # transaction's retransmissions and timeouts stop until the next datagram arrives.
        try:
            self._drain()
        finally:
            self._rearm()

    def _drain(self) -> None:
        layer = self.layer
        for item in layer.drain_output():
            self._write(item.message, item.destination)
        for event in layer.drain_events():
            self._dispatch(event)
        # Dispatching may have produced more output (a TU answering synchronously).
        out = layer.drain_output()
        while out:
            for item in out:
                self._write(item.message, item.destination)
            for event in layer.drain_events():
                self._dispatch(event)
            out = layer.drain_output()

    def _rearm(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _write(self, message: Message, destination: object) -> None:
        data = bytes(message)
        transports = self.transports
        if isinstance(message, Response):
            if isinstance(destination, Origin):
                conn = destination.connection
                if conn is not None and conn.is_open:
                    transports.send(data, destination.peer, connection=conn)
                    return
                if destination.peer.transport == "udp":
                    target = response_destination(message.via, "udp")
                    transports.send(data, target)
                    return
            target = response_destination(message.via)
            transports.send(data, target)
            return
        if isinstance(destination, Destination):
            peer = destination.peer
            if must_use_congestion_controlled(len(data), peer.transport) and transports.local_for("tcp") is not None:
                # §18.1.1: the Via already says UDP; the request goes over TCP with the same
                # branch, and a response comes back on that connection.
                peer = Peer("tcp", peer.host, peer.port)
            transports.send(data, peer, connection=destination.connection, outbound=True)
        elif isinstance(destination, Origin):
            transports.send(data, destination.peer, connection=destination.connection)
        elif isinstance(destination, Peer):
            transports.send(data, destination)
        else:  # pragma: no cover - programming error
            raise TypeError(f"unknown destination {destination!r}")

    def _dispatch(self, event: TransactionEvent) -> None:
        user = self.user
        if isinstance(event, ResponseReceived):
            cb = self._client.get(event.key)
            if cb is not None:
                cb.on_response(event.response)
        elif isinstance(event, RequestReceived):
            origin = event.source if isinstance(event.source, Origin) else None
            user.on_request(event.request, event.key, origin)  # type: ignore[arg-type]
        elif isinstance(event, CancelReceived):
            user.on_cancel(event.request, event.invite_key, event.source)  # type: ignore[arg-type]
        elif isinstance(event, (AckReceived, StrayAck)):
            source = getattr(event, "source", None)
            user.on_ack(event.request, source if isinstance(source, Origin) else None)
        elif isinstance(event, StrayResponse):
            user.on_stray_response(event.response, event.source if isinstance(event.source, Origin) else None)
        elif isinstance(event, TransactionTimeout):
            cb = self._client.pop(event.key, None)
            if cb is not None:
                cb.on_failure(408)
        elif isinstance(event, TransportError):
            cb = self._client.pop(event.key, None)
            if cb is not None:
                cb.on_failure(503)
        elif isinstance(event, TransactionTerminated):
            self._client.pop(event.key, None)
        elif isinstance(event, MessageIgnored):
            log.debug("ignored: %s", event.reason)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.transports.close()

