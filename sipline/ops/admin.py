"""The local admin endpoint: its protocol, the client the CLI uses and table rendering.

Protocol (version 1).  The server listens on a loopback TCP address (``[admin] listen``,
port 0 by default) and, once bound, writes ``HOST:PORT`` (IPv6 host in brackets) and a
newline to ``<data_dir>/admin.port``; it removes the file when it stops.  The CLI needs
nothing but ``--data`` to find it.  Plain HTTP/1.1, no authentication (loopback only),
``Content-Type: application/json``, UTF-8.

``GET /registrations`` -> 200, a JSON list with one object per live binding:

    aor         string   address-of-record, "sip:alice@example.com"
    contact     string   the registered Contact URI
    expires_in  integer  seconds until the binding expires
    received    string   where the REGISTER came from, "udp:192.0.2.4:5060" (or null)
    transport   string   transport of that flow, "udp" | "tcp" | "tls" | "ws" | "wss" (or null)
    user_agent  string   the User-Agent header of the REGISTER ("" when absent)

``GET /calls`` -> 200, a JSON list with one object per call in progress:

    call_id   string  Call-ID of the (first) dialog
    from      string  caller address, "sip:alice@example.com"
    to        string  callee address
    state     string  "trying" | "ringing" | "answered" | "ending"
    started   number  Unix time (seconds) the INVITE arrived
    duration  number  seconds since started
    worker    integer worker mode only: the worker process handling the call

``GET /trunks`` -> 200, a JSON list with one object per SBC trunk (empty without trunks):

    name          string   trunk name
    kind          string   "carrier" | "customer"
    channels      integer  calls in progress on the trunk (both directions)
    max_channels  integer  channel cap, 0 = none
    cps           number   new calls per second, averaged over the last few seconds
    max_cps       number   CPS cap, 0 = none
    attempts      integer  call attempts since the node started
    finals        object   final status -> count ("503": 4); carriers: what the carrier
                           answered ("0" = no answer), customers: what we answered
    hosts         list     carriers only: {"host": "udp:198.51.100.1:5060",
                           "state": "up" | "down" | "unchecked"}
    registration  object   carriers with register = true: {"registered": bool,
                           "expires_in": seconds, "last_status": integer or null}

Any other path answers 404 with ``{"error": "..."}``.  Extra fields may be added to the
objects later; clients ignore what they do not know.

Worker mode (``workers = N``).  Calls and SBC counters live in the worker process that
owns the call, so the endpoint (served by worker 0) asks every other worker for its rows
over a loopback socket the parent bound for it before forking (same protocol, local state
only, see :mod:`sipline.ops.gather`) and answers for the whole server with
:func:`merge_rows`: calls and (with a per-process ``memory://`` store) registrations are
concatenated, each call tagged with ``worker``; per-trunk counters are summed.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sipline.storage.models import Binding

__all__ = [
    "ADMIN_PORT_FILE",
    "REGISTRATION_FIELDS",
    "CALL_FIELDS",
    "TRUNK_FIELDS",
    "STATUS_HINTS",
    "status_hint",
    "AdminError",
    "AdminUnavailable",
    "AdminClient",
    "write_port_file",
    "read_port_file",
    "remove_port_file",
    "registration_row",
    "render_table",
    "format_timestamp",
    "format_duration",
    "merge_rows",
]

#: File in the data directory announcing where the admin endpoint listens.
ADMIN_PORT_FILE = "admin.port"

#: Fields of one /registrations object, in display order.
REGISTRATION_FIELDS = ("aor", "contact", "expires_in", "received", "transport", "user_agent")
#: Fields of one /calls object, in display order.
CALL_FIELDS = ("call_id", "from", "to", "state", "started", "duration")
#: Fields of one /trunks object, in display order.
TRUNK_FIELDS = ("name", "kind", "channels", "max_channels", "cps", "max_cps", "attempts", "finals", "hosts")

#: What many answers of one status on a trunk usually mean, for ``sipline trunks``.
STATUS_HINTS = {
    0: "no answer at all: the host is unreachable, a firewall drops us, or the wrong port/transport",
    401: "the carrier wants digest credentials we do not have or got wrong (username, password, realm)",
    403: "refused: our IP is not on the carrier's allow list, the account is blocked or out of credit, "
         "or the caller ID is not permitted",
    404: "unknown number: the callee number is badly formatted for this carrier (prefix, + or not) "
         "or does not exist",
    407: "the carrier challenges and our credentials did not satisfy it",
    408: "timeouts: the far side is overloaded or the path loses packets",
    480: "callee temporarily unavailable (not registered, do-not-disturb)",
    484: "incomplete number: the dial plan or number format is wrong",
    486: "callee busy: normal in small numbers; many means dialling the same numbers again and again",
    487: "cancelled by the caller before answer (hang-ups while ringing, dialer abandon)",
    488: "no common codec: compare the trunk's codecs with what the callers offer",
    500: "the far side has an internal error",
    502: "the carrier could not reach the next network",
    503: "over capacity: the carrier (or our own channel/CPS cap) refuses new calls; check limits "
         "and Retry-After",
    603: "declined: the callee or the carrier's fraud/spam filter rejects the calls (caller ID reputation)",
}


def status_hint(status: int) -> str:
    """One line on what many answers of ``status`` usually mean ("" when nothing useful)."""
    return STATUS_HINTS.get(status, "")


class AdminError(Exception):
    """The admin endpoint answered something unusable."""


class AdminUnavailable(AdminError):
    """No server is reachable: not started, stopped, or another data directory."""


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def write_port_file(data_dir: Path, host: str, port: int) -> Path:
    """Announce the bound admin address (server side); written atomically."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / ADMIN_PORT_FILE
    temp = path.with_suffix(".tmp")
    temp.write_text(_format_address(host, port) + "\n")
    temp.replace(path)
    return path


def remove_port_file(data_dir: Path) -> None:
    """Withdraw the announcement when the server stops."""
    (data_dir / ADMIN_PORT_FILE).unlink(missing_ok=True)


def read_port_file(data_dir: Path) -> tuple[str, int]:
    """``(host, port)`` from ``<data_dir>/admin.port``; a bare port means 127.0.0.1."""
    path = data_dir / ADMIN_PORT_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise AdminUnavailable(
            f"the sipline server is not running (no {ADMIN_PORT_FILE} in {data_dir})"
        ) from None
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.removeprefix("[").removesuffix("]")
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise AdminError(f"{path} is damaged: {text!r}")
    return host, int(port)


def registration_row(binding: Binding, now: float) -> dict[str, Any]:
    """One /registrations object for a stored binding (server side helper)."""
    received = binding.received
    return {
        "aor": binding.aor,
        "contact": binding.contact,
        "expires_in": binding.expires_in(now),
        "received": str(received) if received else None,
        "transport": received.transport if received else None,
        "user_agent": binding.user_agent,
    }


class AdminClient:
    """Blocking client of the admin endpoint; the CLI makes one request and exits."""

    def __init__(self, host: str, port: int, *, timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    @classmethod
    def from_data_dir(cls, data_dir: Path, *, timeout: float = 5.0) -> AdminClient:
        host, port = read_port_file(data_dir)
        return cls(host, port, timeout=timeout)

    @property
    def base_url(self) -> str:
        return f"http://{_format_address(self.host, self.port)}"

    def get(self, path: str) -> Any:
        """GET ``path`` and return the decoded JSON body."""
        url = self.base_url + path
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310 - loopback http
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminUnavailable(
                f"the sipline server is not running or not answering at {self.base_url} ({reason})"
            ) from None
        try:
            return json.loads(body)
        except ValueError as exc:
            raise AdminError(f"{url}: response is not JSON: {exc}") from None

    def _list(self, path: str) -> list[dict[str, Any]]:
        data = self.get(path)
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise AdminError(f"{self.base_url}{path}: expected a JSON list of objects")
        return data

    def registrations(self) -> list[dict[str, Any]]:
        """Live bindings, one dict per contact (fields: :data:`REGISTRATION_FIELDS`)."""
        return self._list("/registrations")

    def calls(self) -> list[dict[str, Any]]:
        """Calls in progress (fields: :data:`CALL_FIELDS`)."""
        return self._list("/calls")

    def trunks(self) -> list[dict[str, Any]]:
        """SBC trunks with their state and counters (fields: :data:`TRUNK_FIELDS`)."""
        return self._list("/trunks")


# ---------------------------------------------------------------------------------------
# Tables


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}" if math.isfinite(value) else str(value)
    return " ".join(str(value).split())  # one line per row, whatever the peer sent


def render_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str | tuple[str, str]],
    *,
    empty: str = "(none)",
) -> str:
    """Left-aligned text table with a header row; ``columns`` are keys or (key, title).

    Missing and empty values show as ``-``; an empty ``rows`` gives the header and
    ``empty`` below it.
    """
    keys = [c if isinstance(c, str) else c[0] for c in columns]
    titles = [(c if isinstance(c, str) else c[1]).upper() for c in columns]
    cells = [[_cell(row.get(key)) for key in keys] for row in rows]
    widths = [max([len(t), *(len(r[i]) for r in cells)]) for i, t in enumerate(titles)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    out = [line(titles)]
    out.extend(line(r) for r in cells)
    if not cells:
        out.append(empty)
    return "\n".join(out) + "\n"


def format_timestamp(value: Any) -> Any:
    """Unix time -> local ``YYYY-MM-DD HH:MM:SS`` for tables; other values unchanged."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    return value


def format_duration(value: Any) -> Any:
    """Seconds -> ``H:MM:SS`` (or ``M:SS``) for tables; other values unchanged."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        total = max(0, int(value))
        hours, rest = divmod(total, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
    return value


# ---------------------------------------------------------------------------------------
# Worker mode: one answer from the rows of every worker


def merge_rows(path: str, per_worker: Sequence[Any], *, shared_store: bool) -> Any:
    """The server-wide answer for ``path`` from each worker's local answer (index =
    worker; None for a worker that did not answer).  ``shared_store``: registrations and
    trunk channel counters come from a store all workers share, so every worker already
    reports the whole figure and it must not be added up."""
    lists = [rows if isinstance(rows, list) else [] for rows in per_worker]
    if path == "/calls":
        return [{**row, "worker": row.get("worker", index)}
                for index, rows in enumerate(lists) for row in rows if isinstance(row, dict)]
    if path == "/registrations":
        if shared_store:
            return next((rows for rows in lists if rows), [])
        return [row for rows in lists for row in rows]
    if path == "/trunks":
        return _merge_trunks(lists, shared_store)
    return per_worker[0]


def _merge_trunks(lists: Sequence[list[Any]], shared_store: bool) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for rows in lists:
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("name"), str):
                continue
            into = merged.get(row["name"])
            if into is None:
                merged[row["name"]] = {**row, "finals": dict(row.get("finals") or {})}
                continue
            for key in ("attempts", "cps") + (() if shared_store else ("channels",)):
                if isinstance(row.get(key), (int, float)):
                    into[key] = round(into.get(key, 0) + row[key], 2)
            for status, count in (row.get("finals") or {}).items():
                into["finals"][status] = into["finals"].get(status, 0) + count
            if "hosts" in row:
                into["hosts"] = _merge_hosts(into.get("hosts") or [], row["hosts"])
            registration = row.get("registration")
            if isinstance(registration, dict) and registration.get("registered") \
                    and not (into.get("registration") or {}).get("registered"):
                into["registration"] = registration
    for row in merged.values():
        row["finals"] = dict(sorted(row["finals"].items(), key=lambda item: int(item[0]) if item[0].isdigit() else 0))
    return list(merged.values())


#: A host any worker sees up is up; "down" needs no worker seeing it up.
_HOST_RANK = {"up": 2, "down": 1, "unchecked": 0}


def _merge_hosts(ours: list[Any], theirs: list[Any]) -> list[Any]:
    states = {str(h.get("host")): h for h in ours if isinstance(h, dict)}
    for host in theirs:
        if not isinstance(host, dict):
            continue
        name = str(host.get("host"))
        known = states.get(name)
        if known is None or _HOST_RANK.get(str(host.get("state")), 0) > _HOST_RANK.get(str(known.get("state")), 0):
            states[name] = host
    return list(states.values())
