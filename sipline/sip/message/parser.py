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

from ..errors import MessageTooLarge, ParseError, ProtocolError, VersionNotSupported
from ..limits import DEFAULT_LIMITS, Limits
from ._scan import TOKEN_CHARS
from .headers import HeaderField, Headers, canonical_key
from .model import Message, Request, Response

__all__ = ["parse_message", "parse_head", "validate"]

_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
# Request-URI: absoluteURI / SIP-URI / SIPS-URI all start with scheme ":".
_URI_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:")
_HEADER_NAME_BAD = re.compile(r"[^A-Za-z0-9\-.!%*_+`'~]")


def _start_request(line: str) -> tuple[str, str]:
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise ParseError(f"malformed request line {line[:80]!r}: expected 'METHOD URI SIP/2.0' separated by single spaces")
    method, uri, version = parts
    if not TOKEN_CHARS.issuperset(method):
        raise ParseError(f"request method {method[:40]!r} is not a token")
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise VersionNotSupported(f"SIP version {version} not supported")
        raise ParseError(f"bad SIP version {version[:20]!r} in request line")
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
    if "\n" in head.replace("\r\n", ""):
        # Bare LF line ends (seen from some embedded stacks): tolerate them.
        return [line[:-1] if line.endswith("\r") else line for line in head.split("\n")]
    return head.split("\r\n")


def parse_head(head: str, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Parse a start line and header section (already decoded, no trailing blank line)."""
    lines = _split_lines(head)
    start = lines[0]
    fields: list[HeaderField] = []
    append = fields.append
    last: HeaderField | None = None
    for line in lines[1:]:
        if not line:
            raise ParseError("empty line inside the header section")
        first = line[0]
        if first == " " or first == "\t":
            # Folded continuation (LWS = [*WSP CRLF] 1*WSP): joins the previous value.
            if last is None:
                raise ParseError("header section starts with a continuation line")
            stripped = line.strip(" \t")
            if stripped:
                last.value = f"{last.value} {stripped}" if last.value else stripped
            last.raw = f"{last.raw}\r\n{line}"
            continue
        colon = line.find(":")
        if colon <= 0:
            raise ParseError(f"header line without a name and colon: {line[:60]!r}")
        name = line[:colon]
        if _HEADER_NAME_BAD.search(name):
            stripped_name = name.rstrip(" \t")
            if not stripped_name or _HEADER_NAME_BAD.search(stripped_name):
                raise ParseError(f"bad header name {name[:40]!r}")
            name = stripped_name
        last = HeaderField(name, line[colon + 1 :].strip(" \t"), line, canonical_key(name))
        append(last)
    if len(fields) > limits.max_headers:
        raise MessageTooLarge(f"too many header fields ({len(fields)} > {limits.max_headers})")
    headers = Headers(fields)
    if start.startswith("SIP/") or start[:4].upper() == "SIP/":
        status, reason = _start_response(start)
        msg: Message = Response(status, reason, headers, start_line=start)
    else:
        method, uri = _start_request(start)
        msg = Request(method, uri, headers, start_line=start)
    _check_via_count(headers, limits)
    return msg


def _check_via_count(headers: Headers, limits: Limits) -> None:
    total = 0
    for field in headers._fields:
        if field.key == "via":
            total += field.value.count(",") + 1
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
    length = msg.content_length
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
        _validate(msg)
    return msg


def validate(msg: Message) -> None:
    """Check the headers that every transaction user relies on.

    Requests need Via, From, To, Call-ID and CSeq whose method matches the request line
    (§8.1.1, §8.2); responses need the same headers.  Accessing them also caches the typed
    values, so the proxy fast path does not parse them twice.
    """
    _validate(msg)


def _validate(msg: Message) -> None:
    msg.via
    cseq = msg.cseq
    msg.call_id
    msg.from_
    msg.to
    if isinstance(msg, Request):
        if cseq.method != msg.method:
            raise ParseError(f"CSeq method {cseq.method} does not match request method {msg.method}", header="CSeq")
        msg.max_forwards


def safe_parse(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message | ProtocolError:
    """Parse, returning the error instead of raising it (convenient for receive loops)."""
    try:
        return parse_message(data, limits)
    except ProtocolError as exc:
        return exc
