"""SIP transactions (RFC 3261 §17, RFC 6026): sans-I/O state machines and their layer.

Most code needs only :class:`TransactionLayer` and the events; the four machines are public
for tests and for elements that manage transactions themselves.
"""

from .client import ClientTransaction, InviteClientTransaction, NonInviteClientTransaction
from .events import (
    AckReceived,
    CancelReceived,
    MessageIgnored,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    StrayAck,
    StrayResponse,
    TransactionEvent,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from .keys import TransactionKey, ack_keys, cancel_target_key, client_key, server_key
from .layer import DEFAULT_MAX_TRANSACTIONS, RELIABLE_TRANSPORTS, TransactionLayer
from .machine import Input, State, Transaction
from .server import DEFAULT_TRYING_DELAY, InviteServerTransaction, NonInviteServerTransaction, ServerTransaction

__all__ = [
    "AckReceived",
    "CancelReceived",
    "ClientTransaction",
    "DEFAULT_MAX_TRANSACTIONS",
    "DEFAULT_TRYING_DELAY",
    "Input",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "MessageIgnored",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "RELIABLE_TRANSPORTS",
    "RequestReceived",
    "ResponseReceived",
    "SendMessage",
    "ServerTransaction",
    "State",
    "StrayAck",
    "StrayResponse",
    "Transaction",
    "TransactionEvent",
    "TransactionKey",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportError",
    "ack_keys",
    "cancel_target_key",
    "client_key",
    "server_key",
]
