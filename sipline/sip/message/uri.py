"""SIP, SIPS and tel URIs (RFC 3261 §19.1 and §25.1, RFC 3966, RFC 5118).

Every request is routed on a URI, so this module is on the hot path of a proxy and is also the
first thing a hostile peer gets to exercise.  Two consequences shape it:

* Parsing is strict and complete for ``sip:``/``sips:``: a URI that parses can be re-emitted and
  compared without surprises later in the stack.  Other schemes are kept as opaque text
  (:class:`AbsoluteURI`) after a syntax check, because deciding whether to answer 416 is
  policy, not syntax.
* Parsing is fast in the common case: one precompiled regular expression recognises the
  ``sip:user@host:port;params`` shape and only unusual URIs (escapes, IPv6, headers, a user
  part with ``;`` or ``?``) take the general scanner.

Values keep their spelling: the user part, parameters and headers are stored escaped, exactly
as written, so a proxy forwards what it received byte for byte.  Comparison
(:meth:`SipURI.equivalent`) normalises escapes and case as §19.1.4 demands instead.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote as _pct_decode

from ..errors import ParseError, UsageError
from ._lazy import LazyValue, install_fields
from .params import Params

__all__ = [
    "URI",
    "SipURI",
    "TelURI",
    "AbsoluteURI",
    "parse_uri",
    "escape_user",
]

# --------------------------------------------------------------------------------------------
# Character classes (RFC 3261 §25.1)
#
# alphanum     = ALPHA / DIGIT
# mark         = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
# unreserved   = alphanum / mark
# reserved     = ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+" / "$" / ","
# escaped      = "%" HEXDIG HEXDIG
# user         = 1*( unreserved / escaped / user-unreserved )
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
# password     = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
# paramchar    = param-unreserved / unreserved / escaped
# param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
# hnv-unreserved   = "[" / "]" / "/" / "?" / ":" / "+" / "$"
# --------------------------------------------------------------------------------------------
_ALPHANUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_UNRESERVED = _ALPHANUM + "-_.!~*'()"
_RESERVED = frozenset(";/?:@&=+$,")
_USER_CHARS = frozenset(_UNRESERVED + "&=+$,;?/")
_PASSWORD_CHARS = frozenset(_UNRESERVED + "&=+$,")
_PARAM_CHARS = frozenset(_UNRESERVED + "[]/:&+$")
_HEADER_CHARS = frozenset(_UNRESERVED + "[]/?:+$")
# absoluteURI = scheme ":" ( hier-part / opaque-part ); both are runs of uric (reserved /
# unreserved / escaped).  "[" and "]" are admitted for IPv6 literals (RFC 2732).
_URIC_CHARS = frozenset(_UNRESERVED + "".join(_RESERVED) + "[]")

_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")

# IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
_IPV4 = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")
# hostname    = *( domainlabel "." ) toplabel [ "." ]
# domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum
# toplabel    = ALPHA / ALPHA *( alphanum / "-" ) alphanum
_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?"
)
# RFC 5118 §4.10: RFC 3261 inherited RFC 2373's IPv6 ABNF, which derives three colons before
# an embedded IPv4 address ("2001:db8:::192.0.2.1") and not two.  Accept the 3-colon
# spelling by rewriting it to the standard 2-colon form before the stdlib validates it.
_THREE_COLON = re.compile(r"((?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?):::([0-9.]+)")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")

# Fast path: sip/sips, a plain user, a hostname or IPv4 host, optional port, plain params.
# Anything it does not match (escapes, IPv6, headers, exotic user characters, upper-case
# scheme) goes through the general parser, which also produces the error messages.
_FAST_SIP = re.compile(
    r"(sips?):(?:([A-Za-z0-9_.!~*'()&=+$,-]+)@)?([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9_.!~*'()-]+(?:=[A-Za-z0-9_.!~*'()-]+)?)*)"
)
# The hosts the fast path accepts without a second look: IPv4address whose octets are at
# most 255 (1*3DIGIT, leading zeros allowed as in _check_host) or hostname.  Anything else
# goes through _check_host for the error message.
_OCTET = r"(?:[01]?[0-9]?[0-9]|2[0-4][0-9]|25[0-5])"
_FAST_HOST = re.compile(
    rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
    r"|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?"
)

# RFC 3966 §3:
# global-number-digits = "+" *phonedigit DIGIT *phonedigit
# local-number-digits  = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex
# phonedigit = DIGIT / visual-separator; phonedigit-hex = HEXDIG / "*" / "#" / visual-separator
# visual-separator = "-" / "." / "(" / ")"
# pname = 1*( alphanum / "-" )
_TEL_GLOBAL = re.compile(r"\+[0-9().-]*[0-9][0-9().-]*")
_TEL_LOCAL = re.compile(r"[0-9A-Fa-f*#().-]*[0-9A-Fa-f*#][0-9A-Fa-f*#().-]*")
_TEL_PNAME = re.compile(r"[A-Za-z0-9-]+")
_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")

# ttl = 1*3DIGIT ; 0 to 255
_TTL = re.compile(r"[0-9]{1,3}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")


def _check_chars(text: str, allowed: frozenset[str], what: str, uri: str) -> None:
    """Raise ParseError unless *text* is made of *allowed* characters and ``%HH`` escapes."""
    if allowed.issuperset(text):
        return
    if "%" in text:
        if _BAD_ESCAPE.search(text):
            raise ParseError(f"bad %-escape in {what} of URI {uri[:80]!r}")
        rest = _ESCAPE.sub("", text)
    else:
        rest = text
    for ch in rest:
        if ch not in allowed:
            raise ParseError(f"invalid character {ch!r} in {what} of URI {uri[:80]!r}")


def _escape(text: str, allowed: frozenset[str]) -> str:
    """Percent-encode what *allowed* does not admit, keeping existing valid escapes."""
    if allowed.issuperset(text) or ("%" in text and not _BAD_ESCAPE.search(text)
                                    and allowed.issuperset(_ESCAPE.sub("", text))):
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in allowed:
            out.append(ch)
        elif ch == "%" and _ESCAPE.match(text, i):
            out.append(text[i:i + 3])
            i += 3
            continue
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
        i += 1
    return "".join(out)


def escape_user(raw: str) -> str:
    """Escape an unescaped user name (e.g. from configuration) for use as ``SipURI.user``.

    Unlike rendering, this escapes ``%`` too: the input is plain text, not URI text.
    """
    return _escape(raw.replace("%", "%25"), _USER_CHARS)


def _normalize(text: str) -> str:
    """Canonical form for comparison (§19.1.4): decode escapes of non-reserved characters.

    Escapes of reserved characters keep their meaning as data, so they stay escaped (with
    upper-case hex so that ``%3a`` and ``%3A`` compare equal).
    """
    if "%" not in text:
        return text

    def _sub(m: re.Match[str]) -> str:
        ch = chr(int(m.group(0)[1:], 16))
        return m.group(0).upper() if ch in _RESERVED or ch == "%" else ch

    return _ESCAPE.sub(_sub, text)


def _check_ipv6(addr: str, uri: str) -> None:
    """Validate the inside of an IPv6reference (RFC 3261 §25.1, RFC 5118)."""
    if not addr or not _IPV6_CHARS.issuperset(addr):
        raise ParseError(f"bad IPv6 reference [{addr[:60]}] in URI {uri[:80]!r}")
    m = _THREE_COLON.fullmatch(addr)
    candidate = f"{m.group(1)}::{m.group(2)}" if m else addr
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        raise ParseError(f"bad IPv6 reference [{addr[:60]}] in URI {uri[:80]!r}") from None


def _check_host(host: str, uri: str) -> None:
    """Validate a non-bracketed host: hostname or IPv4address."""
    if not host:
        raise ParseError(f"empty host in URI {uri[:80]!r}")
    m = _IPV4.fullmatch(host)
    if m:
        if any(int(octet) > 255 for octet in m.groups()):
            raise ParseError(f"bad IPv4 address {host!r} in URI {uri[:80]!r}")
        return
    if not _HOSTNAME.fullmatch(host):
        raise ParseError(f"invalid host {host[:60]!r} in URI {uri[:80]!r}")


def _parse_port(text: str, uri: str) -> int:
    # port = 1*DIGIT; we also bound it to the 16-bit range every transport uses.
    if not text or not text.isascii() or not text.isdigit() or len(text.lstrip("0")) > 5:
        raise ParseError(f"bad port {text[:20]!r} in URI {uri[:80]!r}")
    port = int(text.lstrip("0") or "0")  # int() refuses over 4300 digits
    if port > 65535:
        raise ParseError(f"bad port {text!r} in URI {uri[:80]!r}")
    return port


def _host_key(host: str) -> str | ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Comparison key: IP literals by value (RFC 5954 §4), names case-insensitively."""
    if ":" in host:
        m = _THREE_COLON.fullmatch(host)
        return ipaddress.IPv6Address(f"{m.group(1)}::{m.group(2)}" if m else host)
    if _IPV4.fullmatch(host):
        return ipaddress.IPv4Address(".".join(str(int(o)) for o in host.split(".")))
    return host.lower()


@dataclass(frozen=True, slots=True)
class SipURI:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1.1).

    ``user``, ``password``, parameter values and headers hold the *escaped* text as written;
    ``host`` holds an IPv6 address without its brackets.  Build from unescaped text with
    :func:`escape_user`.
    """

    scheme: str  # "sip" | "sips", lower-cased
    user: str | None
    password: str | None
    host: str
    port: int | None
    params: Params = field(default_factory=Params)
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Cheap invariants only: parse_uri has already validated the syntax in depth.
        if self.scheme not in ("sip", "sips"):
            raise UsageError(f"SipURI scheme must be 'sip' or 'sips', not {self.scheme!r}")
        if not self.host:
            raise UsageError("SipURI needs a host")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise UsageError(f"port out of range: {self.port}")

    # -- parameters with a meaning in RFC 3261 ------------------------------------------
    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        value = self.params.get("ttl")
        return int(value) if value is not None and _TTL.fullmatch(value) else None

    @property
    def method(self) -> str | None:
        return self.params.get("method")

    @property
    def user_param(self) -> str | None:
        """The ``user=`` URI parameter (``phone``, ``ip``, ``dialstring`` ...)."""
        return self.params.get("user")

    # -- host -------------------------------------------------------------------------
    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def is_ip_host(self) -> bool:
        return self.is_ipv6 or _IPV4.fullmatch(self.host) is not None

    @property
    def host_port(self) -> str:
        """``host[:port]`` with IPv6 brackets, as in a Via sent-by or a Host-like field."""
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else _pct_decode(self.user, errors="replace")

    def replace(self, **changes: Any) -> SipURI:
        """A copy with the given fields changed (``uri.replace(port=5070)``)."""
        return replace(self, **changes)

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(_escape(self.user, _USER_CHARS))
            if self.password is not None:
                parts += [":", _escape(self.password, _PASSWORD_CHARS)]
            parts.append("@")
        parts.append(self.host_port)
        if self.params:
            for name, value in self.params:
                parts += [";", _escape(name, _PARAM_CHARS)]
                if value is not None:
                    parts += ["=", _escape(value, _PARAM_CHARS)]
        if self.headers:
            parts.append("?")
            parts.append("&".join(
                f"{_escape(k, _HEADER_CHARS)}={_escape(v, _HEADER_CHARS)}" for k, v in self.headers
            ))
        return "".join(parts)

    def equivalent(self, other: object) -> bool:
        """URI equality as defined by RFC 3261 §19.1.4 (not the dataclass ``==``).

        Not transitive, by design of the RFC: ``sip:a@b`` matches both ``sip:a@b;x=1`` and
        ``sip:a@b;x=2``, which do not match each other.
        """
        if not isinstance(other, SipURI) or self.scheme != other.scheme:
            return False
        # userinfo is case-sensitive; escapes of unreserved characters are not significant.
        if not _same_opt(self.user, other.user) or not _same_opt(self.password, other.password):
            return False
        if self.port != other.port or _host_key(self.host) != _host_key(other.host):
            return False
        mine, theirs = _param_map(self.params), _param_map(other.params)
        for name in mine.keys() | theirs.keys():
            if name in mine and name in theirs:
                if mine[name] != theirs[name]:
                    return False
            elif name in _MUST_MATCH_PARAMS:
                return False
        return _header_key(self.headers) == _header_key(other.headers)


# A URI parameter from this set present in only one of two URIs makes them differ (§19.1.4).
_MUST_MATCH_PARAMS = frozenset({"user", "ttl", "method", "maddr", "transport"})


def _same_opt(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or _normalize(a) == _normalize(b)


def _param_map(params: Params) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for name, value in params:
        key = _normalize(name).lower()
        if key not in result:  # the first occurrence wins, as in Params.get
            result[key] = None if value is None else _normalize(value).lower()
    return result


def _header_key(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return sorted((_normalize(k).lower(), _normalize(v).lower()) for k, v in headers)


@dataclass(frozen=True, slots=True)
class TelURI:
    """A ``tel:`` URI (RFC 3966); ``number`` keeps its visual separators as written."""

    number: str
    params: Params = field(default_factory=Params)

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def phone_context(self) -> str | None:
        return self.params.get("phone-context")

    def __str__(self) -> str:
        return f"tel:{self.number}{self.params}"

    def equivalent(self, other: object) -> bool:
        """RFC 3966 §4: separators ignored, case-insensitive, same set of parameters."""
        if not isinstance(other, TelURI) or self.is_global != other.is_global:
            return False
        if _tel_digits(self.number) != _tel_digits(other.number):
            return False
        return _tel_param_map(self.params) == _tel_param_map(other.params)


def _tel_digits(text: str) -> str:
    return _normalize(text).translate(_VISUAL_SEPARATORS).lower()


def _tel_param_map(params: Params) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for name, value in params:
        key = name.lower()
        if value is not None:
            value = _normalize(value).lower()
            # ext, isdn-subaddress and a numeric phone-context compare digit by digit.
            if key in ("ext", "isdn-subaddress") or (key == "phone-context" and value[:1] == "+"):
                value = value.translate(_VISUAL_SEPARATORS)
        result.setdefault(key, value)
    return result



# Parser-built SipURIs skip the dataclass __init__/__post_init__: the parser has already
# validated every field far more strictly than the invariants checked there, and the frozen
# __init__ (one object.__setattr__ per field) is a measurable share of the proxy fast path.
_SIP_URI_NEW = object.__new__
_SIP_URI_SET = tuple(
    getattr(SipURI, name).__set__
    for name in ("scheme", "user", "password", "host", "port", "params", "headers")
)


def _sip_uri(scheme: str, user: str | None, password: str | None, host: str, port: int | None,
             params: Params, headers: tuple[tuple[str, str], ...] = ()) -> SipURI:
    """A :class:`SipURI` from fields :func:`parse_uri` has validated (no re-validation)."""
    uri: SipURI = _SIP_URI_NEW(SipURI)
    s_scheme, s_user, s_password, s_host, s_port, s_params, s_headers = _SIP_URI_SET
    s_scheme(uri, scheme)
    s_user(uri, user)
    s_password(uri, password)
    s_host(uri, host)
    s_port(uri, port)
    s_params(uri, params)
    s_headers(uri, headers)
    return uri


_NO_PARAMS = Params()


# -- URIs kept as text ------------------------------------------------------------------------
#
# A name-addr fast path (From, To, Route...) checks the whole value with one regular
# expression and keeps the URI as text until a field of it is read.  SIP_URI_ACCEPT is the
# part of that expression for the URI: a subset of what parse_uri accepts on its own fast
# path, with every check parse_uri makes afterwards folded into the pattern -- the host
# grammar (_FAST_HOST), the port range, and the known parameters: ttl and maddr are left to
# parse_uri, and values are tokens (transport, method, user must be).
#   port 0-65535, leading zeros allowed as parse_uri does
_ACCEPT_PORT = r"(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
#   ACCEPT_HOST: _FAST_HOST with each domainlabel written as alphanumeric runs joined by
#   hyphen runs, possessively: the same language without the backtracking.
ACCEPT_HOST = (
    rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
    r"|(?:[A-Za-z0-9]++(?:-++[A-Za-z0-9]++)*+\.)*[A-Za-z][A-Za-z0-9]*+(?:-++[A-Za-z0-9]++)*+\.?"
)
SIP_URI_ACCEPT = (
    r"sips?:(?:[A-Za-z0-9_.!~*'()&=+$,-]+@)?"
    rf"(?:{ACCEPT_HOST})"
    rf"(?::{_ACCEPT_PORT})?"
    r"(?:;(?!(?i:ttl|maddr)=)[A-Za-z0-9_.!~*'()-]+(?:=[A-Za-z0-9_.!~*'-]+)?)*"
)
_SIP_URI_SLOTS = tuple(
    SipURI.__dict__[name] for name in ("scheme", "user", "password", "host", "port", "params", "headers")
)
_HOST_SLOT = SipURI.__dict__["host"]


class _LazySipURI(LazyValue, SipURI):
    """A :class:`SipURI` whose text (matched by :data:`SIP_URI_ACCEPT`) waits in ``host``."""

    __slots__ = ()

    def _load(self) -> None:
        parsed = parse_uri(_HOST_SLOT.__get__(self))
        for slot in _SIP_URI_SLOTS:
            slot.__set__(self, slot.__get__(parsed))
        object.__setattr__(self, "__class__", SipURI)


install_fields(_LazySipURI, SipURI, ("scheme", "user", "password", "host", "port", "params", "headers"))


def lazy_sip_uri(text: str) -> SipURI:
    """A :class:`SipURI` parsed on first use; *text* must match :data:`SIP_URI_ACCEPT`."""
    uri: SipURI = _SIP_URI_NEW(_LazySipURI)
    _HOST_SLOT.__set__(uri, text)
    return uri


@dataclass(frozen=True, slots=True)
class AbsoluteURI:
    """Any other scheme, kept as text: the proxy or UAS decides whether to answer 416."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"

    def equivalent(self, other: object) -> bool:
        """Scheme case-insensitively, the rest after escape normalisation (RFC 3986 §6.2.2)."""
        return (isinstance(other, AbsoluteURI) and self.scheme.lower() == other.scheme.lower()
                and _normalize(self.rest) == _normalize(other.rest))


URI = SipURI | TelURI | AbsoluteURI


def parse_uri(text: str) -> URI:
    """Parse a Request-URI or the URI inside a name-addr.  Raises ParseError.

    ``sip``/``sips`` URIs are validated completely; ``tel`` per RFC 3966; any other scheme
    only against the generic absoluteURI syntax.
    """
    m = _FAST_SIP.fullmatch(text)
    if m:
        # The regex has already checked the characters of every part; what is left is the
        # host grammar, the port range and the parameters RFC 3261 gives a syntax to.
        scheme, user, host, port_text, params_text = m.groups()
        if _FAST_HOST.fullmatch(host) is None:
            _check_host(host, text)  # raises, naming the fault
        port: int | None = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                port = _parse_port(port_text, text)  # raises
        params = _fast_sip_params(params_text, text) if params_text else _NO_PARAMS
        return _sip_uri(scheme, user, None, host, port, params)
    colon = text.find(":")
    if colon < 0:
        raise ParseError(f"URI has no scheme: {text[:80]!r}")
    scheme = text[:colon]
    if not _SCHEME.fullmatch(scheme):
        raise ParseError(f"invalid URI scheme {scheme[:40]!r} in {text[:80]!r}")
    rest = text[colon + 1:]
    if not rest:
        raise ParseError(f"nothing after the scheme in URI {text[:80]!r}")
    lowered = scheme.lower()
    if lowered in ("sip", "sips"):
        return _parse_sip(lowered, rest, text)
    if lowered == "tel":
        return _parse_tel(rest, text)
    _check_chars(rest, _URIC_CHARS, "body", text)
    return AbsoluteURI(scheme, rest)


def _parse_sip(scheme: str, rest: str, text: str) -> SipURI:
    # SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
    # userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
    # "@" is legal nowhere but as the end of userinfo, and user may contain ";" and "?", so
    # the userinfo must be cut off before looking for parameters or headers.
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1:]
        user, colon, pw = userinfo.partition(":")
        if not user:
            raise ParseError(f"empty user part in URI {text[:80]!r}")
        _check_chars(user, _USER_CHARS, "user part", text)
        if colon:
            _check_chars(pw, _PASSWORD_CHARS, "password", text)
            password = pw
    headers: tuple[tuple[str, str], ...] = ()
    q = rest.find("?")
    if q >= 0:
        rest, headers = rest[:q], _parse_headers(rest[q + 1:], text)
    params = Params()
    semi = rest.find(";")
    if semi >= 0:
        rest, params = rest[:semi], _parse_sip_params(rest[semi + 1:], text)
    host, port = _parse_hostport(rest, text)
    return _sip_uri(scheme, user, password, host, port, params, headers)


def _parse_hostport(text: str, uri: str) -> tuple[str, int | None]:
    # hostport = host [ ":" port ];  host = hostname / IPv4address / IPv6reference
    # IPv6reference = "[" IPv6address "]"
    if not text:
        raise ParseError(f"empty host in URI {uri[:80]!r}")
    if text[0] == "[":
        end = text.find("]")
        if end < 0:
            raise ParseError(f"bad IPv6 reference (no closing ']') in URI {uri[:80]!r}")
        host, tail = text[1:end], text[end + 1:]
        _check_ipv6(host, uri)
    else:
        host, colon, port_text = text.partition(":")
        if ":" in port_text:
            raise ParseError(f"IPv6 address without brackets in URI {uri[:80]!r}")
        _check_host(host, uri)
        tail = colon + port_text
    if not tail:
        return host, None
    if tail[0] != ":":
        raise ParseError(f"unexpected {tail[:20]!r} after host in URI {uri[:80]!r}")
    return host, _parse_port(tail[1:], uri)


def _fast_sip_params(text: str, uri: str) -> Params:
    """``;name[=value]...`` already matched by ``_FAST_SIP`` (valid, non-empty characters)."""
    pairs: list[tuple[str, str | None]] = []
    for piece in text[1:].split(";"):
        name, eq, value = piece.partition("=")
        if eq:
            _check_known_param(name.lower(), value, uri)
            pairs.append((name, value))
        else:
            pairs.append((name, None))
    return Params(tuple(pairs))


def _parse_sip_params(text: str, uri: str) -> Params:
    # uri-parameters = *( ";" uri-parameter )
    # uri-parameter  = transport-param / user-param / method-param / ttl-param / maddr-param
    #                  / lr-param / other-param
    # other-param    = pname [ "=" pvalue ];  pname = 1*paramchar;  pvalue = 1*paramchar
    pairs: list[tuple[str, str | None]] = []
    for piece in text.split(";"):
        name, eq, value = piece.partition("=")
        if not name:
            raise ParseError(f"empty URI parameter in {uri[:80]!r}")
        _check_chars(name, _PARAM_CHARS, "parameter name", uri)
        if not eq:
            pairs.append((name, None))
            continue
        if not value:
            raise ParseError(f"URI parameter {name!r} has an empty value in {uri[:80]!r}")
        _check_chars(value, _PARAM_CHARS, f"parameter {name!r}", uri)
        _check_known_param(name.lower(), value, uri)
        pairs.append((name, value))
    return Params(tuple(pairs))


def _check_known_param(name: str, value: str, uri: str) -> None:
    """Stricter syntax for the parameters RFC 3261 gives a meaning to."""
    if name == "ttl":
        # ttl = 1*3DIGIT ; 0 to 255
        if not _TTL.fullmatch(value) or int(value) > 255:
            raise ParseError(f"bad ttl parameter {value!r} in URI {uri[:80]!r}")
    elif name == "maddr":
        # maddr-param = "maddr=" host
        if value.startswith("["):
            if not value.endswith("]"):
                raise ParseError(f"bad maddr parameter {value!r} in URI {uri[:80]!r}")
            _check_ipv6(value[1:-1], uri)
        else:
            _check_host(value, uri)
    elif name in ("transport", "method", "user") and not _TOKEN_RE.fullmatch(value):
        # transport-param / method-param / user-param values are tokens.
        raise ParseError(f"bad {name} parameter {value!r} in URI {uri[:80]!r}")


def _parse_headers(text: str, uri: str) -> tuple[tuple[str, str], ...]:
    # headers = "?" header *( "&" header )
    # header  = hname "=" hvalue
    # hname   = 1*( hnv-unreserved / unreserved / escaped )
    # hvalue  = *( hnv-unreserved / unreserved / escaped )
    result: list[tuple[str, str]] = []
    for piece in text.split("&"):
        name, eq, value = piece.partition("=")
        if not name or not eq:
            raise ParseError(f"bad URI header {piece[:40]!r} in {uri[:80]!r}")
        _check_chars(name, _HEADER_CHARS, "header name", uri)
        _check_chars(value, _HEADER_CHARS, f"header {name!r}", uri)
        result.append((name, value))
    return tuple(result)


def _parse_tel(rest: str, text: str) -> TelURI:
    # telephone-uri = "tel:" telephone-subscriber
    # global-number = global-number-digits *par
    # local-number  = local-number-digits *par context *par
    # par = parameter / extension / isdn-subaddress;  parameter = ";" pname ["=" pvalue]
    number, _, params_text = rest.partition(";")
    is_global = number.startswith("+")
    if not (_TEL_GLOBAL if is_global else _TEL_LOCAL).fullmatch(number):
        raise ParseError(f"bad telephone number {number[:40]!r} in URI {text[:80]!r}")
    pairs: list[tuple[str, str | None]] = []
    if params_text or rest.endswith(";"):
        for piece in params_text.split(";"):
            name, eq, value = piece.partition("=")
            if not _TEL_PNAME.fullmatch(name):
                raise ParseError(f"bad tel URI parameter {piece[:40]!r} in {text[:80]!r}")
            if eq:
                if not value:
                    raise ParseError(f"tel URI parameter {name!r} has an empty value")
                _check_chars(value, _PARAM_CHARS, f"parameter {name!r}", text)
            pairs.append((name, value if eq else None))
    params = Params(tuple(pairs))
    if not is_global and "phone-context" not in params:
        # context = ";phone-context=" descriptor -- mandatory for local numbers (§5.1.5)
        raise ParseError(f"local tel URI without phone-context: {text[:80]!r}")
    return TelURI(number, params)
