"""The registrar's decision (RFC 3261 §10.3, RFC 3327 §5.3, RFC 5626 §6), as a pure function.

A REGISTER is a read-modify-write of one address-of-record: the registrar reads the AOR's
bindings, compares each Contact of the request with them (the Call-ID/CSeq ordering of
§10.3 step 7 exists precisely so a delayed REGISTER cannot undo a newer one) and either
rejects the whole request or commits every change at once.  That comparison is the part
worth testing exhaustively, so it lives here with no storage, no clock and no I/O:
:func:`decide_register` takes the request, a snapshot of the current bindings and ``now``
and returns either a :class:`RegisterRejected` or a :class:`RegisterAccepted` holding the
changes and the bindings the 200 OK lists.  The role runs it inside the store's
compare-and-swap loop (``sipline.storage.transact``), which may call it several times.

Layering: the core cannot import ``sipline.storage``, so the current bindings are read
through the :class:`StoredBinding` protocol (which the storage ``Binding`` satisfies) and
the changes are expressed with this module's :class:`ContactBinding`; the role maps them
onto storage values and adds what only it knows (transport source, connection, node).

Choices the RFCs leave open, made here once:

* The AOR is ``sip:user@domain``: scheme folded to ``sip``, user unescaped, host
  lower-cased, port and parameters dropped (§10.3 step 5).
* A request whose Call-ID matches a stored binding with a CSeq that is not higher is
  answered 500: §10.3 says the update "fails", and the closing paragraph of step 7 says a
  failed update is a 500.  Nothing is written.
* More contacts than ``max_contacts`` is answered 403 "Too Many Registrations": the
  request is understood and authorised, the server just refuses to grow the AOR further,
  and a retry without change will not help (which rules out 5xx).
* A Path without ``Supported: path`` is refused with 420 by default, the policy RFC 3327
  §5.3 recommends, so a UA can notice a proxy that inserted itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Protocol

from .errors import ParseError, UsageError
from .message.address import NameAddr
from .message.builders import response_to
from .message.model import Request, Response
from .message.uri import URI, SipURI, parse_uri

__all__ = [
    "RegistrarPolicy",
    "StoredBinding",
    "BindingSnapshot",
    "ContactBinding",
    "RegisterRejected",
    "RegisterAccepted",
    "RegisterDecision",
    "canonical_aor",
    "register_aor",
    "check_require",
    "decide_register",
    "too_many_bindings",
    "storage_failure",
    "build_register_response",
    "http_date",
    "user_agent_of",
]

#: §10.3 step 7 only allows 423 for intervals "smaller than one hour".
_ONE_HOUR = 3600
#: Bound on the stored User-Agent text, which the peer controls.
_USER_AGENT_MAX = 256


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    """Local policy of one registrar: which domains, which intervals, how many contacts.

    ``domains`` are the host parts of the AORs we keep bindings for (compared
    case-insensitively).  ``min_expires`` triggers 423 only below one hour, as §10.3 step 7
    allows, so a minimum above an hour lets requests between the two through unchanged;
    ``default_expires`` applies when neither the Contact nor the request gives an interval.
    ``supported`` lists the option tags a ``Require`` may name.
    ``path_without_support`` decides what happens to a Path from a UA that did not say
    ``Supported: path``: "reject" (420, RFC 3327 §5.3 recommendation) or "accept" (store it).
    ``outbound`` enables RFC 5626 binding identity by +sip.instance/reg-id.
    """

    domains: frozenset[str]
    default_expires: int = 3600
    min_expires: int = 60
    max_expires: int = 7200
    max_contacts: int = 16
    supported: tuple[str, ...] = ("path", "outbound")
    path_without_support: str = "reject"
    outbound: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", frozenset(d.lower() for d in self.domains))
        if self.min_expires < 1:
            raise UsageError("min_expires must be at least 1")
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise UsageError("need min_expires <= default_expires <= max_expires")
        if self.max_contacts < 1:
            raise UsageError("max_contacts must be at least 1")
        if self.path_without_support not in ("reject", "accept"):
            raise UsageError("path_without_support must be 'reject' or 'accept'")

    def serves(self, domain: str) -> bool:
        return domain.lower() in self.domains


class StoredBinding(Protocol):
    """What the decision reads from a stored binding (``sipline.storage.Binding`` fits)."""

    @property
    def contact(self) -> str: ...
    @property
    def expires_at(self) -> float: ...
    @property
    def q(self) -> float: ...
    @property
    def call_id(self) -> str: ...
    @property
    def cseq(self) -> int: ...
    @property
    def path(self) -> tuple[str, ...]: ...
    @property
    def instance_id(self) -> str | None: ...
    @property
    def reg_id(self) -> int | None: ...
    @property
    def updated_at(self) -> float: ...


class BindingSnapshot(Protocol):
    """The AOR's current bindings (``sipline.storage.BindingSet`` fits)."""

    @property
    def bindings(self) -> Sequence[StoredBinding]: ...


@dataclass(frozen=True, slots=True)
class ContactBinding:
    """A binding as this REGISTER wants it stored (RFC 3261 §10.2.1, RFC 5626 §6).

    ``contact`` is the Contact URI as the UA wrote it, or the stored text when an existing
    binding is refreshed, so the store keeps one identity per contact.
    """

    contact: str
    expires_at: float  # absolute, on the caller's clock
    q: float = 1.0  # §20.10 preference, 0..1, three decimals
    call_id: str = ""  # §10.3 step 7 ordering
    cseq: int = 0
    path: tuple[str, ...] = ()  # RFC 3327 path vector, topmost first
    instance_id: str | None = None  # RFC 5626 +sip.instance, unquoted
    reg_id: int | None = None  # RFC 5626 reg-id, only with an instance
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class RegisterRejected:
    """A final non-2xx answer; nothing is written.  ``log`` explains it to operators."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    log: str = ""


@dataclass(frozen=True, slots=True)
class RegisterAccepted:
    """The changes one REGISTER makes, and what its 200 OK says.

    Applied in storage order: ``remove_all``, then ``remove`` (stored contact texts), then
    ``upsert``.  ``bindings`` are the AOR's bindings once the changes are applied, listed in
    the 200 with their remaining expiry (§10.3 step 8).  ``path`` is echoed in a Path
    header (RFC 3327 §5.3) and ``require_outbound`` adds ``Require: outbound`` (RFC 5626 §6).
    """

    aor: str
    upsert: tuple[ContactBinding, ...] = ()
    remove: tuple[str, ...] = ()
    remove_all: bool = False
    bindings: tuple[StoredBinding, ...] = ()
    path: tuple[str, ...] = ()
    require_outbound: bool = False

    @property
    def changes_nothing(self) -> bool:
        """True for a query (no Contact) or a request that changes no binding."""
        return not (self.upsert or self.remove or self.remove_all)


RegisterDecision = RegisterAccepted | RegisterRejected


def _reject(status: int, reason: str, log: str = "", *headers: tuple[str, str]) -> RegisterRejected:
    return RegisterRejected(status, reason, tuple(headers), log or reason)


def canonical_aor(uri: URI) -> str | None:
    """``sip:user@domain`` for a SIP/SIPS URI (§10.3 step 5), None for other schemes."""
    if not isinstance(uri, SipURI):
        return None
    host = f"[{uri.host}]" if uri.is_ipv6 else uri.host.lower()
    user = uri.user_unescaped
    return f"sip:{user}@{host}" if user else f"sip:{host}"


def register_aor(request: Request, policy: RegistrarPolicy) -> str | RegisterRejected:
    """The AOR a REGISTER is about, or the 400/404 refusing it (§10.3 step 5)."""
    try:
        uri = request.to.uri
    except ParseError as exc:
        return _reject(400, "Bad Request", f"To: {exc.reason}")
    aor = canonical_aor(uri)
    if aor is None or not isinstance(uri, SipURI) or not policy.serves(uri.host):
        return _reject(404, "Not Found", f"no bindings kept for {str(uri)[:80]!r}")
    return aor


def check_require(request: Request, policy: RegistrarPolicy) -> RegisterRejected | None:
    """420 listing the Require option tags we do not support (§10.3 step 2, §8.2.2.3)."""
    try:
        required = request.require
    except ParseError as exc:
        return _reject(400, "Bad Request", exc.reason)
    if not required:
        return None
    supported = {tag.lower() for tag in policy.supported}
    missing = [tag for tag in required if tag.lower() not in supported]
    if missing:
        return _reject(420, "Bad Extension", f"unsupported Require {missing}",
                       ("Unsupported", ", ".join(missing)))
    return None


def too_many_bindings() -> RegisterRejected:
    """The answer when the store's own bound refuses the change (see module docstring)."""
    return _reject(403, "Too Many Registrations")


def storage_failure(retry_after: int = 5) -> RegisterRejected:
    """§10.3: a commit that fails is a 500 and nothing tentative survives."""
    return _reject(500, "Server Internal Error", "binding update could not be committed",
                   ("Retry-After", str(retry_after)))


def _expiry(contact: NameAddr, header: int | None, policy: RegistrarPolicy) -> int:
    """Requested interval: Contact param, else Expires header, else the default (§10.3 step 7)."""
    requested = contact.expires
    if requested is None:
        requested = header
    return policy.default_expires if requested is None else requested


def _same_contact(stored: str, uri: URI) -> bool:
    try:
        other = parse_uri(stored.strip("<>"))
    except ParseError:
        return stored == str(uri)
    return uri.equivalent(other)


def _reg_id(contact: NameAddr) -> int | None | RegisterRejected:
    value = contact.params.get("reg-id")
    if value is None:
        return None
    # reg-id = "reg-id" EQUAL 1*DIGIT ; 1 to (2^31 - 1)   (RFC 5626 §11.2)
    if not value.isascii() or not value.isdigit() or not 0 < int(value) < 2**31:
        return _reject(400, "Bad Request", f"bad reg-id {value[:20]!r}")
    return int(value)


def _outbound_applies(request: Request, paths: Sequence[NameAddr]) -> bool:
    """RFC 5626 §6: outbound needs us as first hop, or a first Path URI marked ``ob``."""
    if len(request.vias) == 1:
        return True
    if not paths:
        return False
    first = paths[0].uri
    return isinstance(first, SipURI) and "ob" in first.params


def _sort_key(b: StoredBinding) -> tuple[float, float, str]:
    # The store's lookup order: best q first, then most recently refreshed.
    return (-b.q, -b.updated_at, b.contact)


def decide_register(
    request: Request,
    current: BindingSnapshot,
    now: float,
    policy: RegistrarPolicy,
) -> RegisterDecision:
    """Decide what a REGISTER does to its AOR (RFC 3261 §10.3 steps 2 and 5-8).

    Authentication and authorisation (steps 3-4) are the caller's, before this.  Never
    raises on peer input: a malformed header is a 400 decision.
    """
    refusal = check_require(request, policy)
    if refusal is not None:
        return refusal
    aor = register_aor(request, policy)
    if isinstance(aor, RegisterRejected):
        return aor
    try:
        return _decide(request, aor, current, now, policy)
    except ParseError as exc:
        return _reject(400, "Bad Request", exc.reason)


def _decide(
    request: Request, aor: str, current: BindingSnapshot, now: float, policy: RegistrarPolicy
) -> RegisterDecision:
    alive = [b for b in current.bindings if b.expires_at > now]
    call_id, cseq = request.call_id, request.cseq.seq
    header_expires = request.expires

    # RFC 3327 §5.3: a Path is stored with the binding and echoed in the 200.
    path_fields = request.headers.get_all("Path")
    paths = request.paths
    ua_supports_path = "path" in {t.lower() for t in request.supported}
    if path_fields and not ua_supports_path and policy.path_without_support == "reject":
        return _reject(420, "Bad Extension", "Path without Supported: path", ("Unsupported", "path"))
    path = tuple(path_fields)

    if "Contact" not in request.headers:
        # A query: list the bindings, change nothing (§10.3 step 6 "skips to the last step").
        return RegisterAccepted(aor, bindings=tuple(sorted(alive, key=_sort_key)))

    if request.contact_is_star or any(v.strip() == "*" for v in request.headers.get_all("Contact")):
        return _remove_all(request, aor, alive, call_id, cseq, header_expires)

    contacts = request.contacts  # never empty here: an empty Contact is a ParseError

    use_outbound = policy.outbound and _outbound_applies(request, paths)
    supports_outbound = "outbound" in {t.lower() for t in request.supported}
    planned: list[tuple[NameAddr, int, str | None, int | None]] = []
    for contact in contacts:
        requested = _expiry(contact, header_expires, policy)
        # §10.3 step 7: 423 only for a non-zero interval below both the minimum and an hour.
        if 0 < requested < min(policy.min_expires, _ONE_HOUR):
            return _reject(423, "Interval Too Brief", f"expires {requested} < {policy.min_expires}",
                           ("Min-Expires", str(policy.min_expires)))
        instance = contact.params.get_unquoted("+sip.instance")
        reg_id = _reg_id(contact)
        if isinstance(reg_id, RegisterRejected):
            return reg_id
        if reg_id is not None and instance is None:
            reg_id = None  # RFC 5626 §6: reg-id without an instance is ignored
        if reg_id is not None and not use_outbound:
            if supports_outbound and policy.outbound:
                return _reject(439, "First Hop Lacks Outbound Support")
            reg_id = None  # outbound processing not applicable: ignore reg-id
        planned.append((contact, min(requested, policy.max_expires), instance, reg_id))

    if any(r is not None for *_, r in planned) and sum(1 for _, e, _, _ in planned if e) > 1:
        return _reject(400, "Bad Request", "reg-id with several non-zero contacts (RFC 5626 §6)")

    result: dict[str, StoredBinding] = {b.contact: b for b in alive}
    upserts: dict[str, ContactBinding] = {}
    removed: list[str] = []
    for contact, expires, instance, reg_id in planned:
        existing = _find(alive, contact.uri, instance, reg_id)
        if existing is not None:
            if existing.call_id == call_id and cseq <= existing.cseq:
                return _reject(500, "Server Internal Error",
                               f"out-of-order REGISTER: CSeq {cseq} <= {existing.cseq} for "
                               f"{existing.contact[:80]}")
        text = str(contact.uri)
        if existing is not None and existing.contact != text:
            # An equivalent URI spelt differently, or (RFC 5626) the same instance and
            # reg-id from a new Contact: the binding moves to the UA's latest text.
            removed.append(existing.contact)
            result.pop(existing.contact, None)
        if expires == 0:
            if existing is not None:
                removed.append(existing.contact)
                result.pop(existing.contact, None)
            upserts.pop(text, None)
            continue
        q = contact.q
        binding = ContactBinding(
            contact=text,
            expires_at=now + expires,
            q=1.0 if q is None else round(q, 3),
            call_id=call_id,
            cseq=cseq,
            path=path,
            instance_id=instance,
            reg_id=reg_id,
            updated_at=now,
        )
        upserts[text] = binding
        result[text] = binding

    known = {b.contact for b in alive}
    grows = any(text not in known for text in upserts)
    # Only a request that adds a contact is refused: refreshing or removing must keep
    # working for an AOR already above a lowered limit.
    if grows and len(result) > policy.max_contacts:
        return _reject(403, "Too Many Registrations",
                       f"{aor} would hold {len(result)} > {policy.max_contacts} contacts")
    outbound_used = any(r is not None for _, _, _, r in planned)
    return RegisterAccepted(
        aor,
        upsert=tuple(upserts.values()),
        remove=tuple(dict.fromkeys(c for c in removed if c not in upserts)),
        bindings=tuple(sorted(result.values(), key=_sort_key)),
        path=path if ua_supports_path else (),
        require_outbound=outbound_used and supports_outbound,
    )


def _find(
    alive: Sequence[StoredBinding], uri: URI, instance: str | None, reg_id: int | None
) -> StoredBinding | None:
    """The binding a Contact refers to: by instance and reg-id (RFC 5626), else by URI."""
    if reg_id is not None:
        for b in alive:
            if b.instance_id == instance and b.reg_id == reg_id:
                return b
        return None
    # A refresh spells its Contact as before, and a URI is equivalent to itself: comparing
    # the text first skips parsing every stored contact on the common path.
    text = str(uri)
    for b in alive:
        if b.reg_id is None and b.contact == text:
            return b
    for b in alive:
        if b.reg_id is None and _same_contact(b.contact, uri):
            return b
    return None


def _remove_all(
    request: Request,
    aor: str,
    alive: Sequence[StoredBinding],
    call_id: str,
    cseq: int,
    header_expires: int | None,
) -> RegisterDecision:
    """``Contact: *`` (§10.3 step 6): only alone, only with ``Expires: 0``."""
    if request.headers.get_all("Contact") != ["*"]:
        return _reject(400, "Bad Request", "Contact '*' must be the only Contact value")
    if header_expires != 0:
        return _reject(400, "Bad Request", "Contact '*' needs Expires: 0")
    for b in alive:
        if b.call_id == call_id and cseq <= b.cseq:
            return _reject(500, "Server Internal Error",
                           f"out-of-order REGISTER: CSeq {cseq} <= {b.cseq} for {b.contact[:80]}")
    return RegisterAccepted(aor, remove_all=True)


def _q_text(q: float) -> str:
    return f"{q:.3f}".rstrip("0").rstrip(".") or "0"


def _contact_value(b: StoredBinding, now: float) -> str:
    uri = b.contact if b.contact.startswith("<") else f"<{b.contact}>"
    parts = [uri, f";expires={max(0, math.ceil(b.expires_at - now))}"]
    if b.q != 1.0:
        parts.append(f";q={_q_text(b.q)}")
    if b.instance_id is not None:
        escaped = b.instance_id.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f';+sip.instance="{escaped}"')
        if b.reg_id is not None:
            parts.append(f";reg-id={b.reg_id}")
    return "".join(parts)


def http_date(epoch: float) -> str:
    """An RFC 1123 date in GMT for the Date header (§20.17), from Unix time *epoch*."""
    return formatdate(epoch, usegmt=True)


def build_register_response(
    request: Request,
    decision: RegisterDecision,
    now: float,
    to_tag: str,
    *,
    date: str | None = None,
) -> Response:
    """The final response to a REGISTER for *decision*.

    A 200 lists every binding with ``;expires=`` its remaining seconds (§10.3 step 8),
    echoes the Path and carries ``Require: outbound`` when RFC 5626 was applied.  *date* is
    the Date header value (§10.3 step 8 "SHOULD"), see :func:`http_date`.
    """
    headers: list[tuple[str, str]] = []
    if isinstance(decision, RegisterRejected):
        headers.extend(decision.headers)
        if date is not None:
            headers.append(("Date", date))
        return response_to(request, decision.status, decision.reason, to_tag=to_tag, headers=headers)
    if decision.require_outbound:
        headers.append(("Require", "outbound"))
    if decision.path:
        headers.append(("Path", ", ".join(decision.path)))
    headers.extend(("Contact", _contact_value(b, now)) for b in decision.bindings)
    if date is not None:
        headers.append(("Date", date))
    return response_to(request, 200, "OK", to_tag=to_tag, headers=headers)


def user_agent_of(request: Request) -> str:
    """The User-Agent to store with a binding, bounded (it is peer-controlled)."""
    return (request.headers.get("User-Agent") or "")[:_USER_AGENT_MAX]

