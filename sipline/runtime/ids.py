"""Identifiers from the operating system's CSPRNG.

Branches, tags and Call-IDs must be unguessable (RFC 3261 §8.1.1.4 recommends
cryptographically random Call-IDs; predictable tags and branches make off-path spoofing of
CANCEL and BYE easy), so production uses :mod:`secrets`.  The sans-I/O core only sees the
:class:`~sipline.sip.ids.IdSource` protocol.
"""

from __future__ import annotations

import secrets

from ..sip.ids import BRANCH_MAGIC

__all__ = ["SecureIdSource"]


class SecureIdSource:
    """IdSource backed by :func:`secrets.token_hex`."""

    def token(self, nbytes: int = 8) -> str:
        return secrets.token_hex(nbytes)

    def branch(self) -> str:
        return BRANCH_MAGIC + secrets.token_hex(8)

    def tag(self) -> str:
        return secrets.token_hex(6)

    def call_id(self) -> str:
        return secrets.token_hex(12)
