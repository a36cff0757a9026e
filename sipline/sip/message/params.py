"""Header and URI parameters: ordered, case-insensitive by name, immutable.

Parameters appear everywhere (Via branch, From tag, URI transport, Contact expires).  RFC 3261
compares parameter names case-insensitively but a proxy must forward them as written, so
``Params`` keeps the original spelling and order and only folds case when looking up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ._lazy import LazyValue, install_fields
from ._scan import split_params, unquote

__all__ = ["Params"]


@dataclass(frozen=True, slots=True)
class Params:
    """An ordered list of ``(name, value)`` pairs; ``value`` is None for flag parameters.

    Values are stored as written (quoted strings keep their quotes); use :meth:`get_unquoted`
    for the decoded form.
    """

    items: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Params:
        """Parse ``;a=b;c`` (leading ``;`` optional).  Raises ParseError."""
        if not text:
            return _EMPTY
        return cls(tuple(split_params(text)))

    def _find(self, name: str) -> int:
        lname = name.lower()
        for i, (key, _) in enumerate(self.items):
            if key == lname or key.lower() == lname:
                return i
        return -1

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) >= 0

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of *name* as written, *default* if absent, None for a flag parameter."""
        i = self._find(name)
        if i < 0:
            return default
        return self.items[i][1]

    def get_unquoted(self, name: str, default: str | None = None) -> str | None:
        """Like :meth:`get` but with quoted-string values decoded."""
        value = self.get(name, default)
        return unquote(value) if value is not None else None

    def with_(self, name: str, value: str | None = None) -> Params:
        """A copy with *name* set to *value*, in place if present, else appended."""
        i = self._find(name)
        if i < 0:
            return Params(self.items + ((name, value),))
        items = list(self.items)
        items[i] = (self.items[i][0], value)
        return Params(tuple(items))

    def without(self, name: str) -> Params:
        """A copy with every occurrence of *name* removed."""
        lname = name.lower()
        kept = tuple(item for item in self.items if item[0].lower() != lname)
        return self if len(kept) == len(self.items) else Params(kept)

    def names(self) -> list[str]:
        """Lower-cased names, in order (for comparisons)."""
        return [key.lower() for key, _ in self.items]

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __str__(self) -> str:
        return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.items)


_EMPTY = Params()


# -- lazily split parameters ------------------------------------------------------------------

_ITEMS = Params.__dict__["items"]
# name -> search function for _LazyParams.get (names come from code: few, but bounded).
_GETTERS: dict[str, Callable[[str], re.Match[str] | None]] = {}


class _LazyParams(LazyValue, Params):
    """Parameters kept as their text ``;a=b;c`` until something needs the items.

    Only built (by :func:`lazy_params`) from text already matched by a parser's regular
    expression: ASCII, ``;name[=value]`` pieces with no ``;``, quote or whitespace inside
    a name or value.  ``get`` answers from the text; anything else splits it first.
    """

    __slots__ = ()

    def _load(self) -> None:
        text: str = _ITEMS.__get__(self)
        items: list[tuple[str, str | None]] = []
        for piece in text[1:].split(";"):
            name, eq, value = piece.partition("=")
            items.append((name, value if eq else None))
        _ITEMS.__set__(self, tuple(items))
        object.__setattr__(self, "__class__", Params)

    def get(self, name: str, default: str | None = None) -> str | None:
        # Params.get without splitting: the first piece whose name matches, found by one
        # case-insensitive search (the text is ASCII, so re.I folds case as str.lower does).
        search = _GETTERS.get(name)
        if search is None:
            if not name.isascii():
                self._load()
                return self.get(name, default)
            search = re.compile(f";{re.escape(name)}(?:=([^;]*))?(?=;|\\Z)", re.IGNORECASE).search
            if len(_GETTERS) < 256:
                _GETTERS[name] = search
        m = search(_ITEMS.__get__(self))
        if m is None:
            return default
        value: str | None = m[1]
        return value

    def __bool__(self) -> bool:
        return True  # never built from empty text

    def __str__(self) -> str:
        # Params renders ";name[=value]" per item: for the accepted shapes, the text itself.
        text: str = _ITEMS.__get__(self)
        return text


install_fields(_LazyParams, Params, ("items",))
_NEW = object.__new__


def lazy_params(text: str) -> Params:
    """A :class:`Params` for non-empty *text* of the shape :class:`_LazyParams` describes."""
    params: Params = _NEW(_LazyParams)
    _ITEMS.__set__(params, text)
    return params
