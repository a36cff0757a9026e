"""Rows of the location tables and their Binding values, for the SQLite location store.

Kept apart from :mod:`sipline.storage.sqlite` because it is the registrar's hot path: every
REGISTER reads its AOR's rows back (``read_bindings_and_version``), writes the ones that changed
(``write_merged``) and bumps the AOR's version (``touch``), and each of these was shaped by
profiles under SIPp load (bench/register_vs_kamailio.py).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sipline.storage._logic import binding_from_dict, binding_to_dict
from sipline.storage.models import Binding

__all__ = [
    "RowCache",
    "aor_version",
    "read_bindings",
    "read_bindings_and_version",
    "touch",
    "write_merged",
]


_BINDING_COLUMNS = tuple(binding_to_dict(Binding("a", "c", 0.0)))
_INSERT_BINDING = (
    f"INSERT INTO location_bindings ({', '.join(_BINDING_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _BINDING_COLUMNS)})"
)


# (aor, contact) is the primary key: a refreshed binding replaces its row in place.
_REPLACE_BINDING = "INSERT OR REPLACE" + _INSERT_BINDING[len("INSERT"):]


_SELECT_BINDINGS = f"SELECT {', '.join(_BINDING_COLUMNS)} FROM location_bindings WHERE aor = ?"
# The same rows with the AOR's version in one statement (one trip through SQLite's VM
# instead of two on every REGISTER).
_SELECT_BINDINGS_VERSION = (
    f"SELECT {', '.join(_BINDING_COLUMNS)}, "
    "(SELECT version FROM location_aors WHERE aor = ?1) FROM location_bindings WHERE aor = ?1"
)
assert _BINDING_COLUMNS == (
    "aor", "contact", "expires_at", "q", "call_id", "cseq", "path", "instance_id", "reg_id",
    "received", "connection_id", "node_id", "user_agent", "updated_at",
), "_binding_row and RowCache.binding follow this column order"


def _binding_row(b: Binding) -> tuple[Any, ...]:
    """The row of a binding, in ``_BINDING_COLUMNS`` order (``binding_to_dict`` flattened)."""
    return (
        b.aor, b.contact, b.expires_at, b.q, b.call_id, b.cseq,
        json.dumps(list(b.path)) if b.path else "[]",
        b.instance_id, b.reg_id, None if b.received is None else str(b.received),
        b.connection_id, b.node_id, b.user_agent, b.updated_at,
    )


class RowCache:
    """Row tuple -> Binding, for rows this process wrote or read before.

    Turning a row back into a Binding (JSON path, Source, a 14-field frozen dataclass) cost
    more than the SELECT itself, and a REGISTER reads back exactly the row the previous
    REGISTER of that AOR wrote.  The key is the whole row, so an entry can never be stale:
    another process writing the AOR produces a different row, hence a miss.
    """

    __slots__ = ("_map", "_size")

    def __init__(self, size: int = 8192) -> None:
        self._map: dict[tuple[Any, ...], Binding] = {}
        self._size = size

    def binding(self, row: tuple[Any, ...]) -> Binding:
        found = self._map.get(row)
        if found is None:
            found = binding_from_dict(dict(zip(_BINDING_COLUMNS, row)))
            self.remember(row, found)
        return found

    def remember(self, row: tuple[Any, ...], binding: Binding) -> None:
        cache = self._map
        if len(cache) >= self._size:
            del cache[next(iter(cache))]  # the oldest entry
        cache[row] = binding


def write_merged(conn: sqlite3.Connection, aor: str, stored: dict[str, Binding],
                 merged: dict[str, Binding], cache: RowCache | None = None) -> int:
    """Write only the bindings that changed (a refresh touches one row), then version."""
    gone = [(aor, contact) for contact in stored if contact not in merged]
    if gone:
        conn.executemany("DELETE FROM location_bindings WHERE aor = ? AND contact = ?", gone)
    changed = [b for contact, b in merged.items() if stored.get(contact) != b]
    if changed:
        rows = [_binding_row(b) for b in changed]
        if cache is not None:
            for row, b in zip(rows, changed):
                cache.remember(row, b)
        conn.executemany(_REPLACE_BINDING, rows)
    return touch(conn, aor, len(merged))


def read_bindings(conn: sqlite3.Connection, aor: str, cache: RowCache | None = None) -> dict[str, Binding]:
    rows = conn.execute(_SELECT_BINDINGS, (aor,))
    if cache is None:
        return {row["contact"]: binding_from_dict(dict(row)) for row in rows}
    return {row["contact"]: cache.binding(tuple(row)) for row in rows}


def read_bindings_and_version(conn: sqlite3.Connection, aor: str,
                              cache: RowCache) -> tuple[dict[str, Binding], int]:
    """``read_bindings`` and ``aor_version`` in one statement."""
    stored: dict[str, Binding] = {}
    version: int | None = None
    for row in conn.execute(_SELECT_BINDINGS_VERSION, (aor,)):
        values = tuple(row)
        stored[values[1]] = cache.binding(values[:-1])
        version = values[-1]
    if version is None:  # no binding (or, defensively, bindings without a version row)
        version = aor_version(conn, aor)
    return stored, int(version)


def aor_version(conn: sqlite3.Connection, aor: str) -> int:
    row = conn.execute("SELECT version FROM location_aors WHERE aor = ?", (aor,)).fetchone()
    return 0 if row is None else int(row[0])


def touch(conn: sqlite3.Connection, aor: str, left: int | None = None) -> int:
    """New version for ``aor`` after a change, or drop its row when no binding is left.

    ``left``: how many bindings the AOR now has, when the caller knows (saves a COUNT).
    """
    if left is None:
        left = conn.execute("SELECT COUNT(*) FROM location_bindings WHERE aor = ?", (aor,)).fetchone()[0]
    if left == 0:
        conn.execute("DELETE FROM location_aors WHERE aor = ?", (aor,))
        return 0
    version = int(
        conn.execute(
            "UPDATE sequences SET value = value + 1 WHERE name = 'location' RETURNING value"
        ).fetchone()[0]
    )
    conn.execute(
        "INSERT INTO location_aors (aor, version) VALUES (?, ?) "
        "ON CONFLICT (aor) DO UPDATE SET version = excluded.version",
        (aor, version),
    )
    return version
