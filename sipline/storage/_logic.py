"""Pure logic every backend shares, so the three of them cannot disagree.

A backend's job is reduced to "read these rows, write those rows atomically"; what the
rows should become — merging a REGISTER's changes, ordering bindings, refilling a token
bucket, flattening a value to JSON or CSV — is decided here, once, without I/O.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from sipline.sip.errors import UsageError
from sipline.storage.errors import TooManyBindings
from sipline.storage.models import (
    Binding,
    BindingChanges,
    CallRecord,
    Source,
    Subscriber,
    canonical_algorithm,
)

__all__ = [
    "binding_order",
    "sort_bindings",
    "merge_bindings",
    "binding_to_dict",
    "binding_from_dict",
    "binding_to_json",
    "binding_from_json",
    "subscriber_to_dict",
    "subscriber_from_dict",
    "ha1_of",
    "record_to_dict",
    "record_from_dict",
    "record_matches",
    "refill",
    "CSV_COLUMNS",
    "write_csv_header",
    "write_csv_row",
    "redact_url",
]


# ---------------------------------------------------------------------------------------
# Bindings


def binding_order(binding: Binding) -> tuple[float, float, str]:
    """Sort key: highest q first, then most recently refreshed, then contact for stability."""
    return (-binding.q, -binding.updated_at, binding.contact)


def sort_bindings(bindings: Iterable[Binding]) -> list[Binding]:
    return sorted(bindings, key=binding_order)


def merge_bindings(
    aor: str,
    stored: Iterable[Binding],
    changes: BindingChanges,
    now: float,
    max_bindings: int,
) -> dict[str, Binding]:
    """The bindings an AOR holds after ``changes``; expired ones are dropped on the way.

    Raises TooManyBindings instead of truncating: which binding to sacrifice is a policy
    decision (RFC 5626 §7 flow replacement, 403/503...) that belongs to the registrar.
    The version check is the caller's, since only it knows how to read the version
    atomically with the rows.
    """
    result = {} if changes.remove_all else {b.contact: b for b in stored if b.alive(now)}
    for contact in changes.remove:
        result.pop(contact, None)
    for binding in changes.upsert:
        if binding.aor != aor:
            raise UsageError(f"binding for {binding.aor} applied to {aor}")
        if binding.alive(now):
            result[binding.contact] = binding
        else:
            result.pop(binding.contact, None)
    if len(result) > max_bindings:
        raise TooManyBindings(aor, max_bindings)
    return result


def binding_to_dict(b: Binding) -> dict[str, Any]:
    return {
        "aor": b.aor,
        "contact": b.contact,
        "expires_at": b.expires_at,
        "q": b.q,
        "call_id": b.call_id,
        "cseq": b.cseq,
        "path": list(b.path),
        "instance_id": b.instance_id,
        "reg_id": b.reg_id,
        "received": None if b.received is None else str(b.received),
        "connection_id": b.connection_id,
        "node_id": b.node_id,
        "user_agent": b.user_agent,
        "updated_at": b.updated_at,
    }


def binding_from_dict(d: Mapping[str, Any]) -> Binding:
    received = d.get("received")
    path = d.get("path") or ()
    if isinstance(path, str):  # SQL column holding JSON text
        path = json.loads(path)
    return Binding(
        aor=d["aor"],
        contact=d["contact"],
        expires_at=float(d["expires_at"]),
        q=float(d["q"]),
        call_id=d["call_id"],
        cseq=int(d["cseq"]),
        path=tuple(path),
        instance_id=d.get("instance_id"),
        reg_id=None if d.get("reg_id") is None else int(d["reg_id"]),
        received=None if not received else Source.parse(received),
        connection_id=d.get("connection_id"),
        node_id=d.get("node_id"),
        user_agent=d.get("user_agent") or "",
        updated_at=float(d.get("updated_at") or 0.0),
    )


def binding_to_json(b: Binding) -> str:
    return json.dumps(binding_to_dict(b), separators=(",", ":"))


def binding_from_json(text: str | bytes) -> Binding:
    return binding_from_dict(json.loads(text))


# ---------------------------------------------------------------------------------------
# Subscribers

_SUBSCRIBER_FIELDS = (
    "username",
    "domain",
    "ha1_md5",
    "ha1_sha256",
    "ha1_sha512_256",
    "enabled",
    "created_at",
    "display_name",
    "realm",
)


def subscriber_to_dict(s: Subscriber) -> dict[str, Any]:
    return {name: getattr(s, name) for name in _SUBSCRIBER_FIELDS}


def subscriber_from_dict(d: Mapping[str, Any]) -> Subscriber:
    values = {name: d[name] for name in _SUBSCRIBER_FIELDS}
    values["enabled"] = bool(values["enabled"])
    values["created_at"] = float(values["created_at"])
    return Subscriber(**values)


def ha1_of(sub: Subscriber | None, algorithm: str) -> str | None:
    """Digest lookup result: disabled or unknown subscribers have no credentials.

    The algorithm is validated even for unknown users, so a typo in the auth layer
    fails loudly instead of looking like "no such user".
    """
    canonical_algorithm(algorithm)
    if sub is None or not sub.enabled:
        return None
    return sub.ha1(algorithm)


# ---------------------------------------------------------------------------------------
# Call records

_RECORD_SCALARS = (
    "id",
    "call_id",
    "start",
    "ring",
    "answer",
    "end",
    "caller",
    "callee",
    "callee_normalized",
    "from_trunk",
    "to_trunk",
    "status",
    "reason",
    "hangup_by",
    "duration",
    "pdd",
    "media_stats",
)


def record_to_dict(r: CallRecord) -> dict[str, Any]:
    d = {name: getattr(r, name) for name in _RECORD_SCALARS}
    d["extra"] = json.dumps(dict(r.extra), sort_keys=True)
    return d


def record_from_dict(d: Mapping[str, Any]) -> CallRecord:
    values = {name: d[name] for name in _RECORD_SCALARS}
    extra = d.get("extra") or "{}"
    values["extra"] = json.loads(extra) if isinstance(extra, str) else extra
    return CallRecord(**values)


def record_matches(
    r: CallRecord,
    since: float | None,
    until: float | None,
    trunk: str | None,
    status: str | None,
) -> bool:
    """The query filter in plain Python: since <= start < until, trunk on either side."""
    if since is not None and r.start < since:
        return False
    if until is not None and r.start >= until:
        return False
    if trunk is not None and trunk not in (r.from_trunk, r.to_trunk):
        return False
    return status is None or r.status == status


# ---------------------------------------------------------------------------------------
# Token bucket


def refill(
    tokens: float | None, updated: float | None, rate: float, burst: float, now: float
) -> tuple[bool, float, float]:
    """One ``take`` on a token bucket: ``(allowed, tokens_left, new_updated)``.

    A missing bucket is full.  Time running backwards (two nodes with skewed clocks
    sharing a bucket) adds nothing rather than draining the bucket or raising.
    """
    if rate <= 0 or burst <= 0:
        raise UsageError("token bucket needs a positive rate and burst")
    if tokens is None or updated is None:
        tokens, updated = burst, now
    elapsed = max(0.0, now - updated)
    tokens = min(burst, tokens + elapsed * rate)
    updated = max(updated, now)
    if tokens >= 1.0:
        return True, tokens - 1.0, updated
    return False, tokens, updated


# ---------------------------------------------------------------------------------------
# CSV export

CSV_COLUMNS = (
    "id",
    "call_id",
    "start",
    "ring",
    "answer",
    "end",
    "caller",
    "callee",
    "callee_normalized",
    "from_trunk",
    "to_trunk",
    "status",
    "reason",
    "hangup_by",
    "duration",
    "pdd",
    "media_stats",
    "extra",
)
_TIME_COLUMNS = frozenset({"start", "ring", "answer", "end"})


def _iso(ts: float) -> str:
    # Spreadsheet users read ISO 8601; UTC avoids the DST ambiguity of local time.
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name in _TIME_COLUMNS:
        return _iso(value)
    if name in ("duration", "pdd"):
        return f"{value:.3f}"
    return str(value)


def write_csv_header(stream: TextIO) -> Any:
    """Write the header line and return the csv writer to pass to write_csv_row."""
    writer = csv.writer(stream, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    return writer


def write_csv_row(writer: Any, r: CallRecord) -> None:
    d = record_to_dict(r)
    writer.writerow([_cell(name, d[name]) for name in CSV_COLUMNS])


# ---------------------------------------------------------------------------------------
# URLs


def redact_url(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
