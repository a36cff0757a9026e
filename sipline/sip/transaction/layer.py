"""The transaction layer: matching, creation, timers and buffers for every transaction.

This is what the runtime and the transaction users talk to.  The runtime feeds it parsed
messages with their source (:meth:`TransactionLayer.receive`), transport failures and the
clock (:meth:`~TransactionLayer.handle_timer` at :meth:`~TransactionLayer.next_deadline`),
and writes out :meth:`~TransactionLayer.drain_output`.  The TU reads
:meth:`~TransactionLayer.drain_events` and acts through :meth:`~TransactionLayer.send_request`
and :meth:`~TransactionLayer.send_response`, naming transactions by their key.

What the layer decides by itself (RFC 3261 §17, §9.2):

* a request matching a server transaction is a retransmission and never reaches the TU;
* an ACK matching no transaction acknowledges a 2xx and goes to the TU as
  :class:`~.events.StrayAck`; a response matching none is a :class:`~.events.StrayResponse`;
* a CANCEL matching an INVITE server transaction is answered 200 here, and the TU hears
  :class:`~.events.CancelReceived` and decides about the 487.  A CANCEL matching nothing is
  an ordinary request for the TU (a UAS answers 481, a proxy forwards it statelessly).

Memory is bounded: past ``max_transactions`` new requests get a stateless 503 and new client
transactions are refused.  Timers live in one heap keyed by transaction, so
``next_deadline()`` is cheap with many thousands of transactions.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from ..errors import ProtocolError, TransactionError
from ..ids import IdSource
from ..message.builders import response_to
from ..message.model import Message, Request, Response
from ..methods import ACK, CANCEL, INVITE
from ..timers import TimerConfig
from .client import ClientTransaction, InviteClientTransaction, NonInviteClientTransaction
from .events import (
    CancelReceived,
    MessageIgnored,
    RequestReceived,
    SendMessage,
    StrayAck,
    StrayResponse,
    TransactionEvent,
)
from .keys import TransactionKey, ack_keys, cancel_target_key, client_key, server_key
from .machine import Transaction
from .server import DEFAULT_TRYING_DELAY, InviteServerTransaction, NonInviteServerTransaction, ServerTransaction

__all__ = ["TransactionLayer", "DEFAULT_MAX_TRANSACTIONS", "RELIABLE_TRANSPORTS"]

#: Default bound on live transactions (client and server together).
DEFAULT_MAX_TRANSACTIONS = 65536

#: Via transports with their own retransmission: no SIP retransmits, zero wait timers.
RELIABLE_TRANSPORTS = frozenset({"TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"})


class TransactionLayer:
    """All client and server transactions of one SIP element.

    ``reliable(destination)`` tells whether a destination is reached over a reliable
    transport; without it the top Via's transport decides (the Via names the transport the
    request travels on, §18.1.1).
    """

    def __init__(
        self,
        timers: TimerConfig,
        ids: IdSource,
        *,
        reliable: Callable[[object], bool] | None = None,
        trying_delay: float | None = DEFAULT_TRYING_DELAY,
        max_transactions: int = DEFAULT_MAX_TRANSACTIONS,
    ) -> None:
        self.timers = timers
        self._ids = ids
        self._reliable = reliable
        self.trying_delay = trying_delay
        self.max_transactions = max_transactions
        self._client: dict[TransactionKey, ClientTransaction] = {}
        self._server: dict[TransactionKey, ServerTransaction] = {}
        # (deadline, tie-breaker, key); an entry is live while _scheduled[key] == deadline.
        self._heap: list[tuple[float, int, TransactionKey]] = []
        self._scheduled: dict[TransactionKey, float] = {}
        self._seq = 0
        self._output: list[SendMessage] = []
        self._events: list[TransactionEvent] = []

    # -- introspection ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._client) + len(self._server)

    def __contains__(self, key: object) -> bool:
        return key in self._client or key in self._server

    def get(self, key: TransactionKey) -> Transaction | None:
        """The live transaction with *key*, None once it has terminated."""
        table: dict[TransactionKey, ClientTransaction] | dict[TransactionKey, ServerTransaction]
        table = self._server if key.server else self._client
        return table.get(key)

    # -- buffers ----------------------------------------------------------------------

    def drain_output(self) -> list[SendMessage]:
        """Messages for the transport, oldest first; the buffer is emptied."""
        out, self._output = self._output, []
        return out

    def drain_events(self) -> list[TransactionEvent]:
        """Events for the TU, oldest first; the buffer is emptied."""
        out, self._events = self._events, []
        return out

    # -- network input ----------------------------------------------------------------

    def receive(self, message: Message, source: object, now: float) -> None:
        """Feed a message from the network.  Never raises: bad input becomes an event."""
        try:
            if isinstance(message, Request):
                self._receive_request(message, source, now)
            elif isinstance(message, Response):
                self._receive_response(message, source, now)
            else:
                self._events.append(MessageIgnored(f"not a SIP message: {type(message).__name__}"))
        except ProtocolError as exc:
            self._events.append(MessageIgnored(f"cannot match message: {exc.reason}", message))

    def _receive_response(self, response: Response, source: object, now: float) -> None:
        key = client_key(response)
        tx = self._client.get(key) if key is not None else None
        if tx is None:
            self._events.append(StrayResponse(response, source))
            return
        tx.receive_response(response, now)
        self._collect(tx)

    def _receive_request(self, request: Request, source: object, now: float) -> None:
        if request.method == ACK:
            invite = self._match_ack(request)
            if invite is None:
                self._events.append(StrayAck(request, source))
            else:
                invite.receive_request(request, now)
                self._collect(invite)
            return
        key = server_key(request)
        tx = self._server.get(key)
        if tx is not None:
            tx.receive_request(request, now)
            self._collect(tx)
            return
        if len(self) >= self.max_transactions:
            self._overloaded(request, source)
            return
        reliable = self._is_reliable(source, request)
        if request.method == CANCEL:
            target = self._server.get(cancel_target_key(request))
            if isinstance(target, InviteServerTransaction):
                self._answer_cancel(request, key, target, source, reliable, now)
                return
        new: ServerTransaction
        if request.method == INVITE:
            new = InviteServerTransaction(
                request, source, now, timers=self.timers, reliable=reliable, key=key, trying_delay=self.trying_delay
            )
        else:
            new = NonInviteServerTransaction(request, source, now, timers=self.timers, reliable=reliable, key=key)
        self._server[key] = new
        self._events.append(RequestReceived(request, key, source))
        self._collect(new)

    def _match_ack(self, ack: Request) -> InviteServerTransaction | None:
        """The INVITE server transaction an ACK belongs to (§17.2.3), if any."""
        for i, key in enumerate(ack_keys(ack)):
            tx = self._server.get(key)
            if not isinstance(tx, InviteServerTransaction):
                continue
            if i == 0:
                return tx
            # RFC 2543 ACK for an initial INVITE: its To tag is the one we answered with.
            last = tx.last_response
            if last is not None and last.to.tag == ack.to.tag:
                return tx
        return None

    def _answer_cancel(
        self,
        cancel: Request,
        key: TransactionKey,
        invite: InviteServerTransaction,
        source: object,
        reliable: bool,
        now: float,
    ) -> None:
        """§9.2: a CANCEL that matched gets 200 at once; the TU decides about the INVITE."""
        tx = NonInviteServerTransaction(cancel, source, now, timers=self.timers, reliable=reliable, key=key)
        self._server[key] = tx
        self._events.append(CancelReceived(cancel, key, invite.key, source))
        # The 200 should carry the To tag of the INVITE's responses (§9.2).
        last = invite.last_response
        tag = last.to.tag if last is not None else None
        tx.send_response(response_to(cancel, 200, to_tag=tag or self._ids.tag()), now)
        self._collect(tx)

    def _overloaded(self, request: Request, source: object) -> None:
        """No room for another transaction: refuse statelessly (§21.5.4) and say so."""
        self._output.append(SendMessage(response_to(request, 503, to_tag=self._ids.tag()), source))
        self._events.append(MessageIgnored(f"transaction limit {self.max_transactions} reached", request))

    def _is_reliable(self, destination: object, message: Message) -> bool:
        if self._reliable is not None:
            return self._reliable(destination)
        return message.via.transport in RELIABLE_TRANSPORTS

    # -- TU input ---------------------------------------------------------------------

    def send_request(
        self, request: Request, destination: object, now: float, *, reliable: bool | None = None
    ) -> TransactionKey:
        """Start a client transaction for *request* and send it; returns its key.

        The request is sent as is: its top Via must already carry a unique branch.  ACK is
        not a transaction (use :meth:`send_stateless`).  Raises TransactionError.
        """
        if not isinstance(request, Request) or request.method == ACK:
            raise TransactionError(f"send_request needs a request other than ACK, not {request!r}")
        try:
            key = client_key(request)
            is_reliable = reliable if reliable is not None else self._is_reliable(destination, request)
        except ProtocolError as exc:
            raise TransactionError(f"cannot send {request!r}: {exc.reason}") from None
        if key is None:
            raise TransactionError(f"{request!r} has no branch in its top Via (RFC 3261 §8.1.1.7)")
        if key in self._client:
            raise TransactionError(f"a client transaction with branch {key.branch} already exists")
        if len(self) >= self.max_transactions:
            raise TransactionError(f"transaction limit {self.max_transactions} reached")
        cls = InviteClientTransaction if request.method == INVITE else NonInviteClientTransaction
        tx = cls(request, destination, now, timers=self.timers, reliable=is_reliable, key=key)
        self._client[key] = tx
        self._collect(tx)
        return key

    def send_response(self, key: TransactionKey, response: Response, now: float) -> None:
        """Send *response* on server transaction *key*.  Raises TransactionError."""
        tx = self._server.get(key)
        if tx is None:
            raise TransactionError(f"no live server transaction {key}")
        try:
            tx.send_response(response, now)
        finally:
            self._collect(tx)

    def send_stateless(self, message: Message, destination: object) -> None:
        """Send outside any transaction: the ACK for a 2xx, stateless proxying (§16.11)."""
        self._output.append(SendMessage(message, destination))

    def transport_error(self, destination: object, now: float) -> None:
        """The transport could not reach *destination*: every transaction using it hears."""
        self.transport_failed(lambda used: used == destination, now)

    def transport_failed(self, failed: Callable[[object], bool], now: float) -> None:
        """Every transaction whose destination *failed* accepts hears of a transport error.

        A predicate rather than one destination because the runtime's destinations carry
        more than the address the error names (a stream transaction's also carries its
        connection), yet an unreachable address fails all of them alike.
        """
        for tx in [*self._client.values(), *self._server.values()]:
            if failed(tx.destination):
                tx.transport_error(now)
                self._collect(tx)

    # -- time -------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest deadline of any transaction; None when no timer is armed."""
        heap = self._heap
        while heap and self._scheduled.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def handle_timer(self, now: float) -> None:
        """Fire every transaction timer due at *now*."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if self._scheduled.get(key) != deadline:
                continue  # superseded by a later entry, or the transaction is gone
            del self._scheduled[key]
            tx = self.get(key)
            assert tx is not None  # _scheduled is cleared when a transaction is removed
            tx.handle_timer(now)
            self._collect(tx, now)

    # -- plumbing ---------------------------------------------------------------------

    def _collect(self, tx: Transaction, fired_at: float | None = None) -> None:
        """Move a transaction's output and events to ours, then reschedule or remove it."""
        tx.drain_into(self._output, self._events)
        key = tx.key
        if tx.terminated:
            self._scheduled.pop(key, None)
            if key.server:
                self._server.pop(key, None)
            else:
                self._client.pop(key, None)
            return
        deadline = tx.next_deadline()
        if deadline is None:
            self._scheduled.pop(key, None)
            return
        if fired_at is not None and deadline <= fired_at:
            # A zero-length retransmit interval would spin this loop; wait a tick instead.
            deadline = fired_at + 1e-6
        if self._scheduled.get(key) != deadline:
            self._scheduled[key] = deadline
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, key))
