"""Wire fixtures and a fake-clock driver for the transaction tests.

Messages are small hand-written datagrams parsed with ``parse_message``, so a test reads like
a trace.  Loss is simulated by not delivering a message; time only moves when a test moves
it, through :meth:`Wire.run`, which wakes a machine at each of its deadlines exactly as the
runtime would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from sipline.sip.message import Request, Response, parse_message
from sipline.sip.timers import TimerConfig
from sipline.sip.transaction import TransactionEvent

BRANCH = "z9hG4bK776asdhds"
PEER = ("192.0.2.10", 5060)
TIMERS = TimerConfig()  # T1 0.5 s, T2 4 s, T4 5 s, D 32 s

_REQUEST = (
    "{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/{transport} pc33.atlanta.example.com;branch={branch}\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>{to_tag}\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: {cseq} {method}\r\n"
    "Timestamp: 54\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)

_RESPONSE = (
    "SIP/2.0 {status} {reason}\r\n"
    "Via: SIP/2.0/{transport} pc33.atlanta.example.com;branch={branch};received=192.0.2.101\r\n"
    "To: Bob <sip:bob@biloxi.example.com>{to_tag}\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: {cseq} {method}\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def _tag(tag: str | None) -> str:
    return f";tag={tag}" if tag else ""


@dataclass
class Trace:
    """What a machine emitted while the test drove it."""

    sent: list[tuple[float, bytes]] = field(default_factory=list)
    events: list[tuple[float, TransactionEvent]] = field(default_factory=list)

    def times(self, start: bytes = b"") -> list[float]:
        """Times of sent messages whose first line starts with *start*."""
        return [t for t, data in self.sent if data.startswith(start)]

    def event_types(self) -> list[str]:
        return [type(e).__name__ for _, e in self.events]


class Wire:
    """Message factories and the fake-clock driver (exposed as the ``wire`` fixture)."""

    BRANCH = BRANCH
    PEER = PEER
    TIMERS = TIMERS

    @staticmethod
    def request(
        method: str = "INVITE",
        *,
        branch: str = BRANCH,
        transport: str = "UDP",
        to_tag: str | None = None,
        cseq: int = 314159,
    ) -> Request:
        data = _REQUEST.format(method=method, branch=branch, transport=transport, to_tag=_tag(to_tag), cseq=cseq)
        msg = parse_message(data.encode())
        assert isinstance(msg, Request)
        return msg

    @staticmethod
    def response(
        status: int,
        reason: str = "Reason",
        *,
        method: str = "INVITE",
        branch: str = BRANCH,
        transport: str = "UDP",
        to_tag: str | None = "a6c85cf",
        cseq: int = 314159,
    ) -> Response:
        data = _RESPONSE.format(
            status=status, reason=reason, method=method, branch=branch, transport=transport,
            to_tag=_tag(to_tag if status > 100 else None), cseq=cseq,
        )
        msg = parse_message(data.encode())
        assert isinstance(msg, Response)
        return msg

    @staticmethod
    def drain(machine: Any, now: float, trace: Trace) -> None:
        trace.sent.extend((now, bytes(s.message)) for s in machine.drain_output())
        trace.events.extend((now, e) for e in machine.drain_events())

    @staticmethod
    def run(machine: Any, until: float, trace: Trace | None = None, *, now: float = 0.0) -> Trace:
        """Collect what *machine* has buffered at *now*, then wake it at each deadline up to
        *until*; return (or extend) the trace."""
        trace = trace if trace is not None else Trace()
        Wire.drain(machine, now, trace)
        while True:
            deadline = machine.next_deadline()
            if deadline is None or deadline > until:
                return trace
            machine.handle_timer(deadline)
            Wire.drain(machine, deadline, trace)


@pytest.fixture(scope="session")
def wire() -> type[Wire]:
    return Wire

