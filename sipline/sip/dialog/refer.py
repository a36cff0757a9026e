"""The REFER usage (RFC 3515) and the Replaces header (RFC 3891): call transfer.

A blind transfer is a REFER whose Refer-To names the new target; the transferee calls it
and reports progress back in NOTIFYs of the *implicit subscription* the REFER created,
each body a ``message/sipfrag`` holding just a status line.  An attended transfer adds a
``Replaces`` header inside the Refer-To URI (``?Replaces=...`` escaped), naming the dialog
the target should drop in favour of the new INVITE.

Everything here is value building and parsing, so the transfer logic of a UA is a few
calls: :func:`refer_headers`, :func:`parse_refer`, :func:`notify_for` / :func:`parse_notify`,
:class:`Replaces` and :func:`find_replaced`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from ..errors import ParseError
from ..message.address import NameAddr, parse_name_addr
from ..message.model import Request
from ..message.uri import URI, SipURI, parse_uri
from ..status import reason_phrase
from .dialog import Dialog, DialogId

__all__ = [
    "SIPFRAG_TYPE",
    "Replaces",
    "ReferRequest",
    "ReferProgress",
    "parse_replaces",
    "refer_headers",
    "refer_target",
    "parse_refer",
    "sipfrag",
    "parse_sipfrag",
    "notify_for",
    "parse_notify",
    "find_replaced",
]

SIPFRAG_TYPE = "message/sipfrag;version=2.0"
#: How long the implicit subscription lives unless refreshed (RFC 3515 §2.4.4 leaves it
#: to the notifier; a transfer is over well within this).
DEFAULT_EXPIRES = 60

# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
_STATUS_LINE = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9])(?: ([^\r\n]*))?")


@dataclass(frozen=True, slots=True)
class Replaces:
    """``Replaces: callid;to-tag=..;from-tag=..[;early-only]`` (RFC 3891 §6.1).

    Tags are as seen by the UA *receiving* the INVITE with Replaces: ``to_tag`` is its
    local tag, ``from_tag`` the remote one.
    """

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False

    @classmethod
    def for_dialog(cls, dialog_id: DialogId, early_only: bool = False) -> Replaces:
        """The Replaces naming *our* dialog, to be sent to the peer of that dialog's peer.

        The target of the attended transfer is the remote party of ``dialog_id``: its local
        tag is our remote tag.
        """
        return cls(dialog_id.call_id, dialog_id.remote_tag, dialog_id.local_tag, early_only)

    def matches(self, dialog_id: DialogId) -> bool:
        """True if this header names ``dialog_id`` from the recipient's side (§3)."""
        return (
            self.call_id == dialog_id.call_id
            and self.to_tag == dialog_id.local_tag
            and self.from_tag == dialog_id.remote_tag
        )

    def __str__(self) -> str:
        text = f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}"
        return text + ";early-only" if self.early_only else text


def parse_replaces(value: str) -> Replaces:
    """Parse a Replaces header value.  Raises ParseError (400) when a part is missing."""
    parts = [p.strip() for p in value.strip().split(";")]
    call_id = parts[0]
    if not call_id or any(c in call_id for c in " \t"):
        raise ParseError(f"Replaces: bad call-id {call_id[:60]!r}", header="Replaces")
    params: dict[str, str | None] = {}
    for piece in parts[1:]:
        name, eq, val = piece.partition("=")
        params[name.strip().lower()] = val.strip() if eq else None
    to_tag, from_tag = params.get("to-tag"), params.get("from-tag")
    if not to_tag or not from_tag:
        raise ParseError("Replaces needs to-tag and from-tag", header="Replaces")
    return Replaces(call_id, to_tag, from_tag, "early-only" in params)


def refer_target(target: URI | str, replaces: Replaces | None = None) -> NameAddr:
    """The Refer-To address: *target*, with ``?Replaces=`` embedded for attended transfer."""
    uri = parse_uri(target) if isinstance(target, str) else target
    if replaces is not None:
        if not isinstance(uri, SipURI):
            raise ParseError("Replaces can only ride in a SIP URI", header="Refer-To")
        kept = tuple(h for h in uri.headers if h[0].lower() != "replaces")
        uri = uri.replace(headers=(*kept, ("Replaces", str(replaces))))
    return NameAddr(uri)


def refer_headers(
    target: URI | str,
    *,
    referred_by: NameAddr | None = None,
    replaces: Replaces | None = None,
) -> list[tuple[str, str]]:
    """Refer-To (and Referred-By) headers for a REFER request (RFC 3515 §2.1, RFC 3892)."""
    out = [("Refer-To", str(refer_target(target, replaces)))]
    if referred_by is not None:
        out.append(("Referred-By", str(referred_by)))
    return out


@dataclass(frozen=True, slots=True)
class ReferRequest:
    """What a REFER asks: call ``target`` (headers removed), maybe replacing a dialog."""

    refer_to: NameAddr
    target: URI
    replaces: Replaces | None
    referred_by: NameAddr | None


def parse_refer(request: Request) -> ReferRequest:
    """Read Refer-To / Referred-By of a REFER.  Exactly one Refer-To is required (§2.4.1)."""
    values = request.headers.get_all("Refer-To")
    if len(values) != 1:
        raise ParseError("REFER needs exactly one Refer-To", header="Refer-To")
    refer_to = parse_name_addr(values[0])
    uri = refer_to.uri
    replaces = None
    if isinstance(uri, SipURI) and uri.headers:
        for name, value in uri.headers:
            if name.lower() == "replaces":
                replaces = parse_replaces(unquote(value))
        uri = uri.replace(headers=())
    by = request.headers.get("Referred-By")
    return ReferRequest(refer_to, uri, replaces, parse_name_addr(by) if by else None)


def sipfrag(status: int, reason: str | None = None) -> bytes:
    """The ``message/sipfrag`` body reporting *status* (RFC 3515 §2.4.5)."""
    return f"SIP/2.0 {status} {reason if reason is not None else reason_phrase(status)}\r\n".encode()


def parse_sipfrag(body: bytes) -> tuple[int, str]:
    """The status code and reason of a sipfrag body.  Raises ParseError."""
    first = body.decode("utf-8", "replace").lstrip().split("\n", 1)[0].rstrip("\r")
    m = _STATUS_LINE.fullmatch(first)
    if m is None:
        raise ParseError(f"sipfrag without a status line: {first[:60]!r}")
    return int(m.group(1)), m.group(2) or ""


def notify_for(
    status: int,
    *,
    event_id: int | None = None,
    expires: int = DEFAULT_EXPIRES,
    reason: str | None = None,
) -> tuple[list[tuple[str, str]], bytes, str]:
    """Headers, body and content type of a NOTIFY reporting transfer progress.

    A final status (>= 200) terminates the implicit subscription (RFC 3515 §2.4.7).
    ``event_id`` is the CSeq of the REFER when several share the dialog (§2.4.6).
    """
    event = "refer" if event_id is None else f"refer;id={event_id}"
    state = f"active;expires={expires}" if status < 200 else "terminated;reason=noresource"
    headers = [("Event", event), ("Subscription-State", state)]
    return headers, sipfrag(status, reason), SIPFRAG_TYPE


@dataclass(frozen=True, slots=True)
class ReferProgress:
    """A NOTIFY about our REFER: the transferee's call reached ``status``."""

    status: int
    reason: str
    #: The subscription ended (Subscription-State: terminated).
    terminated: bool

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status < 300


def parse_notify(request: Request) -> ReferProgress:
    """Read a refer-event NOTIFY.  Raises ParseError for another event or a bad body."""
    event = (request.headers.get("Event") or "").split(";", 1)[0].strip().lower()
    if event != "refer":
        raise ParseError(f"NOTIFY for event {event!r}, not refer", status=489, header="Event")
    state = (request.headers.get("Subscription-State") or "").split(";", 1)[0].strip().lower()
    status, reason = parse_sipfrag(request.body)
    return ReferProgress(status, reason, state == "terminated")


def find_replaced(replaces: Replaces, dialogs: Iterable[Dialog]) -> Dialog | None:
    """The dialog an INVITE with Replaces targets, or None (the UAS answers 481, §3).

    A confirmed dialog cannot be replaced when ``early-only`` is set (486 in the RFC; the
    caller tells the two cases apart with :attr:`Dialog.confirmed`).
    """
    for dialog in dialogs:
        if not dialog.terminated and replaces.matches(dialog.id):
            return dialog
    return None
