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

#: Typed views derived from one header, cached under their own key ("via:top" is the top
#: Via alone): a change to the header drops them too.  A new derived view is added here.
DERIVED_VIEWS: dict[str, tuple[str, ...]] = {"via": ("via:top",)}

_key_cache: dict[str, str] = {}
_MISSING = object()


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

    :class:`Headers` does not keep these objects (it keeps parallel lists, which the parser
    fills without a Python call per line); they are the unit of exchange with builders.
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

    Storage is four parallel lists -- canonical keys, names as written, unfolded values and
    original lines (None once a field is made locally) -- so that a lookup is one C-level
    ``list.index`` over the keys and parsing creates no object per header.
    """

    __slots__ = ("_keys", "_names", "_values", "_raws", "_cache")

    def __init__(self, fields: list[HeaderField] | None = None) -> None:
        self._keys: list[str] = []
        self._names: list[str] = []
        self._values: list[str] = []
        self._raws: list[str | None] = []
        self._cache: dict[str, object] = {}
        if fields:
            for f in fields:
                self._keys.append(f.key)
                self._names.append(f.name)
                self._values.append(f.value)
                self._raws.append(f.raw)

    @classmethod
    def _from_lists(cls, keys: list[str], names: list[str], values: list[str], raws: list[str | None]) -> Headers:
        """Adopt the lists built by the parser (no copy)."""
        headers = cls()  # not cls.__new__: a mypyc-compiled class has no Python-level __new__
        headers._keys = keys
        headers._names = names
        headers._values = values
        headers._raws = raws
        headers._cache = {}
        return headers

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> Headers:
        """Build from ``(name, value)`` pairs, as when composing a new message."""
        return cls([HeaderField(name, value) for name, value in pairs])

    # -- reading ---------------------------------------------------------------------

    @property
    def _fields(self) -> list[HeaderField]:
        """The fields as :class:`HeaderField` objects, in wire order (a fresh list)."""
        return [
            HeaderField(name, value, raw, key)
            for key, name, value, raw in zip(self._keys, self._names, self._values, self._raws)
        ]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return zip(self._names, self._values)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return canonical_key(name) in self._keys

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._keys == other._keys and self._values == other._values

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(zip(self._names, self._values))!r})"

    def fields(self) -> list[HeaderField]:
        """A copy of the field list, in wire order."""
        return self._fields

    def first(self, key: str) -> str | None:
        """Value of the first field with canonical *key* (no spelling folding: fast path)."""
        try:
            return self._values[self._keys.index(key)]
        except ValueError:
            return None

    def values_of(self, key: str) -> list[str]:
        """Values of every field with canonical *key*, one per field (fast path)."""
        keys = self._keys
        n = keys.count(key)
        if n == 1:
            return [self._values[keys.index(key)]]
        values = self._values
        out: list[str] = []
        i = -1
        for _ in range(n):  # C-level list.index scans, no Python step per other header
            i = keys.index(key, i + 1)
            out.append(values[i])
        return out

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of the first field called *name* (the whole field, commas included)."""
        try:
            return self._values[self._keys.index(canonical_key(name))]
        except ValueError:
            return default

    def get_fields(self, name: str) -> list[str]:
        """Values of every field called *name*, one per field, unsplit."""
        return self.values_of(canonical_key(name))

    def get_all(self, name: str) -> list[str]:
        """Every value of *name*: list headers split at top-level commas, in order."""
        key = canonical_key(name)
        values = self.values_of(key)
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
        return self._keys.count(canonical_key(name))

    def typed(self, key: str, parse: Callable[[Headers], T]) -> T:
        """The typed view of header *key* (a canonical key), parsed once and cached.

        The cache is dropped whenever that header changes, so a view is never stale.
        """
        cache = self._cache
        value = cache.get(key, _MISSING)
        if value is _MISSING:
            value = cache[key] = parse(self)
        return value  # type: ignore[return-value]

    # -- writing ---------------------------------------------------------------------

    def _changed(self, key: str) -> None:
        cache = self._cache
        if cache:
            # Views are keyed by header key, or by a key of DERIVED_VIEWS[key] for views
            # derived from it: two dict operations, not a scan of the cache per edit.
            cache.pop(key, None)
            derived = DERIVED_VIEWS.get(key)
            if derived is not None:
                for view in derived:
                    cache.pop(view, None)

    def _insert(self, i: int, key: str, name: str, value: str) -> None:
        self._keys.insert(i, key)
        self._names.insert(i, name)
        self._values.insert(i, value)
        self._raws.insert(i, None)

    def _delete(self, i: int) -> None:
        del self._keys[i], self._names[i], self._values[i], self._raws[i]

    def add(self, name: str, value: str) -> None:
        """Append a field at the end of the header section."""
        key = canonical_key(name)
        self._insert(len(self._keys), key, name, value)
        self._changed(key)

    def prepend(self, name: str, value: str) -> None:
        """Insert a field before the first field of the same name (or at the top).

        This is how a proxy pushes a Via or Record-Route: the new value becomes the topmost
        one while every other field keeps its place.
        """
        key = canonical_key(name)
        try:
            i = self._keys.index(key)
        except ValueError:
            i = 0
        self._insert(i, key, name, value)
        self._changed(key)

    def set(self, name: str, value: str) -> None:
        """Replace every field called *name* by one field, at the first one's position.

        The name keeps its spelling on the wire when the field existed (``l`` stays ``l``).
        """
        key = canonical_key(name)
        keys = self._keys
        n = keys.count(key)
        if n == 0:
            self._insert(len(keys), key, name, value)
        else:
            i = keys.index(key)
            if n > 1:
                for j in range(len(keys) - 1, i, -1):
                    if keys[j] == key:
                        self._delete(j)
            self._names[i] = name
            self._values[i] = value
            self._raws[i] = None
        self._changed(key)

    def set_default(self, name: str, value: str) -> None:
        """Add *name* only when absent."""
        if name not in self:
            self.add(name, value)

    def remove(self, name: str) -> int:
        """Remove every field called *name*; returns how many were removed."""
        key = canonical_key(name)
        keys = self._keys
        removed = keys.count(key)
        if removed:
            for j in range(len(keys) - 1, -1, -1):
                if keys[j] == key:
                    self._delete(j)
            self._changed(key)
        return removed

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of list header *name*.

        When several values share the field, the rest of the field keeps its original text
        (from the character after the comma), so nothing else is rewritten.
        """
        key = canonical_key(name)
        try:
            i = self._keys.index(key)
        except ValueError:
            return None
        value = self._values[i]
        cut = first_comma(value)
        self._changed(key)
        if cut < 0:
            self._delete(i)
            return value.strip()
        self._values[i] = value[cut + 1 :].lstrip(" \t")
        self._raws[i] = None
        return value[:cut].strip()

    def copy(self) -> Headers:
        """An independent copy (the strings are shared; they are immutable)."""
        return Headers._from_lists(list(self._keys), list(self._names), list(self._values), list(self._raws))

    def lines(self) -> list[str]:
        """Every field as it goes on the wire, without CRLF.

        Untouched fields are their original text: copy the list and render only the
        fields made or changed locally, found with C-level ``list.index`` scans.
        """
        out: list[str | None] = self._raws[:]
        names = self._names
        values = self._values
        i = 0
        try:
            while True:
                i = out.index(None, i)
                out[i] = f"{names[i]}: {values[i]}"
                i += 1
        except ValueError:
            pass
        return out  # type: ignore[return-value]
