"""Digest challenge and credential header values (RFC 3261 §25.1, RFC 7616 §3.3-§3.4).

The four authentication headers -- WWW-Authenticate and Proxy-Authenticate carrying
challenges, Authorization and Proxy-Authorization carrying credentials -- share one
grammar: an auth-scheme followed by comma-separated ``name=value`` pairs, where a value is a
token or a quoted-string.  This module turns those *value strings* into frozen dataclasses
and back; it knows nothing about the surrounding message, so the message model can call it
lazily when someone actually asks for the typed value.

Parsing is strict about syntax (an unterminated quote, a missing ``=``, a duplicated
parameter or a missing mandatory parameter is a :class:`ParseError` naming the fault) but
deliberately tolerant about *quoting*: several deployed user agents quote ``qop``/``nc``/
``algorithm`` or leave ``response`` bare.  The value means the same either way, so refusing
it would only break interoperability without protecting anything.

Strategy: one small scanner walks the string once and yields ``(scheme, params)`` groups;
the Digest-specific layer then maps parameter names onto dataclass fields.  A comma followed
by ``token SP token =`` starts a new challenge, exactly the HTTP rule for a header value that
combines several challenges.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass

from sipline.sip.errors import ParseError, UsageError

__all__ = [
    "Challenge",
    "Credentials",
    "parse_challenges",
    "parse_credentials",
]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-.!%*_+`'~")
# LWS after header unfolding: SP / HTAB.  A raw CR or LF inside a value is never valid.
_WS = " \t"
_HEX = frozenset("0123456789abcdefABCDEF")
# The scanner's hot loops as regexes (same sets as above): one C call per token instead of
# a Python step per character -- the Authorization of every REGISTER goes through here.
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_WS_RE = re.compile(r"[ \t]*")
# A quoted-string without quoted-pairs or controls, the form every client sends; anything
# else takes the character loop, which explains what is wrong.
_SIMPLE_QUOTED_RE = re.compile(r'"([^"\\\x00-\x08\x0a-\x1f\x7f]*)"')
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# The credentials every client sends, as one regex walk: ``Digest`` SP, then
# ``name=value`` pairs (token or simple quoted-string) separated by commas.  Anything it
# does not match -- quoted-pairs, a second scheme, a syntax error -- takes the scanner,
# which accepts the same language and names the fault.
_FAST_PARAM = r"""([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*=[ \t]*(?:"([^"\\\x00-\x08\x0a-\x1f\x7f]*)"|([A-Za-z0-9\-.!%*_+`'~]+))"""
_FAST_CREDENTIALS_RE = re.compile(
    rf"[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+{_FAST_PARAM}(?:[ \t]*,[ \t]*{_FAST_PARAM})*[ \t]*"
)
_FAST_PARAM_RE = re.compile(rf"[ \t]*,?[ \t]*{_FAST_PARAM}")

_Param = tuple[str, str]


def _is_token(text: str) -> bool:
    return bool(text) and all(ch in _TOKEN_CHARS for ch in text)


def _has_control(text: str) -> bool:
    # Control characters other than HTAB can never be written back safely: CR/LF would
    # inject a header and NUL truncates in C peers.
    return _CONTROL_RE.search(text) is not None


def _quote(text: str) -> str:
    # quoted-pair only needs to protect the two characters that end or escape the string.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render(name: str, value: str, *, quoted: bool) -> str:
    if quoted or not _is_token(value):
        return f"{name}={_quote(value)}"
    return f"{name}={value}"


class _Scanner:
    """Cursor over one header value; every failure names the offset and the expectation."""

    __slots__ = ("text", "pos", "header")

    def __init__(self, text: str, header: str) -> None:
        self.text = text
        self.pos = 0
        self.header = header

    def fail(self, what: str) -> ParseError:
        return ParseError(f"{self.header}: {what} at offset {self.pos}", header=self.header)

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> bool:
        start = self.pos
        end = _WS_RE.match(self.text, start).end()  # type: ignore[union-attr]  # always matches
        self.pos = end
        return end > start

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.fail(f"expected {char!r}")
        self.pos += 1

    def token(self, what: str) -> str:
        found = _TOKEN_RE.match(self.text, self.pos)
        if found is None:
            raise self.fail(f"expected {what}")
        self.pos = found.end()
        return found.group()

    # quoted-string = DQUOTE *(qdtext / quoted-pair) DQUOTE
    # quoted-pair   = "\" (%x00-09 / %x0B-0C / %x0E-7F)    (controls refused, see _has_control)
    def quoted(self) -> str:
        simple = _SIMPLE_QUOTED_RE.match(self.text, self.pos)
        if simple is not None:
            self.pos = simple.end()
            return simple.group(1)
        self.expect('"')
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                self.pos += 1
                if self.pos >= len(text):
                    break
                ch = text[self.pos]
                if ord(ch) > 0x7F:
                    raise self.fail("non-ASCII character after backslash")
            if _has_control(ch):
                raise self.fail("control character in quoted-string")
            out.append(ch)
            self.pos += 1
        raise self.fail("unterminated quoted-string")

    def value(self) -> str:
        if self.peek() == '"':
            return self.quoted()
        return self.token("parameter value (token or quoted-string)")


# challenge   = auth-scheme 1*SP auth-param *( COMMA auth-param )
# auth-param  = token EQUAL ( token / quoted-string )
# header      = challenge *( COMMA challenge )      (a scheme alone is allowed for non-Digest)
def _parse_groups(text: str, header: str) -> list[tuple[str, list[_Param]]]:
    s = _Scanner(text, header)
    s.skip_ws()
    groups: list[tuple[str, list[_Param]]] = []
    scheme = s.token("auth-scheme")
    while True:
        params: list[_Param] = []
        gap = s.skip_ws()
        if not s.at_end() and s.peek() != ",":
            if not gap:
                raise s.fail("expected whitespace after auth-scheme")
            name = s.token("parameter name")
            s.skip_ws()
            params.append(_param_value(s, name))
        following: str | None = None
        while not s.at_end():
            s.expect(",")
            s.skip_ws()
            name = s.token("parameter name or auth-scheme")
            mark = s.pos
            s.skip_ws()
            if s.peek() == "=":
                if not params:
                    # "Scheme, a=b": a bare scheme cannot take parameters after a comma.
                    raise s.fail("expected whitespace after auth-scheme, not ','")
                params.append(_param_value(s, name))
            else:
                s.pos = mark
                following = name
                break
        groups.append((scheme, params))
        if following is None:
            return groups
        scheme = following


def _fast_groups(text: str) -> list[tuple[str, list[_Param]]] | None:
    """:func:`_parse_groups` for one scheme with simple parameters; None for anything else."""
    whole = _FAST_CREDENTIALS_RE.fullmatch(text)
    if whole is None:
        return None
    params: list[_Param] = []
    pos = whole.end(1)
    match = _FAST_PARAM_RE.match
    end = len(text)
    while pos < end:
        found = match(text, pos)
        if found is None:  # only trailing whitespace is left
            break
        name, quoted, token = found.groups()
        params.append((name.lower(), token if quoted is None else quoted))
        pos = found.end()
    return [(whole.group(1), params)]


def _param_value(s: _Scanner, name: str) -> _Param:
    s.expect("=")
    s.skip_ws()
    value = s.value()
    s.skip_ws()
    if not s.at_end() and s.peek() != ",":
        raise s.fail("expected ',' after parameter")
    return name.lower(), value


class _Fields:
    """Case-insensitive parameter bag that refuses duplicates and tracks what was consumed."""

    __slots__ = ("_items", "_order", "_header")

    def __init__(self, params: list[_Param], header: str) -> None:
        self._items: dict[str, str] = {}
        self._order: list[str] = []
        self._header = header
        for name, value in params:
            if name in self._items:
                raise ParseError(f"{header}: duplicate parameter {name!r}", header=header)
            self._items[name] = value
            self._order.append(name)

    def pop(self, name: str) -> str | None:
        return self._items.pop(name, None)

    def require(self, name: str) -> str:
        value = self._items.pop(name, None)
        if value is None:
            raise ParseError(f"{self._header}: missing {name!r} parameter", header=self._header)
        return value

    def boolean(self, name: str) -> bool:
        value = self._items.pop(name, None)
        if value is None:
            return False
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise ParseError(f"{self._header}: {name} must be true or false", header=self._header)
        return lowered == "true"

    def rest(self) -> tuple[_Param, ...]:
        return tuple((name, self._items[name]) for name in self._order if name in self._items)


def _check_values(owner: str, values: tuple[str | None, ...]) -> None:
    # One search over all of them first (this runs for every parsed Authorization); the
    # loop only runs to name the culprit.
    if not _has_control("".join(value for value in values if value is not None)):
        return
    for value in values:
        if value is not None and _has_control(value):
            raise UsageError(f"{owner}: control character in parameter value {value!r}")


def _check_extra(owner: str, extra: tuple[_Param, ...]) -> None:
    for name, value in extra:
        if not _is_token(name):
            raise UsageError(f"{owner}: extension parameter name {name!r} is not a token")
        _check_values(owner, (value,))


@dataclass(frozen=True, slots=True)
class Challenge:
    """One Digest challenge from WWW-Authenticate or Proxy-Authenticate (RFC 3261 §22.1).

    ``algorithm`` is None when the parameter was absent, which RFC 7616 §3.3 defines as MD5;
    keeping the absence visible lets a re-serialised challenge stay byte-compatible with
    RFC 2069 peers.  ``qop`` holds the offered options in the server's order, lower-cased.
    """

    realm: str  # RFC 7616 §3.3 realm: shown to users, selects the password
    nonce: str  # server-chosen, opaque to the client
    opaque: str | None = None  # echoed back unchanged by the client
    algorithm: str | None = None  # MD5 when absent
    qop: tuple[str, ...] = ()  # qop-options: "auth", "auth-int"; empty = RFC 2069 mode
    stale: bool = False  # previous nonce expired but the digest was right: retry silently
    domain: tuple[str, ...] = ()  # protection space URIs (space-separated on the wire)
    userhash: bool = False  # RFC 7616 §3.4.4: the server accepts a hashed username
    extra: tuple[tuple[str, str], ...] = ()  # unknown auth-params, names lower-cased

    def __post_init__(self) -> None:
        _check_values("Challenge", (self.realm, self.nonce, self.opaque))
        tokens = self.qop if self.algorithm is None else (*self.qop, self.algorithm)
        for item in tokens:
            if not _is_token(item):
                raise UsageError(f"Challenge: {item!r} is not a token")
        for uri in self.domain:
            # Domain URIs travel space-separated inside one quoted-string.
            if uri.split() != [uri] or _has_control(uri):
                raise UsageError(f"Challenge: unusable domain URI {uri!r}")
        _check_extra("Challenge", self.extra)

    def __str__(self) -> str:
        parts = [_render("realm", self.realm, quoted=True)]
        if self.domain:
            parts.append(_render("domain", " ".join(self.domain), quoted=True))
        parts.append(_render("nonce", self.nonce, quoted=True))
        if self.opaque is not None:
            parts.append(_render("opaque", self.opaque, quoted=True))
        if self.stale:
            parts.append("stale=true")
        if self.algorithm is not None:
            parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(_render("qop", ",".join(self.qop), quoted=True))
        if self.userhash:
            parts.append("userhash=true")
        parts.extend(_render(name, value, quoted=False) for name, value in self.extra)
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Digest credentials from Authorization or Proxy-Authorization (RFC 3261 §22.2).

    ``nc`` is the nonce-count as an integer; it is rendered as the eight hex digits the
    grammar requires.  With ``userhash`` set, ``username`` holds H(user ":" realm).
    """

    username: str
    realm: str
    nonce: str
    uri: str  # digest-uri: the Request-URI as the client sent it
    response: str  # request-digest, lower-case hex
    algorithm: str | None = None  # MD5 when absent
    cnonce: str | None = None  # required with qop
    opaque: str | None = None
    qop: str | None = None  # the single option the client chose
    nc: int | None = None  # nonce-count, required with qop
    userhash: bool = False
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _check_values(
            "Credentials",
            (self.username, self.realm, self.nonce, self.uri, self.response, self.cnonce, self.opaque),
        )
        for item in (self.algorithm, self.qop):
            if item is not None and not _is_token(item):
                raise UsageError(f"Credentials: {item!r} is not a token")
        if self.nc is not None and not 0 <= self.nc <= 0xFFFFFFFF:
            raise UsageError(f"Credentials: nonce-count {self.nc} out of range")
        _check_extra("Credentials", self.extra)

    def __str__(self) -> str:
        parts = [
            _render("username", self.username, quoted=True),
            _render("realm", self.realm, quoted=True),
            _render("nonce", self.nonce, quoted=True),
            _render("uri", self.uri, quoted=True),
            _render("response", self.response, quoted=True),
        ]
        if self.algorithm is not None:
            parts.append(f"algorithm={self.algorithm}")
        if self.cnonce is not None:
            parts.append(_render("cnonce", self.cnonce, quoted=True))
        if self.opaque is not None:
            parts.append(_render("opaque", self.opaque, quoted=True))
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc:08x}")
        if self.userhash:
            parts.append("userhash=true")
        parts.extend(_render(name, value, quoted=False) for name, value in self.extra)
        return "Digest " + ", ".join(parts)


def _token_field(fields: _Fields, name: str, header: str) -> str | None:
    value = fields.pop(name)
    if value is not None and not _is_token(value):
        raise ParseError(f"{header}: {name} {value!r} is not a token", header=header)
    return value


def _challenge_from(params: list[_Param], header: str) -> Challenge:
    fields = _Fields(params, header)
    realm = fields.require("realm")
    nonce = fields.require("nonce")
    qop_raw = fields.pop("qop")
    qop: tuple[str, ...] = ()
    if qop_raw is not None:
        # qop-options = "qop" EQUAL LDQUOT qop-value *("," qop-value) RDQUOT
        qop = tuple(item.strip(_WS).lower() for item in qop_raw.split(","))
        if not all(_is_token(item) for item in qop):
            raise ParseError(f"{header}: malformed qop list {qop_raw!r}", header=header)
    domain_raw = fields.pop("domain")
    return Challenge(
        realm=realm,
        nonce=nonce,
        opaque=fields.pop("opaque"),
        algorithm=_token_field(fields, "algorithm", header),
        qop=qop,
        stale=fields.boolean("stale"),
        domain=tuple(domain_raw.split()) if domain_raw is not None else (),
        userhash=fields.boolean("userhash"),
        extra=fields.rest(),
    )


def _credentials_from(params: list[_Param], header: str) -> Credentials:
    fields = _Fields(params, header)
    username = fields.require("username")
    realm = fields.require("realm")
    nonce = fields.require("nonce")
    uri = fields.require("uri")
    response = fields.require("response")
    algorithm = _token_field(fields, "algorithm", header)
    qop = _token_field(fields, "qop", header)
    nc_raw = fields.pop("nc")
    nc: int | None = None
    if nc_raw is not None:
        # nonce-count = "nc" EQUAL 8LHEX
        if len(nc_raw) != 8 or not all(ch in _HEX for ch in nc_raw):
            raise ParseError(f"{header}: nc must be 8 hex digits, got {nc_raw!r}", header=header)
        nc = int(nc_raw, 16)
    cnonce = fields.pop("cnonce")
    if qop is not None and (cnonce is None or nc is None):
        raise ParseError(f"{header}: qop={qop} requires cnonce and nc", header=header)
    return Credentials(
        username=username,
        realm=realm,
        nonce=nonce,
        uri=uri,
        response=response,
        algorithm=algorithm,
        cnonce=cnonce,
        opaque=fields.pop("opaque"),
        qop=qop.lower() if qop is not None else None,
        nc=nc,
        userhash=fields.boolean("userhash"),
        extra=fields.rest(),
    )


def parse_challenges(value: str, *, header: str = "WWW-Authenticate") -> list[Challenge]:
    """Parse every Digest challenge in one WWW-/Proxy-Authenticate value.

    Challenges of other schemes are checked for syntax and skipped: a client that only speaks
    Digest must still be able to use the Digest challenge next to a Bearer one.  ``header``
    only decorates error messages.
    """
    return [
        _challenge_from(params, header)
        for scheme, params in _parse_groups(value, header)
        if scheme.lower() == "digest"
    ]


@functools.lru_cache(maxsize=512)
def parse_credentials(value: str, *, header: str = "Authorization") -> Credentials:
    """Parse one Authorization/Proxy-Authorization value carrying Digest credentials.

    SIP sends each set of credentials in its own header field, so a value combining several
    is malformed; so is any scheme other than Digest, which this core cannot verify.
    Results are memoised (the value is immutable text, the result a frozen dataclass): a
    registrar reads the credentials once to fetch the HA1 and again to verify them.
    """
    groups = _fast_groups(value)
    if groups is None:
        groups = _parse_groups(value, header)
    if len(groups) != 1:
        raise ParseError(f"{header}: more than one set of credentials in one value", header=header)
    scheme, params = groups[0]
    if scheme.lower() != "digest":
        raise ParseError(f"{header}: unsupported auth-scheme {scheme!r}", header=header)
    return _credentials_from(params, header)
