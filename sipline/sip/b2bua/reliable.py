"""Reliable provisional responses (RFC 3262, ``100rel``) as each leg of a B2BUA sees them.

Why hop-by-hop: PRACK acknowledges one provisional response of one INVITE transaction, so
it cannot cross a B2BUA -- the carrier's reliable 183 is acknowledged by *our* PRACK on the
carrier's leg, and the PBX gets its own 183 on its own leg, reliable or not depending on
what the PBX's INVITE said.  So ``100rel`` is negotiated per leg (the relayed ``Supported``
header never carries it, :mod:`.topology`), and this module holds the bookkeeping of both
roles, with no clock and no sockets:

* :class:`ReliableReceiver` -- we sent the INVITE: which reliable 1xx to PRACK and pass on
  (the next RSeq of each early dialog), which are retransmissions to drop (§4).
* :class:`ReliableSender` -- we received the INVITE: when a 1xx must go reliably, its RSeq,
  which PRACK (``RAck``) acknowledges which response, and whether the 2xx must wait for a
  PRACK (§3: a 2xx may not overtake an unacknowledged 1xx that carried SDP).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParseError
from ..message.model import Message

__all__ = [
    "OPTION_TAG",
    "RAck",
    "option_tags",
    "requires_100rel",
    "supports_100rel",
    "parse_rseq",
    "parse_rack",
    "ReliableReceiver",
    "ReliableSender",
]

OPTION_TAG = "100rel"
#: RFC 3262 §7.1: response-num = 1*DIGIT, at most 2**31 - 1.
_MAX_RSEQ = 2**31 - 1


def option_tags(message: Message, header: str) -> frozenset[str]:
    """The option tags of every ``header`` (Supported, Require) value, lower-cased."""
    tags: set[str] = set()
    for value in message.headers.get_all(header):
        tags.update(t.strip().lower() for t in value.split(",") if t.strip())
    return frozenset(tags)


def requires_100rel(message: Message) -> bool:
    return OPTION_TAG in option_tags(message, "Require")


def supports_100rel(message: Message) -> bool:
    return requires_100rel(message) or OPTION_TAG in option_tags(message, "Supported")


def parse_rseq(value: str) -> int:
    """``RSeq: 1*DIGIT`` (RFC 3262 §7.1).  Raises ParseError."""
    text = value.strip()
    if not text.isdigit() or not 0 < int(text) <= _MAX_RSEQ:
        raise ParseError(f"bad RSeq {text[:20]!r}", header="RSeq")
    return int(text)


@dataclass(frozen=True, slots=True)
class RAck:
    """``RAck: response-num CSeq-num Method`` (RFC 3262 §7.2): the 1xx a PRACK acknowledges."""

    rseq: int
    cseq: int
    method: str

    def __str__(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


def parse_rack(value: str) -> RAck:
    """Parse an RAck value.  Raises ParseError naming the fault."""
    parts = value.split()
    if len(parts) != 3 or not parts[1].isdigit():
        raise ParseError(f"bad RAck {value.strip()[:40]!r}", header="RAck")
    return RAck(parse_rseq(parts[0]), int(parts[1]), parts[2])


class ReliableReceiver:
    """The UAC side: which reliable provisionals to acknowledge (RFC 3262 §4).

    Each early dialog (remote tag) numbers its reliable responses on its own; the first
    one sets the space, then only the next number is new.  Anything else is a
    retransmission (already PRACKed) or out of order: not acknowledged, not passed on.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def accept(self, remote_tag: str, rseq: int) -> bool:
        last = self._last.get(remote_tag)
        if last is not None and rseq != last + 1:
            return False
        self._last[remote_tag] = rseq
        return True


@dataclass(frozen=True, slots=True)
class _Pending:
    rseq: int
    with_sdp: bool


class ReliableSender:
    """The UAS side: RSeq numbering and the PRACKs still owed (RFC 3262 §3).

    ``required`` -- the INVITE had ``Require: 100rel``: every provisional but 100 goes
    reliably.  ``supported`` alone: only provisionals carrying SDP do (early media needs
    its answer to arrive; a bare 180 may be lost harmlessly).
    """

    __slots__ = ("required", "supported", "invite_cseq", "next_rseq", "_pending")

    def __init__(self, *, required: bool, supported: bool, invite_cseq: int, first_rseq: int) -> None:
        self.required = required
        self.supported = supported or required
        self.invite_cseq = invite_cseq
        self.next_rseq = max(1, first_rseq % (_MAX_RSEQ // 2))
        self._pending: list[_Pending] = []

    def wants_reliable(self, status: int, with_sdp: bool) -> bool:
        if status <= 100 or status >= 200:
            return False
        return self.required or (self.supported and with_sdp)

    def send(self, with_sdp: bool) -> tuple[tuple[str, str], ...]:
        """Headers of the next reliable provisional (and remember it as unacknowledged)."""
        rseq = self.next_rseq
        self.next_rseq += 1
        self._pending.append(_Pending(rseq, with_sdp))
        return (("Require", OPTION_TAG), ("RSeq", str(rseq)))

    def acknowledge(self, rack: RAck) -> bool:
        """A PRACK arrived: True when it names an unacknowledged response of our INVITE."""
        if rack.method.upper() != "INVITE" or rack.cseq != self.invite_cseq:
            return False
        for pending in self._pending:
            if pending.rseq == rack.rseq:
                self._pending.remove(pending)
                return True
        return False

    def unacknowledged(self, rseq: int) -> bool:
        return any(p.rseq == rseq for p in self._pending)

    @property
    def answer_blocked(self) -> bool:
        """§3: a 2xx must wait while a reliable provisional with SDP is unacknowledged."""
        return any(p.with_sdp for p in self._pending)
