"""Identifier sources: branch, tag, Call-ID and other unique tokens.

The core never draws randomness itself.  Production code injects a source backed by the
operating system's CSPRNG (``sipline.runtime.ids``); tests inject :class:`CountingIdSource`
so that every generated message is byte-exact and repeatable.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["IdSource", "CountingIdSource", "BRANCH_MAGIC"]

#: RFC 3261 §8.1.1.7: branches of compliant implementations start with this cookie.
BRANCH_MAGIC = "z9hG4bK"


class IdSource(Protocol):
    """Makes the unique tokens the core needs."""

    def token(self, nbytes: int = 8) -> str:
        """A fresh token of *nbytes* of entropy, as SIP token characters."""
        ...

    def branch(self) -> str:
        """A fresh Via branch starting with the RFC 3261 magic cookie."""
        ...

    def tag(self) -> str:
        """A fresh From/To tag."""
        ...

    def call_id(self) -> str:
        """A fresh Call-ID."""
        ...


class CountingIdSource:
    """Deterministic ids for tests: ``prefix`` + a counter."""

    def __init__(self, prefix: str = "id") -> None:
        self._prefix = prefix
        self._n = 0

    def _next(self) -> str:
        self._n += 1
        return f"{self._prefix}{self._n}"

    def token(self, nbytes: int = 8) -> str:
        return self._next()

    def branch(self) -> str:
        return BRANCH_MAGIC + self._next()

    def tag(self) -> str:
        return "tag" + self._next()

    def call_id(self) -> str:
        return "call" + self._next()
