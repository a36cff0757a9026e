"""Persistence for the registrar, authentication, limits and call records.

Roles depend on the protocols in :mod:`sipline.storage.base` and get concrete stores from
:func:`open_storage`, which picks a backend from one URL so the operator's configuration
is a single string:

- ``sqlite:///var/lib/sipline/sipline.db`` (the default; a bare path or a directory works
  too, a directory getting ``sipline.db`` inside it),
- ``memory://`` (tests, throw-away nodes),
- ``redis://host:port/db`` (several nodes sharing registrations and limits).  Redis keeps
  no call records: pass ``records_url`` to persist them, otherwise they stay in a bounded
  in-memory store.

Call records may live apart from the rest: ``records_url`` (any backend) sends them to
another store, typically ``postgresql://user:password@host:port/db`` where billing and
reports read them (:mod:`sipline.storage.postgres`).  PostgreSQL holds call records only,
so it is refused as the main URL.  :func:`open_records` opens just a record store (the
``sipline cdr`` command).

Query parameters ``max_bindings`` (per AOR) and, for Redis, ``prefix`` tune the stores.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from sipline.sip.errors import UsageError
from sipline.storage.base import (
    DEFAULT_MAX_BINDINGS,
    CallRecordStore,
    CounterStore,
    LocationStore,
    SubscriberStore,
    transact,
)
from sipline.storage.errors import (
    RecordExists,
    SchemaError,
    StaleBindingSet,
    StorageError,
    StorageUnavailable,
    SubscriberExists,
    SubscriberNotFound,
    TooManyBindings,
)
from sipline.storage.models import (
    Binding,
    BindingChanges,
    BindingSet,
    CallRecord,
    Source,
    Subscriber,
    compute_ha1,
    make_subscriber,
)

__all__ = [
    "open_storage",
    "open_records",
    "Storage",
    "DEFAULT_SQLITE_FILE",
    "LocationStore",
    "SubscriberStore",
    "CounterStore",
    "CallRecordStore",
    "transact",
    "Binding",
    "BindingChanges",
    "BindingSet",
    "Source",
    "Subscriber",
    "make_subscriber",
    "compute_ha1",
    "CallRecord",
    "StorageError",
    "StorageUnavailable",
    "SchemaError",
    "StaleBindingSet",
    "TooManyBindings",
    "SubscriberExists",
    "SubscriberNotFound",
    "RecordExists",
]

_log = logging.getLogger(__name__)

#: File name used when open_storage() is given a directory.
DEFAULT_SQLITE_FILE = "sipline.db"


class Storage:
    """The four stores of one backend plus the means to release it.

    Usable as ``async with await open_storage(url) as storage:``; ``close()`` is
    idempotent.
    """

    def __init__(
        self,
        url: str,
        location: LocationStore,
        subscribers: SubscriberStore,
        counters: CounterStore,
        records: CallRecordStore,
        closers: tuple[Callable[[], Awaitable[None]], ...] = (),
    ) -> None:
        self.url = url
        self.location = location
        self.subscribers = subscribers
        self.counters = counters
        self.records = records
        self._closers = closers

    async def close(self) -> None:
        closers, self._closers = self._closers, ()
        for close in closers:
            await close()

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"


def _sqlite_path(url: str) -> str:
    path = url[len("sqlite://") :] if url.startswith("sqlite://") else url
    path = path.split("?", 1)[0]
    if not path:
        raise UsageError(f"sqlite URL without a path: {url!r}")
    if Path(path).is_dir():
        path = str(Path(path) / DEFAULT_SQLITE_FILE)
    return path


def _max_bindings(query: dict[str, list[str]], default: int) -> int:
    try:
        value = int(query.get("max_bindings", [default])[-1])
    except ValueError as exc:
        raise UsageError(f"max_bindings must be an integer: {exc}") from exc
    if value < 1:
        # Checked before connecting, so a bad option cannot leak a half-open backend.
        raise UsageError(f"max_bindings must be at least 1, got {value}")
    return value


Closer = Callable[[], Awaitable[None]]


async def open_records(url: str | Path) -> tuple[CallRecordStore, Closer]:
    """Open only a call-record store: PostgreSQL, or the records of any other backend.

    Returns the store and the coroutine function that releases it.
    """
    text = str(url)
    if "://" in text and urlsplit(text).scheme.lower() in ("postgres", "postgresql"):
        try:
            from sipline.storage.postgres import PostgresCallRecordStore
        except ImportError as exc:  # the optional driver
            raise UsageError(f"call records in PostgreSQL need asyncpg: pip install 'sipline[postgres]' "
                             f"({exc})") from exc

        store = await PostgresCallRecordStore.open(text)
        return store, store.close
    storage = await open_storage(text)
    return storage.records, storage.close


async def open_storage(
    url: str | Path = DEFAULT_SQLITE_FILE,
    *,
    max_bindings: int = DEFAULT_MAX_BINDINGS,
    records_url: str | Path | None = None,
) -> Storage:
    """Open the backend named by ``url`` (see the module docstring) and return its stores.

    With ``records_url``, call records go to that store instead of ``url``'s.
    """
    if records_url is None:
        return await _open_main(url, max_bindings, None)
    records, close_records = await open_records(records_url)
    try:
        storage = await _open_main(url, max_bindings, records)
    except BaseException:
        await close_records()
        raise
    storage._closers = (*storage._closers, close_records)
    return storage


async def _open_main(url: str | Path, max_bindings: int, records: CallRecordStore | None) -> Storage:
    """The backend of ``url``, with ``records`` (opened elsewhere) in place of its own."""
    text = str(url)
    scheme = urlsplit(text).scheme if "://" in text else ""
    query = parse_qs(urlsplit(text).query)
    max_bindings = _max_bindings(query, max_bindings)

    if scheme == "memory":
        from sipline.storage import memory

        return Storage(
            text,
            memory.MemoryLocationStore(max_bindings),
            memory.MemorySubscriberStore(),
            memory.MemoryCounterStore(),
            records if records is not None else memory.MemoryCallRecordStore(),
        )

    if scheme in ("", "sqlite"):
        from sipline.storage import sqlite

        db = await sqlite.SqliteDatabase.open(_sqlite_path(text))
        return Storage(
            text,
            sqlite.SqliteLocationStore(db, max_bindings),
            sqlite.SqliteSubscriberStore(db),
            sqlite.SqliteCounterStore(db),
            records if records is not None else sqlite.SqliteCallRecordStore(db),
            (db.close,),
        )

    if scheme in ("redis", "rediss", "unix"):
        from sipline.storage import memory
        from sipline.storage import redis as redis_backend

        prefix = query.get("prefix", ["sipline:"])[-1]
        # Our own parameters must not reach redis-py, which rejects unknown options.
        own = {"prefix", "max_bindings"}
        kept = urlencode([(k, v) for k, vs in query.items() if k not in own for v in vs])
        client = redis_backend.connect(urlunsplit(urlsplit(text)._replace(query=kept)))
        if records is None:
            _log.warning("redis backend keeps call records in memory only; set records_url")
            records = memory.MemoryCallRecordStore()
        return Storage(
            text,
            redis_backend.RedisLocationStore(client, prefix, max_bindings),
            redis_backend.RedisSubscriberStore(client, prefix),
            redis_backend.RedisCounterStore(client, prefix),
            records,
            (client.aclose,),
        )

    if scheme in ("postgres", "postgresql"):
        raise UsageError("PostgreSQL holds call records only, not registrations: keep the storage URL "
                         "on sqlite or redis and send records there with records_url ([storage] cdr)")

    raise UsageError(f"unknown storage URL scheme {scheme!r} in {text!r}")
