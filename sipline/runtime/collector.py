"""Cyclic garbage collection on a clock instead of on every few hundred allocations.

Why: CPython's collector runs a young-generation pass every 700 net container
allocations, and a full pass whenever the objects promoted since the last one reach a
quarter of the old generation.  Handling one SIP message allocates a few hundred
containers, and a server under load keeps every transaction of the last 32 s alive
(Timer J, RFC 3261 §17.2.2): half a million objects at a thousand registrations a second,
all walked by each full pass.  Measured under SIPp (bench/register_vs_kamailio.py), the
collector took about a tenth of the server's CPU even with its thresholds raised.

Yet the hot paths create no cyclic garbage (a collection after 500 registrations or 500
proxied calls finds nothing unreachable): reference counting frees every message,
transaction and task.  So while a server runs, automatic collection is off and the event
loop collects on a timer instead:

* every second, the young generations -- the objects created since the last pass that are
  still alive, a few tens of thousands -- so a cycle made by some rare path (an exception
  kept with its traceback, say) is freed within a second if it is already garbage;
* every five minutes, everything, for cycles that became garbage only after their first
  pass.

``gc.freeze()`` at start moves what start-up allocated (modules, classes, configuration)
out of every pass.  Stopping the last running server restores automatic collection, so a
process that goes on (a test run) gets its collector back.
"""

from __future__ import annotations

import asyncio
import gc

__all__ = ["FULL_INTERVAL", "YOUNG_INTERVAL", "CollectorSchedule"]

#: Seconds between collections of the young generations (0 and 1).
YOUNG_INTERVAL = 1.0
#: Seconds between full collections.
FULL_INTERVAL = 300.0

_active = 0
_frozen = False


class CollectorSchedule:
    """Timed collection for the life of one server (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, young: float = YOUNG_INTERVAL,
                 full: float = FULL_INTERVAL) -> None:
        self._loop = loop
        self._young = young
        self._full = full
        self._since_full = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._running = False

    def start(self) -> None:
        global _active, _frozen
        if self._running:
            return
        self._running = True
        _active += 1
        if not _frozen:
            _frozen = True
            gc.collect()
            gc.freeze()
        gc.disable()
        self._handle = self._loop.call_later(self._young, self._tick)

    def stop(self) -> None:
        global _active
        if not self._running:
            return
        self._running = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        _active -= 1
        if _active == 0:
            gc.enable()

    def _tick(self) -> None:
        self._since_full += self._young
        if self._since_full >= self._full:
            self._since_full = 0.0
            gc.collect()
        else:
            gc.collect(1)
        self._handle = self._loop.call_later(self._young, self._tick)
