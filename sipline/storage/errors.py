"""Errors raised by the storage layer.

They hang off :class:`sipline.sip.errors.SiplineError` so one ``except SiplineError``
still catches everything sipline raises on purpose, while a registrar can tell the
cases it must answer differently apart: a lost compare-and-swap is retried, too many
bindings becomes a 403/503 decision upstream, a missing backend is a 500 plus an alarm.
Invalid values handed to the store are local misuse and raise
:class:`~sipline.sip.errors.UsageError` instead.
"""

from __future__ import annotations

from sipline.sip.errors import SiplineError

__all__ = [
    "StorageError",
    "StorageUnavailable",
    "SchemaError",
    "StaleBindingSet",
    "TooManyBindings",
    "SubscriberExists",
    "SubscriberNotFound",
    "RecordExists",
]


class StorageError(SiplineError):
    """Base of every storage failure."""


class StorageUnavailable(StorageError):
    """The backend cannot be reached or was already closed."""


class SchemaError(StorageError):
    """The on-disk schema is newer than this code, or a migration failed."""


class StaleBindingSet(StorageError):
    """A conditional apply() lost the race: the AOR changed since the snapshot.

    The registrar's decision was computed from bindings that no longer exist, so it must
    be recomputed from a fresh snapshot (:func:`sipline.storage.base.transact` does that).
    """

    def __init__(self, aor: str, expected: int, actual: int) -> None:
        super().__init__(f"bindings of {aor} changed: expected version {expected}, found {actual}")
        self.aor = aor
        self.expected = expected
        self.actual = actual


class TooManyBindings(StorageError):
    """Applying the change would leave more bindings on one AOR than allowed."""

    def __init__(self, aor: str, limit: int) -> None:
        super().__init__(f"{aor} would exceed {limit} bindings")
        self.aor = aor
        self.limit = limit


class SubscriberExists(StorageError):
    """add() found the (username, domain) or (username, realm) pair already taken."""


class SubscriberNotFound(StorageError):
    """The subscriber to change does not exist."""


class RecordExists(StorageError):
    """A call record with the same id was already stored."""
