"""Bytes to :class:`Request` / :class:`Response` (RFC 3261 §7, §18.3).

Strategy: split the header section into fields with ``str`` methods (C speed), keep each
field's original text for lossless forwarding, and validate eagerly only what every receiver
needs anyway: the start line, the framing (Content-Length) and, with ``validate=True``, the
headers that identify a transaction (Via, From, To, Call-ID, CSeq).  Everything else is
parsed when first read.

Every failure is a :class:`~sipline.sip.errors.ProtocolError` whose reason names the fault
and where it is; a fuzz test proves nothing else escapes.
"""

from __future__ import annotations

import re
from itertools import repeat
from operator import itemgetter

from ..errors import MessageTooLarge, ParseError, ProtocolError, VersionNotSupported
from ..limits import DEFAULT_LIMITS, Limits
from ._scan import TOKEN_CHARS
from .headers import HeaderField, Headers, canonical_key
from ..methods import KNOWN_METHODS
from .address import ACCEPT_NAME_ADDR, lazy_name_addr
from .fields import parse_cseq, parse_via
from .model import Message, Request, Response
from .model import _call_id, _cseq, _max_forwards, _parse_from, _parse_to, _top_via
from .uri import SipURI

__all__ = ["parse_message", "parse_head", "validate", "validate_strict", "safe_parse"]

_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
# Request-URI: absoluteURI / SIP-URI / SIPS-URI all start with scheme ":".
_URI_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:")
_HEADER_NAME_BAD = re.compile(r"[^A-Za-z0-9\-.!%*_+`'~]")


def _start_request(line: str) -> tuple[str, str]:
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        # Request-Line = Method SP Request-URI SP SIP-Version CRLF: say which rule broke.
        if line != line.rstrip(" \t"):
            fault = "trailing whitespace after the SIP version"
        elif "  " in line or line.startswith(" "):
            fault = "elements must be separated by single spaces"
        elif len(parts) > 3:
            fault = "whitespace inside the Request-URI"
        else:
            fault = "expected 'METHOD Request-URI SIP/2.0'"
        raise ParseError(f"malformed request line {line[:80]!r}: {fault}")
    method, uri, version = parts
    if not TOKEN_CHARS.issuperset(method):
        raise ParseError(f"request method {method[:40]!r} is not a token")
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise VersionNotSupported(f"SIP version {version} not supported")
        raise ParseError(f"bad SIP version {version[:20]!r} in request line")
    if uri.startswith("<"):
        raise ParseError(f"Request-URI must not be enclosed in '<>': {uri[:80]!r}")
    if "\t" in uri or not _URI_SCHEME_RE.match(uri):
        raise ParseError(f"malformed Request-URI {uri[:80]!r}")
    return method, uri


def _start_response(line: str) -> tuple[int, str]:
    parts = line.split(" ", 2)
    if len(parts) < 2:
        raise ParseError(f"malformed status line {line[:80]!r}")
    version, code = parts[0], parts[1]
    reason = parts[2] if len(parts) == 3 else ""
    if version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise VersionNotSupported(f"SIP version {version} not supported")
        raise ParseError(f"bad SIP version {version[:20]!r} in status line")
    if len(code) != 3 or not code.isdigit() or not code.isascii() or not "100" <= code <= "699":
        raise ParseError(f"bad status code {code[:20]!r}")
    return int(code), reason


def _split_lines(head: str) -> list[str]:
    crlf = head.count("\r\n")
    if head.count("\r") != crlf:
        raise ParseError("bare CR inside the header section")
    if head.count("\n") != crlf:
        # Bare LF line ends (seen from some embedded stacks): tolerate them.
        return [line[:-1] if line.endswith("\r") else line for line in head.split("\n")]
    return head.split("\r\n")


# Header names seen before, already checked against the token grammar, with their canonical
# key: a spelling is validated once per process, not once per line.  Bounded, since names
# come from the network.
_NAME_KEYS: dict[str, str] = {}
# The subset spelled without WSP before the colon, usable by the fast path as they are.
_CLEAN_NAME_KEYS: dict[str, str] = {}


def _check_name(name: str) -> tuple[str, str]:
    """Validate a header name (``token``, then optional WSP before HCOLON's colon).

    Returns the name as it will be looked up (trailing WSP removed) and its canonical key.
    """
    stripped = name.rstrip(" \t")
    if not stripped or _HEADER_NAME_BAD.search(stripped):
        raise ParseError(f"bad header name {name[:40]!r}")
    key = canonical_key(stripped)
    if len(_NAME_KEYS) < 4096:
        _NAME_KEYS[name] = key
        if name == stripped:
            _CLEAN_NAME_KEYS[name] = key
    return stripped, key


def _slow_fields(lines: list[str]) -> tuple[list[str], list[str], list[str], list[str | None]]:
    """Split header lines one by one: folding, odd spacing, errors with a precise reason."""
    keys: list[str] = []
    names: list[str] = []
    values: list[str] = []
    raws: list[str | None] = []
    name_keys = _NAME_KEYS
    for i in range(1, len(lines)):
        line = lines[i]
        colon = line.find(":")
        if colon > 0:
            name = line[:colon]
            key = name_keys.get(name)
            if key is None:
                first = line[0]
                if first == " " or first == "\t":
                    _fold(line, values, raws)
                    continue
                name, key = _check_name(name)
            else:
                name = name.rstrip(" \t")
            keys.append(key)
            names.append(name)
            values.append(line[colon + 1 :].strip(" \t"))
            raws.append(line)
        elif line and (line[0] == " " or line[0] == "\t"):
            _fold(line, values, raws)
        elif line:
            raise ParseError(f"header line without a name and colon: {line[:60]!r}")
        else:
            raise ParseError("empty line inside the header section")
    return keys, names, values, raws


_PARTITION = str.partition
_STRIP = str.strip
_NAME = itemgetter(0)
_COLON = itemgetter(1)
_VALUE = itemgetter(2)


def _fast_fields(lines: list[str]) -> tuple[list[str], list[str], list[str], list[str | None]] | None:
    """The header lists built with C-level passes, or None when :func:`_slow_fields` must run.

    The common case: every line ``name: value`` with a name spelled exactly as a previous
    message spelled it (so already validated, and without WSP before the colon).  Each list
    is one ``map`` over the lines: no Python bytecode runs per header.  A continuation line
    (folding) starts with WSP, and no name starting with WSP is ever in
    ``_CLEAN_NAME_KEYS``, so folding falls to the slow path through the ``None`` check.
    """
    raws = lines[1:]
    parts = list(map(_PARTITION, raws, repeat(":")))
    keys = list(map(_CLEAN_NAME_KEYS.get, map(_NAME, parts)))
    if None in keys or "" in map(_COLON, parts):
        return None  # an unknown spelling, folding, or a line without a colon
    names = list(map(_NAME, parts))
    values = list(map(_STRIP, map(_VALUE, parts), repeat(" \t")))
    return keys, names, values, raws  # type: ignore[return-value]


def parse_head(head: str, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Parse a start line and header section (already decoded, no trailing blank line)."""
    lines = head.split("\r\n")
    crlf = len(lines) - 1
    if head.count("\n") != crlf or head.count("\r") != crlf:
        lines = _split_lines(head)  # bare CR (refused) or bare LF (tolerated)
    start = lines[0]
    # The start line first: its faults (version, method, Request-URI form) decide the answer.
    if start.startswith("SIP/") or start[:4].upper() == "SIP/":
        status, reason = _start_response(start)
        request = False
    else:
        method, uri = _start_request(start)
        request = True
    if len(lines) > limits.max_headers + 1 and sum(1 for line in lines if line[:1] not in (" ", "\t")) > limits.max_headers + 1:
        raise MessageTooLarge(f"too many header fields (more than {limits.max_headers})")
    fields = _fast_fields(lines) if len(lines) > 1 else None
    if fields is None:
        keys, names, values, raws = _slow_fields(lines)
    else:
        keys, names, values, raws = fields
    headers = Headers._from_lists(keys, names, values, raws)
    msg: Message
    if request:
        msg = Request(method, uri, headers, start_line=start)
    else:
        msg = Response(status, reason, headers, start_line=start)
    # Via fields plus every comma bound the Via values from above: count them exactly only
    # when that bound is over the limit (one scan of the head in the common case).
    if keys.count("via") + head.count(",") > limits.max_vias:
        if "," in head:
            _check_via_count(headers, limits)
        else:
            raise MessageTooLarge(f"too many Via values (more than {limits.max_vias})")
    return msg


def _fold(line: str, values: list[str], raws: list[str | None]) -> None:
    """A folded continuation (LWS = [*WSP CRLF] 1*WSP) joins the previous field's value."""
    if not values:
        raise ParseError("header section starts with a continuation line")
    stripped = line.strip(" \t")
    if stripped:
        last = values[-1]
        values[-1] = f"{last} {stripped}" if last else stripped
    raws[-1] = f"{raws[-1]}\r\n{line}"


def _check_via_count(headers: Headers, limits: Limits) -> None:
    total = 0
    for value in headers.values_of("via"):
        total += value.count(",") + 1
    if total > limits.max_vias and len(headers.get_all("via")) > limits.max_vias:
        raise MessageTooLarge(f"too many Via values (more than {limits.max_vias})")


def parse_message(
    data: bytes,
    limits: Limits = DEFAULT_LIMITS,
    *,
    validate: bool = True,
    datagram: bool = True,
) -> Message:
    """Parse one complete message.

    ``datagram`` applies RFC 3261 §18.3 to a UDP payload: bytes beyond Content-Length are
    dropped, a body shorter than Content-Length is an error, and Content-Length may be absent.
    ``validate`` checks the headers every transaction layer needs (see :func:`validate`).
    """
    if len(data) > limits.max_message_size:
        raise MessageTooLarge(f"message of {len(data)} bytes exceeds the {limits.max_message_size}-byte limit")
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2  # §7.5: ignore CRLFs before the start line
    if start >= len(data):
        raise ParseError("empty message")
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        body_start = end + 4
    else:
        end = data.find(b"\n\n", start)
        if end < 0:
            raise ParseError("no empty line after the header section")
        body_start = end + 2
    if end - start > limits.max_header_size:
        raise MessageTooLarge(f"header section exceeds {limits.max_header_size} bytes")
    if end == start:
        raise ParseError("empty message")
    head = data[start:end].decode("utf-8", "surrogateescape")
    msg = parse_head(head, limits)
    body = data[body_start:]
    length = _content_length(msg)
    if length is not None:
        if len(body) < length:
            raise ParseError(f"Content-Length {length} exceeds the {len(body)} bytes of body received", header="Content-Length")
        if len(body) > length:
            if not datagram:
                raise ParseError(f"{len(body) - length} bytes after the body declared by Content-Length")
            body = body[:length]
    elif not datagram:
        raise ParseError("missing Content-Length on a stream transport", header="Content-Length")
    if len(body) > limits.max_body_size:
        raise MessageTooLarge(f"body of {len(body)} bytes exceeds the {limits.max_body_size}-byte limit")
    msg._body = body
    if validate:
        _validate_fresh(msg)
    return msg


def _content_length(msg: Message) -> int | None:
    """``msg.content_length``, with the one plain field of up to nine digits read inline."""
    headers = msg.headers
    keys = headers._keys
    if keys.count("content-length") == 1:
        text = headers._values[keys.index("content-length")]
        if len(text) < 10 and text.isdigit() and text.isascii():
            length = headers._cache["content-length"] = int(text)  # as parse_uint reads it
            return length
    return msg.content_length


def validate(msg: Message) -> None:
    """Check the headers that every transaction user relies on.

    Requests need Via, From, To, Call-ID and CSeq whose method matches the request line
    (§8.1.1, §8.2); responses need the same headers.  Accessing them also caches the typed
    values, so the proxy fast path does not parse them twice.
    """
    _validate(msg)


_ACCEPT_NAME_ADDR = ACCEPT_NAME_ADDR.fullmatch


def _validate_fresh(msg: Message) -> None:
    """:func:`_validate` for a message :func:`parse_message` has just built.

    Its header cache holds no typed view yet, so each view is parsed straight into the
    cache.  The common shape of each header (one field, the value the fast expressions
    accept) is handled inline; anything else goes through the same function the property
    uses, so the value -- or the error and its reason -- is the same either way, and the
    checks run in the same order as in :func:`_validate`.
    """
    headers = msg.headers
    keys = headers._keys
    values = headers._values
    cache = headers._cache
    count = keys.count
    value = values[keys.index("via")] if "via" in keys else ","
    cache["via:top"] = parse_via(value) if "," not in value else _top_via(headers)
    cseq = cache["cseq"] = (parse_cseq(values[keys.index("cseq")]) if count("cseq") == 1
                            else _cseq(headers))
    if count("call-id") == 1 and (value := values[keys.index("call-id")]) \
            and " " not in value and "\t" not in value:
        cache["call-id"] = value
    else:
        cache["call-id"] = _call_id(headers)
    match = _ACCEPT_NAME_ADDR(values[keys.index("from")]) if count("from") == 1 else None
    cache["from"] = lazy_name_addr(match) if match is not None else _parse_from(headers)
    match = _ACCEPT_NAME_ADDR(values[keys.index("to")]) if count("to") == 1 else None
    cache["to"] = lazy_name_addr(match) if match is not None else _parse_to(headers)
    if isinstance(msg, Request):
        if cseq.method != msg.method:
            _cseq_mismatch(cseq.method, msg.method)
        if count("max-forwards") == 1 and len(value := values[keys.index("max-forwards")]) < 4 \
                and value.isdigit() and value.isascii() and int(value) < 256:
            cache["max-forwards"] = int(value)
        else:
            cache["max-forwards"] = _max_forwards(headers)


def _cseq_mismatch(cseq_method: str, method: str) -> None:
    # RFC 4475 §3.1.2.18: for a method we do not know, 501 is the better answer (a later
    # extension may define it); 400 otherwise.
    raise ParseError(
        f"CSeq method {cseq_method} does not match request method {method}",
        header="CSeq",
        status=400 if method in KNOWN_METHODS else 501,
    )


def _validate(msg: Message) -> None:
    msg.via
    cseq = msg.cseq
    msg.call_id
    msg.from_
    msg.to
    if isinstance(msg, Request):
        if cseq.method != msg.method:
            _cseq_mismatch(cseq.method, msg.method)
        msg.max_forwards


# SIP-date = rfc1123-date = wkday "," SP date1 SP time SP "GMT"   (RFC 3261 §25.1)
# date1 = 2DIGIT SP month SP 4DIGIT ;  time = 2DIGIT ":" 2DIGIT ":" 2DIGIT
_DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9] GMT"
)
# media-type = m-type SLASH m-subtype *(SEMI m-parameter);  m-parameter = m-attribute EQUAL m-value
# m-type, m-subtype, m-attribute = token;  m-value = token / quoted-string
_TOKEN = r"[A-Za-z0-9.!%*_+`'~-]+"
_MEDIA_TYPE_RE = re.compile(
    rf"{_TOKEN}[ \t]*/[ \t]*{_TOKEN}"
    rf'(?:[ \t]*;[ \t]*{_TOKEN}[ \t]*=[ \t]*(?:{_TOKEN}|"(?:[^"\\]|\\.)*"))*'
)


def validate_strict(msg: Message) -> None:
    """Everything :func:`validate` checks, plus every header a UAS or registrar acts on.

    :func:`parse_message` stays lazy about headers a proxy only forwards; an element that
    consumes the message (UAS, registrar) calls this to refuse, with 400 and a reason that
    names the header, what RFC 3261 says it must not accept:

    - a Request-URI that does not parse, or a SIP Request-URI carrying ``?headers``
      (§19.1.1, table 1: headers are not allowed in a Request-URI; RFC 4475 escruri);
    - every Via value, Contact (RFC 4475 regbadct), Route, Record-Route;
    - Expires, Content-Length, Max-Forwards as numbers; Require/Proxy-Require/Supported as
      tokens;
    - Date as an RFC 1123 date in GMT (§20.17; RFC 4475 baddate);
    - Content-Type as a media type (§20.15).
    """
    _validate(msg)
    if isinstance(msg, Request):
        uri = msg.uri
        if isinstance(uri, SipURI) and uri.headers:
            raise ParseError(f"headers not allowed in a Request-URI: {msg.uri_text[:80]!r}")
    msg.vias
    msg.contacts
    msg.routes
    msg.record_routes
    msg.expires
    msg.content_length
    msg.require
    msg.proxy_require
    msg.supported
    headers = msg.headers
    for value in headers.values_of("date"):
        if not _DATE_RE.fullmatch(value):
            raise ParseError(f"Date is not an RFC 1123 date in GMT: {value[:60]!r}", header="Date")
    for value in headers.values_of("content-type"):
        if not _MEDIA_TYPE_RE.fullmatch(value):
            raise ParseError(f"malformed Content-Type {value[:60]!r}", header="Content-Type")


def safe_parse(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message | ProtocolError:
    """Parse, returning the error instead of raising it (convenient for receive loops)."""
    try:
        return parse_message(data, limits)
    except ProtocolError as exc:
        return exc
