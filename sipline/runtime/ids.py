"""Identifiers from the operating system's CSPRNG.

Branches, tags and Call-IDs must be unguessable (RFC 3261 §8.1.1.4 recommends
cryptographically random Call-IDs; predictable tags and branches make off-path spoofing of
CANCEL and BYE easy), so production uses :func:`os.urandom`.  The sans-I/O core only sees
the :class:`~sipline.sip.ids.IdSource` protocol.

A proxy draws two or three identifiers per message; one ``getrandom`` system call each
showed up in profiles, so the source reads 4 KiB at a time and hands out slices.  The bytes
are the same CSPRNG output, only read ahead.  A forked worker must not hand out the bytes
its parent (or sibling) also holds, so every source drops its pool in a fork's child.
"""

from __future__ import annotations

import os
import weakref

from ..sip.ids import BRANCH_MAGIC

__all__ = ["SecureIdSource"]

_POOL_BYTES = 4096
_SOURCES: weakref.WeakSet[SecureIdSource] = weakref.WeakSet()


class SecureIdSource:
    """IdSource backed by the OS CSPRNG (read ahead in 4 KiB blocks)."""

    __slots__ = ("_pool", "_pos", "__weakref__")

    def __init__(self) -> None:
        self._pool = ""
        self._pos = 0
        _SOURCES.add(self)

    def _hex(self, nbytes: int) -> str:
        chars = 2 * nbytes
        pos = self._pos
        end = pos + chars
        if end > len(self._pool):
            self._pool = os.urandom(max(_POOL_BYTES, nbytes)).hex()
            pos, end = 0, chars
        self._pos = end
        return self._pool[pos:end]

    def _forget(self) -> None:
        self._pool = ""
        self._pos = 0

    def token(self, nbytes: int = 8) -> str:
        return self._hex(nbytes)

    def branch(self) -> str:
        return BRANCH_MAGIC + self._hex(8)

    def tag(self) -> str:
        return self._hex(6)

    def call_id(self) -> str:
        return self._hex(12)


def _after_fork_in_child() -> None:
    for source in list(_SOURCES):
        source._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
