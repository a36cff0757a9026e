"""Messages derived from other messages: responses, ACK for non-2xx, CANCEL, new requests.

RFC 3261 says exactly which header fields a response (§8.2.6), a non-2xx ACK (§17.1.1.3)
and a CANCEL (§9.1) take from the request, and peers match transactions and dialogs on
those very fields.  Getting one wrong is not a cosmetic bug: a response whose Via differs
from the request's is dropped by the client transaction, an ACK with the wrong CSeq leaves
the server retransmitting for 32 seconds.  So these rules live here once, and every layer
(transactions, dialogs, proxy, roles) builds through them.

Copied fields are shared with the source message rather than re-rendered (fields are never
mutated in place, see :mod:`.headers`), so a Via or From the peer wrote oddly comes back to it
byte for byte, which is what its matching code compares.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import UsageError
from ..methods import ACK, CANCEL, DIALOG_CREATING, INVITE
from ..status import reason_phrase
from ._scan import is_token
from .address import NameAddr
from .fields import MAX_CSEQ, Via
from .headers import HeaderField, Headers
from .model import Request, Response
from .uri import URI

__all__ = ["response_to", "ack_for", "cancel_for", "make_request", "DEFAULT_MAX_FORWARDS"]

#: RFC 3261 §8.1.1.6: a UAC SHOULD start Max-Forwards at 70.
DEFAULT_MAX_FORWARDS = 70

# Fields a response copies from its request (§8.2.6.2).  Record-Route and Timestamp are
# conditional and handled apart.
_RESPONSE_COPIED = frozenset({"via", "from", "to", "call-id", "cseq"})


def _top_via_field(request: Request) -> HeaderField:
    """The topmost Via value as a field of its own, shared with the request when possible."""
    for field in request.headers._fields:
        if field.key == "via":
            if "," not in field.value:
                return field
            break
    values = request.headers.get_all("via")
    if not values:
        raise UsageError(f"{request.method} request has no Via header")
    return HeaderField("Via", values[0])


def _fields(message: Request | Response, key: str) -> list[HeaderField]:
    return [f for f in message.headers._fields if f.key == key]


def _one_field(message: Request | Response, key: str, name: str) -> HeaderField:
    found = _fields(message, key)
    if not found:
        raise UsageError(f"{message!r} has no {name} header")
    return found[0]


def _finish(
    headers: Headers,
    extra: Iterable[tuple[str, str]],
    body: bytes,
    content_type: str | None,
) -> None:
    """Append caller headers, then Content-Type and Content-Length, last as is customary."""
    for name, value in extra:
        headers.add(name, value)
    if content_type is not None:
        headers.set("Content-Type", content_type)
    headers.set("Content-Length", str(len(body)))


def response_to(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
    copy_record_route: bool | None = None,
) -> Response:
    """Build a response to *request* following RFC 3261 §8.2.6.

    Via (every value, in order), From, Call-ID and CSeq are copied unchanged; To is copied
    and gets ``to_tag`` when it has no tag yet and the status is above 100 (a To that already
    carries a tag belongs to a dialog and must not change).  A ``Timestamp`` is echoed in a
    100 (§8.2.6.1).  Record-Route is copied when ``copy_record_route`` is true; left at None
    it is copied for 101-299 responses to dialog-creating requests (§12.1.1), the responses
    that may establish a dialog.  The copied fields keep the request's order.
    """
    if not isinstance(request, Request):
        raise UsageError(f"cannot build a response to {request!r}: not a request")
    if request.method == ACK:
        raise UsageError("ACK is never answered (RFC 3261 §17.1.1.3)")
    if not 100 <= status <= 699:
        raise UsageError(f"status code {status} outside 100-699")
    if copy_record_route is None:
        copy_record_route = 101 <= status < 300 and request.method in DIALOG_CREATING
    wanted = set(_RESPONSE_COPIED)
    if copy_record_route:
        wanted.add("record-route")
    if status == 100:
        wanted.add("timestamp")
    add_tag = to_tag is not None and status > 100 and request.to.tag is None
    copied: list[HeaderField] = []
    for field in request.headers._fields:
        if field.key not in wanted:
            continue
        if field.key == "to" and add_tag:
            field = HeaderField(field.name, f"{field.value};tag={to_tag}")
        copied.append(field)
    out = Headers(copied)
    _finish(out, headers, body, content_type)
    return Response(status, reason if reason is not None else reason_phrase(status), out, body)


def ack_for(invite: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 300-699 response (§17.1.1.3).

    Request-URI, From, Call-ID and the CSeq number come from the INVITE, To from the
    response (it carries the tag of the UAS that refused), the single Via is the INVITE's top
    Via (so the ACK matches the server transaction) and Route is copied from the INVITE.
    The ACK for a 2xx is a dialog matter (§13.2.2.4) and is refused here.
    """
    if not isinstance(invite, Request) or invite.method != INVITE:
        raise UsageError(f"ACK is built for an INVITE, not {invite!r}")
    if not isinstance(response, Response) or response.status < 300:
        raise UsageError(f"the transaction ACKs only 300-699 responses, not {response!r}")
    fields = [_top_via_field(invite)]
    fields.extend(_fields(invite, "route"))
    fields.append(HeaderField("Max-Forwards", str(DEFAULT_MAX_FORWARDS)))
    fields.append(_one_field(invite, "from", "From"))
    fields.append(_one_field(response, "to", "To"))
    fields.append(_one_field(invite, "call-id", "Call-ID"))
    fields.append(HeaderField("CSeq", f"{invite.cseq.seq} {ACK}"))
    fields.append(HeaderField("Content-Length", "0"))
    return Request(ACK, invite.uri_text, Headers(fields))


def cancel_for(request: Request) -> Request:
    """A CANCEL for a pending client *request*, normally an INVITE (§9.1).

    Request-URI, Call-ID, From, To (tags included) and the CSeq number are the request's; the
    single Via is the request's top Via, so the CANCEL reaches the same server transaction
    and carries the same branch; Route is copied so it follows the same path.
    """
    if not isinstance(request, Request) or request.method in (ACK, CANCEL):
        raise UsageError(f"cannot cancel {request!r}")
    fields = [_top_via_field(request)]
    fields.extend(_fields(request, "route"))
    fields.append(HeaderField("Max-Forwards", str(DEFAULT_MAX_FORWARDS)))
    fields.append(_one_field(request, "from", "From"))
    fields.append(_one_field(request, "to", "To"))
    fields.append(_one_field(request, "call-id", "Call-ID"))
    fields.append(HeaderField("CSeq", f"{request.cseq.seq} {CANCEL}"))
    fields.append(HeaderField("Content-Length", "0"))
    return Request(CANCEL, request.uri_text, Headers(fields))


def make_request(
    method: str,
    uri: URI | str,
    *,
    from_: NameAddr | str,
    to: NameAddr | str,
    call_id: str,
    cseq: int,
    via: Via | str,
    contact: NameAddr | str | None = None,
    max_forwards: int = DEFAULT_MAX_FORWARDS,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Request:
    """A new UAC request with the mandatory header fields of §8.1.1, in customary order.

    The caller supplies every identifier (tags, Call-ID, branch) because they come from the
    injected id source and the dialog state; this function only assembles.  Route headers,
    when needed, go in *headers*.
    """
    if not is_token(method):
        raise UsageError(f"method {method!r} is not a token")
    if not 0 <= cseq <= MAX_CSEQ:
        raise UsageError(f"CSeq number {cseq} outside 0..2**31-1 (RFC 3261 §8.1.1.5)")
    if not 0 <= max_forwards <= 255:
        raise UsageError(f"Max-Forwards {max_forwards} outside 0..255")
    pairs = [
        ("Via", str(via)),
        ("Max-Forwards", str(max_forwards)),
        ("From", str(from_)),
        ("To", str(to)),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
    ]
    if contact is not None:
        pairs.append(("Contact", str(contact)))
    out = Headers.from_pairs(pairs)
    _finish(out, headers, body, content_type)
    return Request(method, uri, out, body)
