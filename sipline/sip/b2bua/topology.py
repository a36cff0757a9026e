"""Topology hiding: what crosses from one leg of a call to the other, and in which form.

A B2BUA that copies headers forwards the network it should hide: Via and Record-Route name
every host on the way, Contact and Call-ID name the PBX, User-Agent/Server its software,
``X-`` headers its internals, SDP ``o=`` its address.  So nothing is copied by default.
Each leg's requests are built afresh by the leg (its own Via, Call-ID, tags, CSeq,
Contact); from the other leg only an *allow-list* of end-to-end headers travels, trimmed by
a per-trunk :class:`HeaderPolicy` (strip, pass, add).  Identity headers are never copied:
From, P-Asserted-Identity (RFC 3325), Privacy (RFC 3323) and Diversion (RFC 5806) are
rebuilt by :func:`caller_identity` and :func:`rewrite_diversion` from the normalized numbers
and the trunk's caller-ID policy.

Header policy between legs:

========================  ====================================================
stripped, never relayed   Via, Route, Record-Route, Contact, Call-ID, From, To, CSeq,
                          Max-Forwards, Content-Length, authentication headers, Path,
                          Service-Route, identity headers (rebuilt), History-Info
relayed by default        Allow, Accept, Accept-Language, Subject, Priority,
                          Content-Disposition, Content-Language, Reason, Retry-After,
                          Unsupported, Supported (minus 100rel/timer/replaces/path)
dropped unless passed     everything else: User-Agent, Server, Warning, X-*, P-* ...
added                     the trunk's ``add`` headers
========================  ====================================================

SDP keeps its media addresses until media is anchored (the relay rewrites ``c=``/``m=``),
but :func:`scrub_sdp` writes our own ``o=`` line (an :class:`OriginWriter` per side: own
session id, version bumped on change) and ``s=`` at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProtocolError, UsageError
from ..message.address import NameAddr, parse_name_addr
from ..message.headers import canonical_key
from ..message.model import Message
from ..message.uri import SipURI, TelURI
from ..sdp import Origin, SessionDescription, parse_sdp

__all__ = [
    "HeaderPolicy",
    "NEVER_RELAYED",
    "DEFAULT_RELAYED",
    "relay_headers",
    "relay_status",
    "Identity",
    "caller_identity",
    "rewrite_diversion",
    "number_of",
    "privacy_requested",
    "scrub_sdp",
    "OriginWriter",
    "limit_rejection",
    "ANONYMOUS",
]

#: Headers a leg always writes itself or rebuilds: no policy can make them cross.
NEVER_RELAYED = frozenset({
    "via", "route", "record-route", "contact", "call-id", "from", "to", "cseq", "max-forwards",
    "content-length", "content-type", "authorization", "proxy-authorization",
    "www-authenticate", "proxy-authenticate", "authentication-info", "proxy-authentication-info",
    "path", "service-route", "p-asserted-identity", "p-preferred-identity", "privacy",
    "diversion", "history-info", "remote-party-id", "refer-to", "referred-by", "replaces",
    "join", "require", "proxy-require", "rseq", "rack",
})

#: End-to-end headers that say nothing about the network and cross by default.
DEFAULT_RELAYED = frozenset({
    "allow", "accept", "accept-language", "subject", "priority", "content-disposition",
    "content-language", "reason", "retry-after", "unsupported", "supported", "allow-events",
})

#: Option tags whose extension is hop-by-hop in a B2BUA: each leg negotiates its own.
_HOP_BY_HOP_OPTIONS = frozenset({"100rel", "timer", "replaces", "path", "outbound", "gruu"})


@dataclass(frozen=True, slots=True)
class HeaderPolicy:
    """Per-trunk adjustments to the relay rules (names are case-insensitive)."""

    strip: tuple[str, ...] = field(default=(), metadata={
        "help": "Headers never relayed to this trunk even if allowed by default."})
    passed: tuple[str, ...] = field(default=(), metadata={
        "help": "Extra headers relayed to this trunk (X-Account-Code...); identity and "
                "routing headers cannot be listed."})
    add: tuple[tuple[str, str], ...] = field(default=(), metadata={
        "help": "Headers added to every request towards this trunk."})

    def __post_init__(self) -> None:
        bad = sorted(h for h in self.passed if canonical_key(h) in NEVER_RELAYED)
        if bad:
            raise UsageError(f"headers {bad} are rebuilt by each leg and cannot be passed")

    @classmethod
    def from_toml(cls, table: Mapping[str, Any]) -> HeaderPolicy:
        """``{strip = [...], pass = [...], add = {Name = "value"}}``."""
        add = table.get("add", {})
        return cls(
            strip=tuple(str(h) for h in table.get("strip", ())),
            passed=tuple(str(h) for h in table.get("pass", ())),
            add=tuple((str(k), str(v)) for k, v in dict(add).items()),
        )

    def allows(self, name: str) -> bool:
        key = canonical_key(name)
        if key in NEVER_RELAYED or key in {canonical_key(h) for h in self.strip}:
            return False
        return key in DEFAULT_RELAYED or key in {canonical_key(h) for h in self.passed}


def _filter_supported(value: str) -> str:
    tags = [t.strip() for t in value.split(",")]
    return ", ".join(t for t in tags if t and t.lower() not in _HOP_BY_HOP_OPTIONS)


def relay_headers(message: Message, policy: HeaderPolicy) -> list[tuple[str, str]]:
    """The headers of ``message`` (from one leg) that go into the other leg's message,
    followed by the policy's own additions."""
    out: list[tuple[str, str]] = []
    for name, value in message.headers:
        if not policy.allows(name):
            continue
        if canonical_key(name) == "supported":
            value = _filter_supported(value)
            if not value:
                continue
        out.append((name, value))
    out.extend(policy.add)
    return out


def relay_status(status: int) -> int:
    """The status the other leg answers with when this leg failed with ``status``.

    3xx would need the Contact we hide, and a 401/407 the far side could not answer anyway
    (the challenge is for our credentials): both become 480 / 503.
    """
    if 300 <= status < 400:
        return 480
    if status in (401, 407):
        return 503
    return status


# -- identity -----------------------------------------------------------------------------

ANONYMOUS = NameAddr(SipURI("sip", "anonymous", None, "anonymous.invalid", None), "Anonymous")


def number_of(addr: NameAddr) -> str | None:
    """The telephone number an address carries: a tel: URI or the user part of a SIP URI."""
    uri = addr.uri
    if isinstance(uri, TelURI):
        return uri.number
    if isinstance(uri, SipURI) and uri.user:
        return uri.user_unescaped or uri.user
    return None


def privacy_requested(message: Message) -> bool:
    """RFC 3323: ``Privacy: id`` (or user/header) asks to hide the caller's identity."""
    values = {v.strip().lower() for raw in message.headers.get_all("Privacy") for v in raw.split(";")}
    return bool(values & {"id", "user", "header"}) and "none" not in values


@dataclass(frozen=True, slots=True)
class Identity:
    """What the outbound leg says about the caller: its From and identity headers."""

    from_: NameAddr
    headers: tuple[tuple[str, str], ...] = ()


def caller_identity(number: str | None, display: str | None, *, domain: str, anonymous: bool,
                    send_pai: bool) -> Identity:
    """From, P-Asserted-Identity and Privacy for a caller shown as ``number``.

    Anonymous calls get the RFC 3323 §4.1.1.3 anonymous From; the real identity then travels
    only in P-Asserted-Identity with ``Privacy: id``, for the trusted carrier (RFC 3325 §7).
    """
    real = NameAddr(SipURI("sip", number, None, domain, None), None if anonymous else display) if number else None
    headers: list[tuple[str, str]] = []
    if real is not None and send_pai:
        headers.append(("P-Asserted-Identity", str(NameAddr(real.uri))))
    if anonymous:
        headers.append(("Privacy", "id"))
        return Identity(ANONYMOUS, tuple(headers))
    return Identity(real if real is not None else ANONYMOUS, tuple(headers))


def rewrite_diversion(values: Iterable[str], translate: Callable[[str], str | None], domain: str) -> list[str]:
    """Diversion values (RFC 5806) with their numbers translated and our domain as host.

    Parameters (reason, counter, privacy) are kept; values that do not parse or whose
    number does not translate are dropped rather than leaked as received.
    """
    out: list[str] = []
    for value in values:
        try:
            addr = parse_name_addr(value)
        except ProtocolError:
            continue
        number = number_of(addr)
        sent = translate(number) if number else None
        if not sent:
            continue
        out.append(str(NameAddr(SipURI("sip", sent, None, domain, None), None, addr.params)))
    return out


# -- SDP ------------------------------------------------------------------------------------

class OriginWriter:
    """The ``o=`` line of the SDP we write towards one peer (RFC 8866 §5.2, RFC 3264 §8).

    Why our own: the other side's ``o=`` names its software (user name), its address and its
    session id, so copying it leaks topology; and once the SBC writes SDP to a peer it *is*
    that peer's session partner, which must keep one session id for the whole call and bump
    the version exactly when the description changes (RFC 3264 §8: an unchanged re-offer
    repeats the version, a changed one increments it by one).  One writer per side of a
    call; the session id comes from the caller (an :class:`~sipline.sip.ids.IdSource`
    token), so this stays pure.
    """

    __slots__ = ("session_id", "version", "_last")

    def __init__(self, token: str) -> None:
        #: Digits derived from ``token``: opaque to the peer, stable for the call.
        self.session_id = str(int(hashlib.sha1(token.encode()).hexdigest()[:12], 16))
        #: Version of the last description written (0 before the first).
        self.version = 0
        self._last: bytes | None = None

    def stamp(self, sdp: SessionDescription, address: str, *, username: str = "-",
              session_name: str = "-") -> bytes:
        """``sdp`` with our ``o=`` and ``s=``; the version moves only when the rest changed."""
        addr_type = "IP6" if ":" in address else "IP4"
        body = sdp.replace(origin=Origin(username, self.session_id, 0, address, "IN", addr_type),
                           session_name=session_name)
        content = bytes(body)
        if content != self._last:
            self.version += 1
            self._last = content
        # Written once with version 0 to compare; the version goes into the o= line by text.
        marker = f" {self.session_id} 0 IN ".encode()
        return content.replace(marker, f" {self.session_id} {self.version} IN ".encode(), 1)


def scrub_sdp(body: bytes, address: str, *, origin: OriginWriter | None = None, username: str = "-",
              session_name: str = "-") -> bytes:
    """``body`` with the ``o=`` line and the ``s=`` line replaced.

    With ``origin`` (the writer of the side the SDP goes to) the ``o=`` line is entirely
    ours: session id and version of that side, nothing of the sender left.  Without it the
    sender's session id and version are kept (one-off use, no session to track).  A body
    that does not parse as SDP is returned unchanged for the caller to refuse or relay.
    """
    try:
        sdp = parse_sdp(body)
    except ProtocolError:
        return body
    if origin is not None:
        return origin.stamp(sdp, address, username=username, session_name=session_name)
    addr_type = "IP6" if ":" in address else "IP4"
    old = sdp.origin
    new_origin = Origin(username, old.session_id, old.session_version, address, old.net_type, addr_type)
    return bytes(sdp.replace(origin=new_origin, session_name=session_name))


# -- limits -------------------------------------------------------------------------------

def limit_rejection(limit: str, trunk: str, retry_after: int) -> tuple[int, str, tuple[tuple[str, str], ...]]:
    """The ``503`` for a call refused by a channel or CPS cap: status, phrase and headers.

    Never a silent drop: ``Retry-After`` tells a dialer when to come back (RFC 3261 §21.5.4)
    and ``Reason`` (RFC 3326) names the limit, so operators see which cap was hit.
    """
    text = f"{limit} limit reached on trunk {trunk}"
    return 503, "Service Unavailable", (
        ("Retry-After", str(max(1, retry_after))),
        ("Reason", f'SIP;cause=503;text="{text}"'),
    )
