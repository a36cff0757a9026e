"""Typed values of the headers that routing depends on: Via, CSeq, and numeric headers.

Name-addr headers (From, To, Contact, Route...) live in :mod:`.address`; the URI grammar in
:mod:`.uri`.  Each parser here takes one header value and either returns a frozen value or
raises :class:`~sipline.sip.errors.ParseError` naming the header and the fault.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace

from ..errors import ParseError
from ._scan import is_token
from .params import Params, lazy_params
from .uri import ACCEPT_HOST

__all__ = [
    "Via",
    "CSeq",
    "parse_via",
    "parse_cseq",
    "parse_uint",
    "parse_token_list",
    "MAX_CSEQ",
]

#: RFC 3261 §8.1.1.5: the sequence number MUST be less than 2**31.
MAX_CSEQ = 2**31 - 1

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
# via-parm      = sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol = protocol-name SLASH protocol-version SLASH transport
# sent-by       = host [ COLON port ]
# SLASH/COLON/SEMI allow surrounding LWS; folded lines arrive here already unfolded.
_VIA_RE = re.compile(
    rf"({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)"
    r"(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
    r"[ \t]*(;.*)?",
    re.DOTALL,
)
_HOSTNAME_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?")
_IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")


def _check_host(host: str, what: str) -> str:
    """Validate a sent-by host and return it without IPv6 brackets."""
    if host.startswith("["):
        inner = host[1:-1]
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise ParseError(f"{what}: bad IPv6 reference {host!r}", header=what) from None
        return inner
    if _IPV4_RE.fullmatch(host):
        if any(int(part) > 255 for part in host.split(".")):
            raise ParseError(f"{what}: bad IPv4 address {host!r}", header=what)
        return host
    if not _HOSTNAME_RE.fullmatch(host):
        raise ParseError(f"{what}: bad host {host!r}", header=what)
    return host


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value (RFC 3261 §20.42, §18.2.1 received, RFC 3581 rport)."""

    #: Transport, upper case ("UDP", "TCP", "TLS", "WS", "WSS", "SCTP"...).
    transport: str
    #: sent-by host; IPv6 without brackets.
    host: str
    #: sent-by port, None when absent (the transport's default applies).
    port: int | None = None
    params: Params = field(default_factory=Params)
    #: Protocol name and version, "SIP" and "2.0" for every compliant peer.
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        """The branch parameter (§8.1.1.7), the transaction key for RFC 3261 peers."""
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The received parameter added by the server that got the request."""
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value (RFC 3581), None if absent or still empty."""
        value = self.params.get("rport")
        if value is None or not value.isdigit():
            return None
        return int(value)

    @property
    def has_rport(self) -> bool:
        """True if the rport parameter is present (with or without a value)."""
        return "rport" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        value = self.params.get("ttl")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def sent_by(self) -> str:
        """host[:port] as it would appear on the wire."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def is_rfc3261(self) -> bool:
        """True if the branch carries the magic cookie, so branch matching applies.

        A branch that is the bare cookie carries no identifier (RFC 4475 §3.2.1 badbranch):
        such a request falls back to RFC 2543 matching rather than share a key with others.
        """
        branch = self.branch
        return branch is not None and len(branch) > 7 and branch.startswith("z9hG4bK")

    def with_param(self, name: str, value: str | None = None) -> Via:
        return replace(self, params=self.params.with_(name, value))

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{self.params}"


# parse_via's fast path builds Via values without the frozen dataclass __init__ (one
# object.__setattr__ per field); the regex has already checked every field.
_VIA_NEW = object.__new__
_VIA_SET = tuple(
    getattr(Via, name).__set__ for name in ("transport", "host", "port", "params", "protocol")
)


def _via(transport: str, host: str, port: int | None, params: Params, protocol: str) -> Via:
    """A :class:`Via` from parsed fields (same value as ``Via(...)``)."""
    via: Via = _VIA_NEW(Via)
    s_transport, s_host, s_port, s_params, s_protocol = _VIA_SET
    s_transport(via, transport)
    s_host(via, host)
    s_port(via, port)
    s_params(via, params)
    s_protocol(via, protocol)
    return via


# The shape nearly every Via has: "SIP/2.0/" transport SP host [":" port] and parameters
# without LWS whose values are tokens or hosts.  Host alternatives are exactly the IPv4 and
# hostname rules _check_host applies, so both paths accept the same values.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9])"
_FAST_VIA_RE = re.compile(
    r"SIP/2\.0/([A-Za-z]+) "
    rf"({_OCTET}(?:\.{_OCTET}){{3}}|{_HOSTNAME_RE.pattern})"
    r"(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9.!%*_+`'~-]+(?:=[A-Za-z0-9.!%*_+`'~:\[\]-]+)?)*)"
)


# The same shape checked in full, so that the Via can stay text until read: port in
# 1..65535 without leading zeros, and no branch flag without a value (the two checks the
# fast path above makes after matching).
_ACCEPT_VIA = re.compile(
    r"SIP/2\.0/([A-Za-z]+) "
    rf"({ACCEPT_HOST})"
    r"(?::([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    r"((?:;(?!(?i:branch)(?:;|\Z))[A-Za-z0-9.!%*_+`'~-]+(?:=[A-Za-z0-9.!%*_+`'~:\[\]-]+)?)*)"
).fullmatch
_NO_PARAMS = Params()


def parse_via(value: str) -> Via:
    """Parse one via-parm.  Raises ParseError naming what is wrong."""
    accepted = _ACCEPT_VIA(value)
    if accepted is not None:
        # Built at once: whoever validates a Via reads its branch and sent-by next.  Only
        # the parameters stay text until something other than ``get`` needs them.
        transport, host, port, params_text = accepted.groups()
        return _via(transport.upper(), host, int(port) if port is not None else None,
                    lazy_params(params_text) if params_text else _NO_PARAMS, "SIP/2.0")
    fast = _FAST_VIA_RE.fullmatch(value)
    if fast is not None:
        transport, host, port, params_text = fast.groups()
        port_num = int(port) if port is not None else None
        if port_num is None or 0 < port_num < 65536:
            items: list[tuple[str, str | None]] = []
            if params_text:
                for piece in params_text[1:].split(";"):
                    name, eq, val = piece.partition("=")
                    items.append((name, val if eq else None))
            fast_params = Params(tuple(items))
            if "branch" not in fast_params or fast_params.get("branch"):
                return _via(transport.upper(), host, port_num, fast_params, "SIP/2.0")
    m = _VIA_RE.fullmatch(value)
    if m is None:
        raise ParseError(f"malformed Via value {value[:80]!r}", header="Via")
    name, version, transport, host, port, params = m.groups()
    host = _check_host(host, "Via")
    port_num = None
    if port is not None:
        port_num = int(port)
        if not 0 < port_num < 65536:
            raise ParseError(f"Via port {port} out of range", header="Via")
    try:
        parsed = Params.parse(params) if params else Params()
    except ParseError as exc:
        raise ParseError(f"Via: {exc.reason}", header="Via") from None
    if "branch" in parsed and not parsed.get("branch"):
        raise ParseError("Via branch parameter without a value", header="Via")
    if name.upper() == "SIP" and version == "2.0":
        protocol = "SIP/2.0"
    else:
        protocol = f"{name}/{version}"
    return Via(transport.upper(), host, port_num, parsed, protocol)


@dataclass(frozen=True, slots=True)
class CSeq:
    """The CSeq header (RFC 3261 §20.16): sequence number and method."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


# The usual shape: up to nine digits (always below 2**31) SP a method of letters.  Its
# CSeq is built without the frozen dataclass __init__, as _via does.
_FAST_CSEQ = re.compile(r"([0-9]{1,9}) ([A-Za-z]+)").fullmatch
_CSEQ_SEQ = CSeq.__dict__["seq"].__set__
_CSEQ_METHOD = CSeq.__dict__["method"].__set__


def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; the number must fit in 31 bits (§8.1.1.5)."""
    fast = _FAST_CSEQ(value)
    if fast is not None:
        cseq: CSeq = _VIA_NEW(CSeq)
        _CSEQ_SEQ(cseq, int(fast[1]))
        _CSEQ_METHOD(cseq, fast[2])
        return cseq
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or not parts[0].isascii():
        raise ParseError(f"malformed CSeq {value[:60]!r}", header="CSeq")
    if len(parts[0]) > 10 or int(parts[0]) > MAX_CSEQ:
        raise ParseError(f"CSeq number {parts[0][:20]} exceeds 2**31-1", header="CSeq")
    if not is_token(parts[1]):
        raise ParseError(f"CSeq method {parts[1]!r} is not a token", header="CSeq")
    return CSeq(int(parts[0]), parts[1])


def parse_uint(value: str, header: str, maximum: int | None = None, clamp: bool = False) -> int:
    """Parse a 1*DIGIT header value.

    With ``clamp``, values above *maximum* become *maximum* (RFC 3261 §20.19 tells us to read
    oversized delta-seconds as 2**32-1); otherwise they are refused.
    """
    text = value.strip()
    if not text or not text.isdigit() or not text.isascii():
        raise ParseError(f"{header} is not a number: {value[:40]!r}", header=header)
    if len(text) > 20 or (maximum is not None and int(text) > maximum):
        if clamp and maximum is not None:
            return maximum
        raise ParseError(f"{header} value {text[:20]} too large", header=header)
    return int(text)


def parse_token_list(values: list[str], header: str) -> tuple[str, ...]:
    """Option tags or methods from list header values (Require, Supported, Allow...)."""
    out = []
    for value in values:
        if not is_token(value):
            raise ParseError(f"{header}: {value[:40]!r} is not a token", header=header)
        out.append(value)
    return tuple(out)
