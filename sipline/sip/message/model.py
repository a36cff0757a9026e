"""SIP requests and responses (RFC 3261 §7).

A message is a start line, a :class:`~.headers.Headers` section and a body of bytes.  The
typed properties (``via``, ``cseq``, ``to``...) parse their header on first access and cache
the result in the header section, so a proxy that reads six headers parses six headers.

Messages are mutable on purpose: a proxy forwards the request it received after decrementing
Max-Forwards, pushing a Via and maybe rewriting the Request-URI (§16.6), and copying the
whole message for that would double the cost of the fast path.  Use :meth:`Message.copy`
when a branch needs its own version (forking).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import re

from ..errors import ParseError
from .address import NameAddr, parse_name_addr, parse_name_addr_list
from .address import ACCEPT_NAME_ADDR, lazy_name_addr
from .address import _name_addr as _new_name_addr
from .fields import CSeq, Via, parse_cseq, parse_token_list, parse_uint, parse_via
from .headers import Headers
from .params import Params
from .uri import URI, parse_uri

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Message", "Request", "Response", "SIP_VERSION"]

SIP_VERSION = "SIP/2.0"
CRLF = "\r\n"
_MISSING = object()

#: RFC 3261 §20.19 / §25: delta-seconds above 2**32-1 are read as 2**32-1.
_MAX_DELTA = 2**32 - 1


def _top_via(headers: Headers) -> Via:
    value = headers.first("via")
    if value is None:
        raise ParseError("missing Via header", header="Via")
    if "," in value:
        value = headers.get_all("via")[0]
    return parse_via(value)


def _vias(headers: Headers) -> tuple[Via, ...]:
    return tuple(parse_via(v) for v in headers.get_all("via"))


# The shape almost every From/To/Route value has on the wire: an optional display name
# (quoted without escapes, or tokens), a URI in angle brackets with no whitespace, and
# header parameters without LWS whose values are tokens/hosts.  Anything else (escapes,
# LWS, quoted parameter values, folded lines...) takes the complete grammar in
# :mod:`.address`; so does any parameter whose value the address layer validates (q,
# expires), so both paths accept and build exactly the same values.
#   name-addr = [ display-name ] LAQUOT addr-spec RAQUOT
#   display-name = *(token LWS) / quoted-string ;  qdtext without quoted-pair here
_FAST_NAME_ADDR = re.compile(
    r'(?:"([^"\\\x00-\x08\x0a-\x1f\x7f]*)"[ \t]*'
    r"|([A-Za-z0-9.!%*_+`'~-]+(?: [A-Za-z0-9.!%*_+`'~-]+)*)[ \t]*)?"
    r"<([^<>\s\"]+)>"
    r"((?:;[A-Za-z0-9.!%*_+`'~-]+(?:=[A-Za-z0-9.!%*_+`'~:\[\]-]+)?)*)"
)


def fast_name_addr(value: str) -> NameAddr:
    """:func:`.address.parse_name_addr` with fast paths for the common shapes.

    A value :data:`.address.ACCEPT_NAME_ADDR` matches is kept as text until read.
    """
    accepted = _ACCEPT_NAME_ADDR(value)
    if accepted is not None:
        return lazy_name_addr(accepted)
    m = _FAST_NAME_ADDR.fullmatch(value)
    if m is None:
        return parse_name_addr(value)
    quoted, tokens, uri_text, params_text = m.groups()
    if params_text:
        items = []
        for piece in params_text[1:].split(";"):
            name, eq, val = piece.partition("=")
            items.append((name, val if eq else None))
        params = Params(tuple(items))
        lowered = params_text.lower()
        if (";q" in lowered or ";expires" in lowered) and ("q" in params or "expires" in params):
            return parse_name_addr(value)
    else:
        params = _NO_PARAMS
    return _new_name_addr(parse_uri(uri_text), quoted if quoted is not None else tokens, params, True)


_NO_PARAMS = Params()
_ACCEPT_NAME_ADDR = ACCEPT_NAME_ADDR.fullmatch


def _name_addr(name: str) -> Callable[[Headers], NameAddr]:
    key = name.lower()

    def parse(headers: Headers) -> NameAddr:
        keys = headers._keys
        n = keys.count(key)
        if n != 1:
            if n:
                raise ParseError(f"more than one {name} header", header=name)
            raise ParseError(f"missing {name} header", header=name)
        try:
            return fast_name_addr(headers._values[keys.index(key)])
        except ParseError as exc:
            raise ParseError(f"{name}: {exc.reason}", header=name) from None

    return parse


def _name_addr_list(name: str) -> Callable[[Headers], tuple[NameAddr, ...]]:
    key = name.lower()

    def parse(headers: Headers) -> tuple[NameAddr, ...]:
        out: list[NameAddr] = []
        for value in headers.values_of(key):
            try:
                if "," in value:
                    out.extend(parse_name_addr_list(value))
                else:
                    out.append(fast_name_addr(value))
            except ParseError as exc:
                raise ParseError(f"{name}: {exc.reason}", header=name) from None
        return tuple(out)

    return parse


_parse_from = _name_addr("From")
_parse_to = _name_addr("To")
_parse_routes = _name_addr_list("Route")
_parse_record_routes = _name_addr_list("Record-Route")
_parse_paths = _name_addr_list("Path")


def _parse_contacts(headers: Headers) -> tuple[NameAddr, ...]:
    values = headers.get_fields("Contact")
    if any(v.strip() == "*" for v in values):
        if len(values) > 1 or headers.get_all("Contact") != ["*"]:
            raise ParseError("Contact '*' must be the only Contact value", header="Contact")
        return ()
    return _name_addr_list("Contact")(headers)


def _call_id(headers: Headers) -> str:
    values = headers.values_of("call-id")
    if not values:
        raise ParseError("missing Call-ID header", header="Call-ID")
    if len(values) > 1:
        raise ParseError("more than one Call-ID header", header="Call-ID")
    value = values[0]
    # callid = word [ "@" word ]: no whitespace inside.
    if not value or " " in value or "\t" in value:
        raise ParseError(f"malformed Call-ID {value[:60]!r}", header="Call-ID")
    return value


def _single(name: str, headers: Headers) -> str | None:
    values = headers.values_of(name.lower())
    if len(values) > 1:
        raise ParseError(f"more than one {name} header", header=name)
    return values[0] if values else None


def _cseq(headers: Headers) -> CSeq:
    values = headers.values_of("cseq")
    if not values:
        raise ParseError("missing CSeq header", header="CSeq")
    if len(values) > 1:
        raise ParseError("more than one CSeq header", header="CSeq")
    return parse_cseq(values[0])


def _max_forwards(headers: Headers) -> int | None:
    value = _single("Max-Forwards", headers)
    if value is None:
        return None
    return parse_uint(value, "Max-Forwards", maximum=255)


def _expires(headers: Headers) -> int | None:
    value = _single("Expires", headers)
    if value is None:
        return None
    return parse_uint(value, "Expires", maximum=_MAX_DELTA, clamp=True)


def _content_length(headers: Headers) -> int | None:
    value = _single("Content-Length", headers)
    if value is None:
        return None
    return parse_uint(value, "Content-Length", maximum=2**31)


def _token_list(name: str) -> Callable[[Headers], tuple[str, ...]]:
    def parse(headers: Headers) -> tuple[str, ...]:
        return parse_token_list(headers.get_all(name), name)

    return parse


_require = _token_list("Require")
_proxy_require = _token_list("Proxy-Require")
_supported = _token_list("Supported")
_allow = _token_list("Allow")


class Message:
    """Common part of requests and responses."""

    __slots__ = ("headers", "_body")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self._body = body

    # -- body -------------------------------------------------------------------------

    @property
    def body(self) -> bytes:
        """The message body; setting it keeps Content-Length right."""
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = value
        self.headers.set("Content-Length", str(len(value)))

    def set_body(self, body: bytes, content_type: str | None) -> None:
        """Replace the body and its Content-Type (None removes the Content-Type)."""
        if content_type is None:
            self.headers.remove("Content-Type")
        else:
            self.headers.set("Content-Type", content_type)
        self.body = body

    # -- typed headers ----------------------------------------------------------------

    @property
    def via(self) -> Via:
        """The topmost Via value."""
        cache = self.headers._cache
        value = cache.get("via:top", _MISSING)
        if value is _MISSING:
            value = cache["via:top"] = _top_via(self.headers)
        return value  # type: ignore[return-value]

    @property
    def vias(self) -> tuple[Via, ...]:
        """Every Via value, topmost first."""
        return self.headers.typed("via", _vias)

    @property
    def call_id(self) -> str:
        cache = self.headers._cache
        value = cache.get("call-id", _MISSING)
        if value is _MISSING:
            value = cache["call-id"] = _call_id(self.headers)
        return value  # type: ignore[return-value]

    @property
    def cseq(self) -> CSeq:
        cache = self.headers._cache
        value = cache.get("cseq", _MISSING)
        if value is _MISSING:
            value = cache["cseq"] = _cseq(self.headers)
        return value  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        """The From header (``from`` is a Python keyword)."""
        cache = self.headers._cache
        value = cache.get("from", _MISSING)
        if value is _MISSING:
            value = cache["from"] = _parse_from(self.headers)
        return value  # type: ignore[return-value]

    @property
    def to(self) -> NameAddr:
        cache = self.headers._cache
        value = cache.get("to", _MISSING)
        if value is _MISSING:
            value = cache["to"] = _parse_to(self.headers)
        return value  # type: ignore[return-value]

    @property
    def contacts(self) -> tuple[NameAddr, ...]:
        """Contact values; empty for ``Contact: *`` (check :attr:`contact_is_star`)."""
        return self.headers.typed("contact", _parse_contacts)

    @property
    def contact_is_star(self) -> bool:
        """True for the ``Contact: *`` of an unregister-all (RFC 3261 §10.2.2)."""
        return self.headers.get("Contact", "").strip() == "*"  # type: ignore[union-attr]

    @property
    def routes(self) -> tuple[NameAddr, ...]:
        cache = self.headers._cache
        value = cache.get("route", _MISSING)
        if value is _MISSING:
            value = cache["route"] = _parse_routes(self.headers)
        return value  # type: ignore[return-value]

    @property
    def record_routes(self) -> tuple[NameAddr, ...]:
        return self.headers.typed("record-route", _parse_record_routes)

    @property
    def paths(self) -> tuple[NameAddr, ...]:
        return self.headers.typed("path", _parse_paths)

    @property
    def max_forwards(self) -> int | None:
        cache = self.headers._cache
        value = cache.get("max-forwards", _MISSING)
        if value is _MISSING:
            value = cache["max-forwards"] = _max_forwards(self.headers)
        return value  # type: ignore[return-value]

    @max_forwards.setter
    def max_forwards(self, value: int) -> None:
        self.headers.set("Max-Forwards", str(value))

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds (None if absent)."""
        return self.headers.typed("expires", _expires)

    @property
    def content_length(self) -> int | None:
        return self.headers.typed("content-length", _content_length)

    @property
    def content_type(self) -> str | None:
        """Content-Type media type, lower-cased, parameters stripped."""
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip().lower()

    @property
    def require(self) -> tuple[str, ...]:
        return self.headers.typed("require", _require)

    @property
    def proxy_require(self) -> tuple[str, ...]:
        return self.headers.typed("proxy-require", _proxy_require)

    @property
    def supported(self) -> tuple[str, ...]:
        return self.headers.typed("supported", _supported)

    @property
    def allow(self) -> tuple[str, ...]:
        return self.headers.typed("allow", _allow)

    # -- serialisation ----------------------------------------------------------------

    def start_line(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        headers = self.headers
        lines = headers.lines()
        if lines:
            head = f"{self.start_line()}\r\n{CRLF.join(lines)}\r\n\r\n"
        else:
            head = f"{self.start_line()}\r\n\r\n"
        data = head.encode("utf-8", "surrogateescape")
        body = self._body
        return data + body if body else data

    def to_bytes(self) -> bytes:
        """``bytes(msg)`` by name (a method of its own: mypyc compiles no class-level alias)."""
        return self.__bytes__()

    def header_text(self) -> str:
        """Start line and headers as text (for logs), without the body."""
        return bytes(self)[: -len(self._body) or None].decode("utf-8", "replace")


class Request(Message):
    """A SIP request."""

    __slots__ = ("method", "_uri_text", "_uri", "_start", "_start_key")

    def __init__(
        self,
        method: str,
        uri: URI | str,
        headers: Headers | None = None,
        body: bytes = b"",
        *,
        start_line: str | None = None,
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        if isinstance(uri, str):
            self._uri_text = uri
            self._uri: URI | None = None
        else:
            self._uri_text = str(uri)
            self._uri = uri
        self._start = start_line
        self._start_key = (method, self._uri_text)

    @property
    def is_request(self) -> bool:
        return True

    @property
    def uri(self) -> URI:
        """The Request-URI, parsed on first access."""
        uri = self._uri
        if uri is None:
            try:
                uri = self._uri = parse_uri(self._uri_text)
            except ParseError as exc:
                raise ParseError(f"Request-URI: {exc.reason}") from None
        return uri

    @uri.setter
    def uri(self, value: URI | str) -> None:
        if isinstance(value, str):
            self._uri_text = value
            self._uri = None
        else:
            self._uri_text = str(value)
            self._uri = value

    @property
    def uri_text(self) -> str:
        """The Request-URI as text (as received when untouched)."""
        return self._uri_text

    def start_line(self) -> str:
        if self._start is not None and self._start_key == (self.method, self._uri_text):
            return self._start
        return f"{self.method} {self._uri_text} {SIP_VERSION}"

    def copy(self) -> Request:
        """An independent copy sharing the unmodified header fields."""
        clone = Request(self.method, self._uri_text, self.headers.copy(), self._body, start_line=self._start)
        clone._uri = self._uri
        clone._start_key = self._start_key
        return clone

    def __repr__(self) -> str:
        return f"<Request {self.method} {self._uri_text}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("status", "reason", "_start", "_start_key")

    def __init__(
        self,
        status: int,
        reason: str = "",
        headers: Headers | None = None,
        body: bytes = b"",
        *,
        start_line: str | None = None,
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason
        self._start = start_line
        self._start_key = (status, reason)

    @property
    def is_request(self) -> bool:
        return False

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def start_line(self) -> str:
        if self._start is not None and self._start_key == (self.status, self.reason):
            return self._start
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def copy(self) -> Response:
        clone = Response(self.status, self.reason, self.headers.copy(), self._body, start_line=self._start)
        clone._start_key = self._start_key
        return clone

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"
