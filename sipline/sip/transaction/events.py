"""What the transaction layer tells its user, and what it asks the transport to send.

Two buffers leave the layer, and they are deliberately different types:

* :class:`SendMessage` goes to the transport: SIP emits messages by itself (retransmissions,
  100 Trying, the ACK for a non-2xx), so they cannot be return values of the call that
  caused them.  The ``destination`` is opaque to the core: the runtime hands in whatever
  names a peer or a flow (an address tuple, a connection id) and gets it back here.
* :class:`TransactionEvent` subclasses go to the transaction user (UA core, proxy core,
  dialog layer).  Each is a frozen value that checks its own fields, so an event in the
  buffer is always well formed.

Events name transactions by :class:`~.keys.TransactionKey`, a hashable value, rather than by
the transaction object, so a TU can keep them in dicts and compare them after the
transaction is gone.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..message.model import Message, Request, Response
from .keys import TransactionKey

__all__ = [
    "SendMessage",
    "TransactionEvent",
    "RequestReceived",
    "ResponseReceived",
    "AckReceived",
    "CancelReceived",
    "StrayResponse",
    "StrayAck",
    "TransactionTimeout",
    "TransportError",
    "TransactionTerminated",
    "MessageIgnored",
]


def _expect(value: object, kind: type, what: str) -> None:
    if not isinstance(value, kind):
        raise UsageError(f"{what} must be a {kind.__name__}, not {type(value).__name__}")


def _expect_method(request: Request, method: str, what: str) -> None:
    _expect(request, Request, what)
    if request.method != method:
        raise UsageError(f"{what} must be a {method} request, not {request.method}")


@dataclass(frozen=True, slots=True)
class SendMessage:
    """Transport instruction: write ``message`` to ``destination`` (RFC 3261 §18)."""

    message: Message
    #: Opaque peer or flow identifier supplied by the TU or the transport on receipt.
    destination: object

    def __post_init__(self) -> None:
        _expect(self.message, Message, "SendMessage.message")


@dataclass(frozen=True, slots=True)
class TransactionEvent:
    """Base of everything the transaction layer reports to its user."""


@dataclass(frozen=True, slots=True)
class RequestReceived(TransactionEvent):
    """A new request created server transaction ``key`` (§17.2: "pass to TU")."""

    request: Request
    key: TransactionKey
    #: Where it came from; responses sent on ``key`` go back there (§18.2.2).
    source: object

    def __post_init__(self) -> None:
        _expect(self.request, Request, "RequestReceived.request")


@dataclass(frozen=True, slots=True)
class ResponseReceived(TransactionEvent):
    """A response for client transaction ``key`` the TU must see (§17.1.1.2, §17.1.2.2).

    Retransmissions are absorbed, except 2xx to INVITE: RFC 6026 §7.2 passes every one up
    so the UA core can ACK each (they may come from different forks).
    """

    response: Response
    key: TransactionKey

    def __post_init__(self) -> None:
        _expect(self.response, Response, "ResponseReceived.response")


@dataclass(frozen=True, slots=True)
class AckReceived(TransactionEvent):
    """An ACK matched an INVITE server transaction in Accepted state (RFC 6026 §8.7).

    It acknowledges a 2xx, so it belongs to the dialog, not to the transaction.
    """

    request: Request
    key: TransactionKey

    def __post_init__(self) -> None:
        _expect_method(self.request, "ACK", "AckReceived.request")


@dataclass(frozen=True, slots=True)
class CancelReceived(TransactionEvent):
    """A CANCEL matched INVITE server transaction ``invite_key`` (§9.2).

    The layer has already answered the CANCEL with 200 on transaction ``key``; whether the
    INVITE gets a 487 is the TU's decision (it may have answered already).
    """

    request: Request
    key: TransactionKey
    invite_key: TransactionKey
    source: object

    def __post_init__(self) -> None:
        _expect_method(self.request, "CANCEL", "CancelReceived.request")


@dataclass(frozen=True, slots=True)
class StrayResponse(TransactionEvent):
    """A response that matched no client transaction (§17.1.3, RFC 6026 §7.1).

    A UA core may still need it (a 2xx retransmission after the transaction ended); a
    proxy forwards it statelessly or drops it.
    """

    response: Response
    source: object

    def __post_init__(self) -> None:
        _expect(self.response, Response, "StrayResponse.response")


@dataclass(frozen=True, slots=True)
class StrayAck(TransactionEvent):
    """An ACK that matched no server transaction: the ACK for a 2xx, for the dialog (§13.3.1.4)."""

    request: Request
    source: object

    def __post_init__(self) -> None:
        _expect_method(self.request, "ACK", "StrayAck.request")


@dataclass(frozen=True, slots=True)
class TransactionTimeout(TransactionEvent):
    """Timer B, F or H fired: treat as a 408 (Request Timeout) for this transaction (§8.1.3.1)."""

    key: TransactionKey
    #: Which timer fired: "B", "F" or "H".
    timer: str


@dataclass(frozen=True, slots=True)
class TransportError(TransactionEvent):
    """Sending to ``destination`` failed; treat as a 503 for client transactions (§8.1.3.1)."""

    key: TransactionKey
    destination: object


@dataclass(frozen=True, slots=True)
class TransactionTerminated(TransactionEvent):
    """The transaction reached Terminated and was removed (§17.1.1.2, §17.2.1)."""

    key: TransactionKey


@dataclass(frozen=True, slots=True)
class MessageIgnored(TransactionEvent):
    """Network input that the current state has no transition for, or could not use.

    The core has no logger; this event is the log line.  Nothing else happened: the
    transaction (if any) is in the state it was in.
    """

    reason: str
    message: Message | None = None
    key: TransactionKey | None = None
