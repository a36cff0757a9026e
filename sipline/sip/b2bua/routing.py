"""Least-cost style routing: which carriers a number goes to, in which order, and when to
give up on one and try the next.

Routes are ``(prefix, carrier, priority, weight, rate)`` rows.  For a number, the rows with
the *longest* matching prefix win (``+4930`` beats ``+49``, which beats the catch-all
``""``); among those, lower ``priority`` goes first and rows of equal priority are ordered
by weighted random draw (the draw is the injected ``pick`` function, so tests choose).  A
table can be written in TOML or imported from the CSV files carriers publish their rates in.

Failover (:func:`failover_action`) decides what a failed attempt means:

* transport error, 408 and 503: that *host* failed -- try the carrier's next host, then the
  next carrier;
* other 5xx, and a 401/407 that our credentials could not answer: that *carrier* failed --
  next carrier;
* everything else -- 404, 486, 6xx and every other 4xx -- is the callee's answer: stop and
  relay it.

One exception, using RFC 3326: a 5xx carrying a ``Reason`` header that reports the callee's
answer is final too.  We read it as final when the Reason is ``Q.850`` with a cause of the
"normal event" class that describes the called party (1 unallocated number, 16 normal
clearing, 17 user busy, 18 no user responding, 19 no answer, 20 subscriber absent, 21 call
rejected, 22 number changed, 28 invalid number format) or ``SIP`` with a 4xx or 6xx cause:
gateways translating an ISDN release send exactly these as 500/502/503, and retrying another
carrier would ring a busy callee twice.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ProtocolError, UsageError
from ..message._scan import split_commas, split_params, unquote
from .numbers import dial_digits

__all__ = [
    "Route",
    "RouteTable",
    "Pick",
    "first_pick",
    "FailoverAction",
    "failover_action",
    "final_reason",
    "FINAL_Q850_CAUSES",
    "TRANSPORT_FAILURE",
]

#: ``pick(weights) -> index``: choose one entry, with probability proportional to weight.
Pick = Callable[[Sequence[int]], int]

#: Pseudo-status for "no response: the transport failed" (the runtime reports 503 for it,
#: but a real 503 and an unreachable host are told apart by the caller).
TRANSPORT_FAILURE = 0

#: Q.850 causes that describe the called party (see the module docstring).
FINAL_Q850_CAUSES = frozenset({1, 16, 17, 18, 19, 20, 21, 22, 28})


def first_pick(weights: Sequence[int]) -> int:
    """A deterministic ``pick``: the heaviest entry (first on ties)."""
    return max(range(len(weights)), key=lambda i: (weights[i], -i))


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the routing table."""

    prefix: str
    carrier: str
    priority: int = 0
    weight: int = 1
    #: Price per minute, informational (call records, least-cost reports).
    rate: float | None = None

    def __post_init__(self) -> None:
        if self.prefix and not (self.prefix.lstrip("+").isdigit() and "+" not in self.prefix[1:]):
            raise UsageError(f"route prefix must be digits with an optional leading +: {self.prefix!r}")
        if not self.carrier:
            raise UsageError("route without carrier")
        if self.weight < 0:
            raise UsageError(f"negative weight {self.weight} for {self.prefix!r}")


class RouteTable:
    """Routes indexed by prefix; immutable once built."""

    __slots__ = ("_by_prefix", "_lengths", "routes")

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self.routes = tuple(routes)
        index: dict[str, list[Route]] = {}
        for route in self.routes:
            index.setdefault(route.prefix, []).append(route)
        self._by_prefix = {k: tuple(v) for k, v in index.items()}
        self._lengths = sorted({len(p) for p in self._by_prefix}, reverse=True)

    def __len__(self) -> int:
        return len(self.routes)

    def matching(self, number: str) -> tuple[Route, ...]:
        """The rows of the longest prefix matching ``number`` (empty when none does)."""
        number = dial_digits(number)
        for length in self._lengths:
            found = self._by_prefix.get(number[:length])
            if found is not None and len(number) >= length:
                return found
        return ()

    def carriers_for(self, number: str, pick: Pick = first_pick, *,
                     usable: Callable[[str], bool] | None = None) -> list[str]:
        """Carriers to try for ``number``, in order, each once.

        ``usable(carrier)`` filters out carriers that cannot take a call now (every host down,
        over its caps); they are skipped, not tried.
        """
        rows = [r for r in self.matching(number) if usable is None or usable(r.carrier)]
        ordered: list[str] = []
        for priority in sorted({r.priority for r in rows}):
            group = [r for r in rows if r.priority == priority]
            while group:
                weights = [r.weight for r in group]
                if not any(weights):
                    chosen = group.pop(0)
                else:
                    i = pick(weights)
                    if not 0 <= i < len(group):
                        raise UsageError(f"pick returned {i} for {len(group)} entries")
                    chosen = group.pop(i)
                if chosen.carrier not in ordered:
                    ordered.append(chosen.carrier)
        return ordered

    # -- import ------------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, rows: Iterable[Mapping[str, Any]]) -> RouteTable:
        """``[[routes]]`` tables: ``prefix``, ``carrier``, optional ``priority``, ``weight``, ``rate``."""
        routes = []
        for i, row in enumerate(rows):
            try:
                routes.append(_route(row))
            except (KeyError, TypeError, ValueError, UsageError) as exc:
                what = f"missing {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
                raise UsageError(f"routes[{i}]: {what}") from None
        return cls(routes)

    @classmethod
    def from_csv(cls, text: str) -> RouteTable:
        """A CSV table with a header row naming at least ``prefix`` and ``carrier``.

        Optional columns: ``priority``, ``weight``, ``rate``; others are ignored, so a carrier's
        rate sheet with a ``description`` column imports as is.  Blank lines and lines whose
        first cell starts with ``#`` are skipped; errors name the line.
        """
        reader = csv.DictReader(io.StringIO(text))
        names = [n.strip().lower() for n in reader.fieldnames or ()]
        if "prefix" not in names or "carrier" not in names:
            raise UsageError("route CSV needs a header with prefix and carrier columns")
        reader.fieldnames = names
        routes = []
        for row in reader:
            first = (row.get("prefix") or "").strip()
            if first.startswith("#") or not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            try:
                routes.append(_route({k: v.strip() for k, v in row.items() if isinstance(v, str) and v.strip()}))
            except (KeyError, TypeError, ValueError, UsageError) as exc:
                what = f"missing {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
                raise UsageError(f"route CSV line {reader.line_num}: {what}") from None
        return cls(routes)


def _route(row: Mapping[str, Any]) -> Route:
    rate = row.get("rate")
    return Route(
        prefix=dial_digits(str(row.get("prefix", ""))),
        carrier=str(row["carrier"]),
        priority=int(row.get("priority", 0)),
        weight=int(row.get("weight", 1)),
        rate=float(rate) if rate not in (None, "") else None,
    )


# -- failover -------------------------------------------------------------------------------

class FailoverAction(str, enum.Enum):
    NEXT_HOST = "next-host"
    NEXT_CARRIER = "next-carrier"
    STOP = "stop"


def final_reason(reason_values: Iterable[str]) -> bool:
    """Whether a ``Reason`` header (RFC 3326) says the failure is the callee's answer."""
    for raw in reason_values:
        for value in split_commas(raw):
            protocol, _, rest = value.strip().partition(";")
            params: dict[str, str] = {}
            try:
                for name, val in split_params(rest):
                    if val is not None:
                        params[name.lower()] = unquote(val) if val.startswith('"') else val
            except ProtocolError:
                continue
            cause = params.get("cause", "")
            if not cause.isdigit():
                continue
            code = int(cause)
            proto = protocol.strip().upper()
            if proto == "Q.850" and code in FINAL_Q850_CAUSES:
                return True
            if proto == "SIP" and (400 <= code < 500 or 600 <= code < 700):
                return True
    return False


def failover_action(status: int, reason_values: Iterable[str] = ()) -> FailoverAction:
    """What to do after an attempt failed with ``status`` (:data:`TRANSPORT_FAILURE` when no
    response came).  See the module docstring for the rules."""
    if status == TRANSPORT_FAILURE:
        return FailoverAction.NEXT_HOST
    if 500 <= status < 600:
        if final_reason(reason_values):
            return FailoverAction.STOP
        return FailoverAction.NEXT_HOST if status == 503 else FailoverAction.NEXT_CARRIER
    if status == 408:
        return FailoverAction.NEXT_HOST
    if status in (401, 407):
        return FailoverAction.NEXT_CARRIER
    return FailoverAction.STOP
