"""Per-trunk counters an operator reads at a glance: final responses, call attempts, CPS.

"Lots of 403 from carrier A" is the first thing to see when calls start failing, so every
final status is counted per trunk: for a carrier, what the carrier answered each attempt
(0 when it did not answer at all); for a customer, what we answered the customer's call.
The rate of new calls is measured over a short sliding window.  Counters live in memory,
per node: they are for troubleshooting, the call records are the durable account.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrunkStats", "StatsBook", "CPS_WINDOW"]

#: Seconds over which the current calls-per-second figure is averaged.
CPS_WINDOW = 5.0


@dataclass(slots=True)
class TrunkStats:
    """Counters of one trunk since the node started."""

    finals: Counter[int] = field(default_factory=Counter)
    attempts: int = 0
    _recent: deque[float] = field(default_factory=deque)

    def attempt(self, now: float) -> None:
        self.attempts += 1
        self._recent.append(now)
        self._trim(now)

    def final(self, status: int) -> None:
        self.finals[status] += 1

    def cps(self, now: float) -> float:
        self._trim(now)
        return len(self._recent) / CPS_WINDOW

    def _trim(self, now: float) -> None:
        recent = self._recent
        while recent and recent[0] <= now - CPS_WINDOW:
            recent.popleft()


class StatsBook:
    """:class:`TrunkStats` by trunk name, created on first use."""

    def __init__(self) -> None:
        self._trunks: dict[str, TrunkStats] = {}

    def __getitem__(self, name: str) -> TrunkStats:
        stats = self._trunks.get(name)
        if stats is None:
            stats = self._trunks[name] = TrunkStats()
        return stats

    def attempt(self, name: str | None, now: float) -> None:
        if name:
            self[name].attempt(now)

    def final(self, name: str | None, status: int) -> None:
        if name:
            self[name].final(status)

    def snapshot(self, name: str, now: float) -> dict[str, Any]:
        stats = self[name]
        return {
            "attempts": stats.attempts,
            "cps": round(stats.cps(now), 2),
            "finals": {str(status): count for status, count in sorted(stats.finals.items())},
        }
