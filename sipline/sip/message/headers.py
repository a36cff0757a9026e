"""The header section: ordered, lossless, lazily typed.

Theory of operation: a proxy touches five or six headers of a message and forwards the rest.
So the parser only splits the header section into fields (name, value, and the original
line(s) as received); nothing inside a value is parsed until someone asks.  A field nobody
modified is written back exactly as received, folding and odd spacing included, in its
original position.  Typed views (Via, CSeq, name-addr...) are parsed on first access and
cached until the header is modified.

Names are matched case-insensitively and compact forms (RFC 3261 §7.3.3, §20) are the same
header as their long form: ``v`` is ``Via``.  The spelling on the wire is kept for output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from ._scan import first_comma, split_commas

__all__ = ["HeaderField", "Headers", "canonical_key", "LIST_HEADERS", "COMPACT_FORMS"]

T = TypeVar("T")

#: Compact form -> long form (lower case).  RFC 3261 §7.3.3 plus the extensions' forms
#: registered with IANA (RFC 3265 o/u, RFC 3515 r, RFC 3892 b, RFC 4028 x, RFC 3841 a/j/d,
#: RFC 8224 y, RFC 3903/4474 n, RFC 3891/3911...).
COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

#: Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1): several values may share
#: one field, and several fields combine into one list.  Others (e.g. WWW-Authenticate,
#: Date) contain commas that are not separators and are never split.
LIST_HEADERS = frozenset(
    {
        "via",
        "contact",
        "route",
        "record-route",
        "path",
        "service-route",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "allow-events",
        "content-encoding",
        "in-reply-to",
        "call-info",
        "alert-info",
        "error-info",
        "warning",
        "p-asserted-identity",
        "p-preferred-identity",
        "history-info",
        "diversion",
        "reason",
        "security-client",
        "security-server",
        "security-verify",
        "accept-contact",
        "reject-contact",
        "request-disposition",
        "privacy",
    }
)

_key_cache: dict[str, str] = {}


def canonical_key(name: str) -> str:
    """The lookup key for a header name: lower case, compact forms expanded."""
    key = _key_cache.get(name)
    if key is None:
        lower = name.lower()
        key = COMPACT_FORMS.get(lower, lower)
        if len(_key_cache) < 4096:  # bounded: names come from the network
            _key_cache[name] = key
    return key


class HeaderField:
    """One header line as received or as added.

    ``raw`` holds the original text of the line (with any folded continuation lines) while the
    field is untouched; serialisation then reproduces it byte-for-byte.  Fields created or
    modified locally have ``raw`` None and are written as ``name: value``.
    """

    __slots__ = ("name", "key", "value", "raw")

    def __init__(self, name: str, value: str, raw: str | None = None, key: str | None = None) -> None:
        self.name = name
        self.key = key if key is not None else canonical_key(name)
        self.value = value
        self.raw = raw

    def line(self) -> str:
        """The field as it goes on the wire (without CRLF)."""
        raw = self.raw
        return raw if raw is not None else f"{self.name}: {self.value}"

    def __repr__(self) -> str:
        return f"HeaderField({self.name!r}, {self.value!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HeaderField):
            return NotImplemented
        return self.key == other.key and self.value == other.value

    __hash__ = None  # type: ignore[assignment]


class Headers:
    """The ordered header fields of one message.

    Lookups take any spelling (``"Call-ID"``, ``"call-id"``, ``"i"``).  List headers
    (:data:`LIST_HEADERS`) are exposed value by value through :meth:`get_all`; other headers
    field by field.
    """

    __slots__ = ("_fields", "_cache")

    def __init__(self, fields: list[HeaderField] | None = None) -> None:
        self._fields: list[HeaderField] = fields if fields is not None else []
        self._cache: dict[str, object] = {}

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> Headers:
        """Build from ``(name, value)`` pairs, as when composing a new message."""
        return cls([HeaderField(name, value) for name, value in pairs])

    # -- reading ---------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for field in self._fields:
            yield field.name, field.value

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = canonical_key(name)
        return any(f.key == key for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._fields == other._fields

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({[(f.name, f.value) for f in self._fields]!r})"

    def fields(self) -> list[HeaderField]:
        """A copy of the field list, in wire order."""
        return list(self._fields)

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of the first field called *name* (the whole field, commas included)."""
        key = canonical_key(name)
        for field in self._fields:
            if field.key == key:
                return field.value
        return default

    def get_fields(self, name: str) -> list[str]:
        """Values of every field called *name*, one per field, unsplit."""
        key = canonical_key(name)
        return [f.value for f in self._fields if f.key == key]

    def get_all(self, name: str) -> list[str]:
        """Every value of *name*: list headers split at top-level commas, in order."""
        key = canonical_key(name)
        values = [f.value for f in self._fields if f.key == key]
        if key not in LIST_HEADERS:
            return values
        out: list[str] = []
        for value in values:
            if "," in value:
                out.extend(split_commas(value))
            elif value:
                out.append(value.strip())
        return out

    def count(self, name: str) -> int:
        """Number of fields called *name*."""
        key = canonical_key(name)
        return sum(1 for f in self._fields if f.key == key)

    def typed(self, key: str, parse: Callable[[Headers], T]) -> T:
        """The typed view of header *key* (a canonical key), parsed once and cached.

        The cache is dropped whenever that header changes, so a view is never stale.
        """
        cache = self._cache
        try:
            return cache[key]  # type: ignore[return-value]
        except KeyError:
            value = parse(self)
            cache[key] = value
            return value

    # -- writing ---------------------------------------------------------------------

    def _changed(self, key: str) -> None:
        cache = self._cache
        if cache:
            # Views are keyed by header key or "key:..." for derived views.
            for k in [k for k in cache if k == key or k.startswith(key + ":")]:
                del cache[k]

    def add(self, name: str, value: str) -> None:
        """Append a field at the end of the header section."""
        field = HeaderField(name, value)
        self._fields.append(field)
        self._changed(field.key)

    def prepend(self, name: str, value: str) -> None:
        """Insert a field before the first field of the same name (or at the top).

        This is how a proxy pushes a Via or Record-Route: the new value becomes the topmost
        one while every other field keeps its place.
        """
        field = HeaderField(name, value)
        key = field.key
        fields = self._fields
        for i, existing in enumerate(fields):
            if existing.key == key:
                fields.insert(i, field)
                break
        else:
            fields.insert(0, field)
        self._changed(key)

    def set(self, name: str, value: str) -> None:
        """Replace every field called *name* by one field, at the first one's position."""
        field = HeaderField(name, value)
        key = field.key
        fields = self._fields
        position = -1
        for i in range(len(fields) - 1, -1, -1):
            if fields[i].key == key:
                position = i
                del fields[i]
        if position < 0:
            fields.append(field)
        else:
            fields.insert(position, field)
        self._changed(key)

    def set_default(self, name: str, value: str) -> None:
        """Add *name* only when absent."""
        if name not in self:
            self.add(name, value)

    def remove(self, name: str) -> int:
        """Remove every field called *name*; returns how many were removed."""
        key = canonical_key(name)
        before = len(self._fields)
        self._fields = [f for f in self._fields if f.key != key]
        removed = before - len(self._fields)
        if removed:
            self._changed(key)
        return removed

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of list header *name*.

        When several values share the field, the rest of the field keeps its original text
        (from the character after the comma), so nothing else is rewritten.
        """
        key = canonical_key(name)
        fields = self._fields
        for i, field in enumerate(fields):
            if field.key != key:
                continue
            value = field.value
            cut = first_comma(value)
            if cut < 0:
                del fields[i]
                self._changed(key)
                return value.strip()
            rest = value[cut + 1 :].lstrip(" \t")
            fields[i] = HeaderField(field.name, rest, key=key)
            self._changed(key)
            return value[:cut].strip()
        return None

    def copy(self) -> Headers:
        """A shallow copy: fields are shared until replaced (fields are never mutated)."""
        clone = Headers(list(self._fields))
        return clone

    def lines(self) -> list[str]:
        """Every field as it goes on the wire, without CRLF."""
        return [f.line() for f in self._fields]
