"""Values parsed on first use: the machinery shared by the lazy Params/URI/NameAddr/Via.

Theory of operation: a proxy reads a From tag or a Via branch and forwards the rest, so the
parser checks a header with one precompiled regular expression and hands out a *lazy*
instance of the ordinary frozen dataclass.  A lazy class is a subclass with the same slots
(no field added): while unparsed, one base slot holds the source (text or match object).
The first read of any field parses the source into the real slots and then turns the
object into an instance of the base class (``__class__`` assignment is allowed because the
layouts are identical), so from then on every access is the dataclass's own, at C speed.

A lazy value is only built from a source that the complete parser accepts and reads the same
way, which the callers guarantee with their regular expressions; equality, hashing, repr,
``dataclasses.replace``, copy and pickle all see the parsed value.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LazyValue", "install_fields"]


class _Load:
    """Shadows one dataclass field on a lazy subclass: reading it parses the source."""

    __slots__ = ("name", "member", "base")

    def __init__(self, name: str, member: Any, base: type) -> None:
        self.name = name
        self.member = member
        self.base = base

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self.member
        obj._load()  # the object is now an instance of the base class
        return getattr(obj, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        # Only the dataclass __init__ sets fields (dataclasses.replace with every field
        # given calls the lazy class): it sets them all, so the value is the base's.
        self.member.__set__(obj, value)
        object.__setattr__(obj, "__class__", self.base)


def install_fields(lazy: type, base: type, names: tuple[str, ...]) -> None:
    """Put a loading descriptor over each field of *base* on its lazy subclass."""
    for name in names:
        setattr(lazy, name, _Load(name, base.__dict__[name], base))


class LazyValue:
    """Mixin for lazy subclasses: whole-value operations parse first, then defer to the base."""

    __slots__ = ()

    def _load(self) -> None:  # pragma: no cover - every lazy class defines it
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        self._load()
        return self == other

    def __hash__(self) -> int:
        self._load()
        return hash(self)

    def __repr__(self) -> str:
        self._load()
        return repr(self)

    def __str__(self) -> str:
        self._load()
        return str(self)

    def __reduce_ex__(self, protocol: Any) -> Any:
        self._load()
        return self.__reduce_ex__(protocol)
