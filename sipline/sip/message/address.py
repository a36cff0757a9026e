"""Addresses: name-addr and addr-spec (RFC 3261 §20.10, §20.20, §20.39, §25.1).

From, To, Contact, Route, Record-Route, Reply-To, Refer-To and P-Asserted-Identity all carry the
same value: an optional display name, a URI, and header parameters.  The grammar has one trap
that decides how a whole dialog is identified, so it lives here once:

    a URI written *without* angle brackets ends at the first ``;`` -- what follows are header
    parameters (``tag``, ``expires`` ...), never URI parameters.

Hence ``sip:a@b;tag=1`` and ``<sip:a@b;tag=1>`` mean different things, and a URI containing
``;``, ``,`` or ``?`` must be written in angle brackets (§20).  :class:`NameAddr` renders
accordingly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ..errors import ParseError
from ._scan import TOKEN_CHARS, quote, split_commas
from .params import Params, lazy_params
from .uri import SIP_URI_ACCEPT, URI, lazy_sip_uri, parse_uri

__all__ = ["NameAddr", "parse_name_addr", "parse_name_addr_list"]

# LWS = [*WSP CRLF] 1*WSP ; a folded line continues with whitespace and means one space.
_FOLD = re.compile(r"[ \t]*\r?\n[ \t]+")
_WS = " \t"
# display-name = *(token LWS) / quoted-string
_TOKEN_SEQ = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+(?: [A-Za-z0-9.!%*_+`'~-]+)*")
_LWS_RUN = re.compile(r"[ \t]+")
# qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
# delta-seconds = 1*DIGIT
_DELTA = re.compile(r"[0-9]+")
_TOKEN_AND_WS = TOKEN_CHARS | frozenset(_WS)


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``[display-name] <uri> *(;param)`` or ``uri *(;param)``.

    ``display_name`` is decoded (no quotes, no backslash escapes); None when absent, ``""``
    for an explicit ``""``.  ``angle`` records the written form; rendering adds angle
    brackets whenever the grammar requires them, whatever ``angle`` says.
    """

    uri: URI
    display_name: str | None = None
    params: Params = field(default_factory=Params)
    angle: bool = True

    @property
    def tag(self) -> str | None:
        """The dialog-identifying ``tag`` parameter of From/To (§19.3)."""
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """The Contact ``expires`` parameter in seconds; None if absent.

        Very large values are returned as written; clamping is the registrar's policy.
        """
        value = self.params.get("expires")
        if value is None:
            return None
        if not _DELTA.fullmatch(value) or len(value) > 20:
            raise ParseError(f"bad expires parameter {value[:30]!r}", header="Contact")
        return int(value)

    @property
    def q(self) -> float | None:
        """The Contact ``q`` preference (0.0 to 1.0); None if absent."""
        value = self.params.get("q")
        if value is None:
            return None
        if not _QVALUE.fullmatch(value):
            raise ParseError(f"bad q parameter {value[:30]!r}", header="Contact")
        return float(value)

    def with_tag(self, tag: str) -> NameAddr:
        """A copy with ``tag`` set (a UAS adds its tag to To, §8.2.6.2)."""
        return replace(self, params=self.params.with_("tag", tag))

    def with_params(self, items: Iterable[tuple[str, str | None]] = (), /,
                    **updates: str | None) -> NameAddr:
        """A copy with parameters set (None for a flag), in place if present, else appended.

        Names that are not Python identifiers (``+sip.instance``) go in *items*.
        """
        params = self.params
        for name, value in (*items, *updates.items()):
            params = params.with_(name, value)
        return replace(self, params=params)

    def without_param(self, name: str) -> NameAddr:
        return replace(self, params=self.params.without(name))

    def __str__(self) -> str:
        uri = str(self.uri)
        if self.display_name is None:
            if self.angle or any(c in uri for c in ";,?"):
                uri = f"<{uri}>"
            return f"{uri}{self.params}"
        name = self.display_name
        if not _TOKEN_SEQ.fullmatch(name):
            name = quote(name)
        return f"{name} <{uri}>{self.params}"



# Parser-built addresses skip the frozen dataclass __init__ (one object.__setattr__ per
# field): the parser has produced every field already checked.
_NAME_ADDR_NEW = object.__new__
_NAME_ADDR_SET = tuple(
    getattr(NameAddr, name).__set__ for name in ("uri", "display_name", "params", "angle")
)


def _name_addr(uri: URI, display_name: str | None, params: Params, angle: bool) -> NameAddr:
    """A :class:`NameAddr` from parsed fields (same value as ``NameAddr(...)``)."""
    addr: NameAddr = _NAME_ADDR_NEW(NameAddr)
    s_uri, s_display, s_params, s_angle = _NAME_ADDR_SET
    s_uri(addr, uri)
    s_display(addr, display_name)
    s_params(addr, params)
    s_angle(addr, angle)
    return addr


# -- the fast accept path ---------------------------------------------------------------------
#
# The shape almost every From/To/Route value has on the wire, checked in full by one regular
# expression: an optional display name (quoted without escapes, or tokens), a sip/sips URI
# in angle brackets (SIP_URI_ACCEPT: every check parse_uri makes), and header parameters
# without LWS whose values are tokens/hosts.  q and expires, whose values _finish checks,
# are left to the complete grammar.  What matches is exactly what the complete parser
# builds (tests/sip/message/test_fast_paths.py), so the value is kept as text until read.
#   name-addr = [ display-name ] LAQUOT addr-spec RAQUOT
#   display-name = *(token LWS) / quoted-string ;  qdtext without quoted-pair here
_TOKEN_RE = r"[A-Za-z0-9.!%*_+`'~-]+"
ACCEPT_NAME_ADDR = re.compile(
    rf'(?:"([^"\\\x00-\x08\x0a-\x1f\x7f]*)"[ \t]*|({_TOKEN_RE}(?: {_TOKEN_RE})*)[ \t]*)?'
    rf"<({SIP_URI_ACCEPT})>"
    rf"((?:;(?!(?i:q|expires)(?:[=;]|\Z)){_TOKEN_RE}(?:=[A-Za-z0-9.!%*_+`'~:\[\]-]+)?)*)"
)
_EMPTY_PARAMS = Params()


def lazy_name_addr(match: re.Match[str]) -> NameAddr:
    """The :class:`NameAddr` of a full match of :data:`ACCEPT_NAME_ADDR`.

    Built at once (a From or To is read as soon as it is validated), but its URI and its
    parameters stay text: reading a To tag splits nothing, and the URI is parsed when one
    of its fields is read.
    """
    quoted, tokens, uri_text, params_text = match.groups()
    return _name_addr(lazy_sip_uri(uri_text), quoted if quoted is not None else tokens,
                      lazy_params(params_text) if params_text else _EMPTY_PARAMS, True)


def parse_name_addr(text: str) -> NameAddr:
    """Parse one address (``name-addr`` or ``addr-spec``, then header params).  Raises ParseError.

    Accepts LWS (including folded lines) wherever the grammar allows it; rejects unquoted
    display names with separators (``Bell, Alexander <sip:...>``), spaces inside the angle
    brackets and URIs that need brackets but lack them.
    """
    if "\n" in text or "\r" in text:
        text = _FOLD.sub(" ", text)
        if "\n" in text or "\r" in text:
            raise ParseError(f"line break in address {text[:60]!r}")
    text = text.strip(_WS)
    if not text:
        raise ParseError("empty address")
    if text[0] == '"':
        display, lt = _scan_quoted(text)
        if lt >= len(text) or text[lt] != "<":
            raise ParseError(f"quoted display name must be followed by '<': {text[:60]!r}")
        return _parse_angle(text, lt, display)
    lt = text.find("<")
    if lt >= 0 and ":" not in text[:lt]:
        return _parse_angle(text, lt, _token_display_name(text[:lt], text))
    return _parse_addr_spec(text)


def parse_name_addr_list(text: str) -> list[NameAddr]:
    """Parse a comma-separated list (Contact, Route, Record-Route ...).  Raises ParseError."""
    return [parse_name_addr(part) for part in split_commas(text)]


def _scan_quoted(text: str) -> tuple[str, int]:
    """Decode the quoted-string at the start of *text*.

    Returns the decoded display name and the index of the first non-LWS character after it.

    quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
    qdtext        = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
    quoted-pair   = "\\" (%x00-09 / %x0B-0C / %x0E-7F)
    """
    out: list[str] = []
    i = 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] in _WS:
                i += 1
            return "".join(out), i
        if ch == "\\":
            if i + 1 >= n:
                break
            nxt = text[i + 1]
            if nxt in "\r\n" or ord(nxt) > 0x7F:
                raise ParseError(f"bad quoted-pair in display name {text[:60]!r}")
            out.append(nxt)
            i += 2
            continue
        if (ord(ch) < 0x20 and ch != "\t") or ch == "\x7f":
            raise ParseError(f"control character in display name {text[:60]!r}")
        out.append(ch)
        i += 1
    raise ParseError(f"unbalanced quote in display name {text[:60]!r}")


def _token_display_name(raw: str, text: str) -> str | None:
    """An unquoted display name: tokens separated by LWS, normalised to single spaces."""
    raw = raw.strip(_WS)
    if not raw:
        return None
    if not _TOKEN_AND_WS.issuperset(raw):
        bad = next(c for c in raw if c not in _TOKEN_AND_WS)
        if bad == '"':
            if raw.count('"') % 2:
                raise ParseError(f"unbalanced quote in display name {text[:60]!r}")
            raise ParseError(f"display name mixes tokens and a quoted string: {raw[:40]!r}")
        raise ParseError(
            f"invalid character {bad!r} in unquoted display name {raw[:40]!r} (must be quoted)"
        )
    return _LWS_RUN.sub(" ", raw)


def _parse_angle(text: str, lt: int, display: str | None) -> NameAddr:
    # name-addr = [ display-name ] LAQUOT addr-spec RAQUOT
    # LAQUOT = SWS "<";  RAQUOT = ">" SWS
    gt = text.find(">", lt + 1)
    if gt < 0:
        raise ParseError(f"unterminated '<' in address {text[:60]!r}")
    uri_text = text[lt + 1:gt]
    if not uri_text:
        raise ParseError(f"empty URI in angle brackets: {text[:60]!r}")
    if uri_text[0] in _WS or uri_text[-1] in _WS:
        raise ParseError(f"whitespace inside angle brackets in {text[:60]!r}")
    uri = parse_uri(uri_text)
    tail = text[gt + 1:].lstrip(_WS)
    if tail and tail[0] != ";":
        raise ParseError(f"unexpected text {tail[:20]!r} after '>' in {text[:60]!r}")
    return _finish(_name_addr(uri, display, Params.parse(tail) if tail else Params(), True))


def _parse_addr_spec(text: str) -> NameAddr:
    # addr-spec = SIP-URI / SIPS-URI / absoluteURI
    # Without brackets the URI ends at the first ";" (§20): the rest are header params.
    semi = text.find(";")
    uri_text = text if semi < 0 else text[:semi]
    uri_text = uri_text.rstrip(_WS)
    if any(c in _WS for c in uri_text):
        first = uri_text.split()[0]
        if ":" not in first or first.startswith('"'):
            raise ParseError(f"display name not allowed without angle brackets: {text[:60]!r}")
        raise ParseError(f"whitespace in URI {uri_text[:60]!r}")
    if "<" in uri_text or ">" in uri_text:
        raise ParseError(f"misplaced angle bracket in address {text[:60]!r}")
    if "," in uri_text:
        raise ParseError(f"URI with ',' must be in angle brackets: {text[:60]!r}")
    if "?" in uri_text:
        raise ParseError(f"URI with headers ('?') must be in angle brackets: {text[:60]!r}")
    uri = parse_uri(uri_text)
    params = Params.parse(text[semi:]) if semi >= 0 else Params()
    return _finish(_name_addr(uri, None, params, False))


def _finish(addr: NameAddr) -> NameAddr:
    """Validate the parameters whose syntax we know, so the properties cannot fail later."""
    if addr.params:
        addr.expires  # noqa: B018 - raises ParseError on a malformed value
        addr.q  # noqa: B018
    return addr
