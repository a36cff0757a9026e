"""Events check their own fields: an event in the buffer is always well formed."""

from __future__ import annotations

from typing import Any

import pytest

from sipline.sip.errors import UsageError
from sipline.sip.transaction import (
    AckReceived,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    StrayAck,
    StrayResponse,
    TransactionKey,
)

KEY = TransactionKey(True, "INVITE", branch="z9hG4bK1", sent_by="h")


def test_events_refuse_wrong_message_kinds(wire: Any) -> None:
    request, response = wire.request("INVITE"), wire.response(200)
    with pytest.raises(UsageError, match="Message"):
        SendMessage("INVITE", ("h", 5060))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="Request"):
        RequestReceived(response, KEY, None)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="Response"):
        ResponseReceived(request, KEY)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="Response"):
        StrayResponse(request, None)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="ACK request"):
        AckReceived(request, KEY)
    with pytest.raises(UsageError, match="ACK request"):
        StrayAck(request, None)
    with pytest.raises(UsageError, match="CANCEL request"):
        CancelReceived(request, KEY, KEY, None)
    with pytest.raises(UsageError, match="Request"):
        StrayAck(response, None)  # type: ignore[arg-type]


def test_events_are_frozen_values(wire: Any) -> None:
    event = RequestReceived(wire.request("OPTIONS"), KEY, ("h", 1))
    with pytest.raises(AttributeError):
        event.key = KEY  # type: ignore[misc]
    assert event == RequestReceived(event.request, KEY, ("h", 1))
