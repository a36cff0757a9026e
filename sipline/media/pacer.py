"""One shared timer that paces every RTP session of an event loop.

Why share: each session needs a tick every packetization interval (20 ms).  With one
``loop.call_at`` per session, 400 sessions put 400 handles into the loop's timer heap
every 20 ms, and the heap work, the handle allocations and the per-callback overhead of
the loop grow into a large part of the CPU spent on media.  One timer that walks a list of
sessions costs a plain Python call per session instead.

Why phases: ticking every session at the same instant would send all packets in one burst
and keep the loop busy for milliseconds, delaying incoming packets and application tasks.
The interval is therefore cut into ``phases`` slots (4 by default, 5 ms apart for 20 ms);
each session is placed in the least crowded slot and ticked there, so the work is spread
evenly.  A session keeps its slot for life, so its own packets stay exactly one interval
apart whatever the others do.

Why two passes: a member may give a second callable, ``then``, for work that is not
time-critical (a session plays out and records received audio there).  Each slot first
runs every member's ``tick`` (sending), then every ``then``: the packets of a slot leave
back to back, and how long the receive work of the others takes never moves a send.

Deadlines are ``epoch + n * slot`` (no drift from callback latency); when the loop stalls
for longer than ``max_lag`` the schedule restarts from now instead of bursting through the
backlog, and every member is told (sessions count these restarts).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

__all__ = ["Pacer", "pacer_for"]

Tick = Callable[[float], None]
"""Called with the loop time of the tick."""


class Pacer:
    """Ticks its members once per ``interval``, spread over ``phases`` slots."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float, *, phases: int = 4,
                 max_lag: float = 0.2) -> None:
        if interval <= 0 or phases < 1:
            raise ValueError("a pacer needs a positive interval and at least one phase")
        self._loop = loop
        self.interval = interval
        self.max_lag = max_lag
        self._slot = interval / phases
        self._phases: list[dict[int, tuple[Tick, Tick | None, Callable[[], None]]]] = [{} for _ in range(phases)]
        # Snapshot of each phase (ticks, then the "then" pass), rebuilt only when membership
        # changes, not on every tick.
        self._snapshots: list[tuple[tuple[Tick, ...], tuple[Tick, ...]] | None] = [None] * phases
        self._where: dict[int, int] = {}
        self._next_key = 0
        self._handle: asyncio.TimerHandle | None = None
        self._epoch = 0.0
        self._count = 0
        self._phase = 0
        #: Times the schedule restarted after a stalled loop.
        self.resyncs = 0

    def __len__(self) -> int:
        return len(self._where)

    def add(self, tick: Tick, on_resync: Callable[[], None] = lambda: None, *, then: Tick | None = None) -> int:
        """Start ticking *tick* (within one interval); returns the key for :meth:`remove`.

        *then*, if given, is called in the same slot after every member's *tick* ran.
        """
        key = self._next_key
        self._next_key += 1
        phase = min(range(len(self._phases)), key=lambda i: len(self._phases[i]))
        self._phases[phase][key] = (tick, then, on_resync)
        self._snapshots[phase] = None
        self._where[key] = phase
        if self._handle is None:
            self._epoch = self._loop.time()
            self._count = 0
            self._handle = self._loop.call_at(self._epoch, self._run)
        return key

    def remove(self, key: int) -> None:
        """Stop ticking the member *key* (unknown keys are ignored)."""
        phase = self._where.pop(key, None)
        if phase is None:
            return
        del self._phases[phase][key]
        self._snapshots[phase] = None
        if not self._where and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _run(self) -> None:
        running = self._handle
        now = self._loop.time()
        phase = self._phase
        snapshot = self._snapshots[phase]
        if snapshot is None:
            entries = self._phases[phase].values()
            snapshot = self._snapshots[phase] = (tuple(tick for tick, _, _ in entries),
                                                 tuple(then for _, then, _ in entries if then is not None))
        for passes in snapshot:
            for tick in passes:
                try:
                    tick(now)
                except Exception as exc:  # one broken session must not silence the others
                    self._loop.call_exception_handler({"message": "RTP tick failed", "exception": exc})
        self._phase = (phase + 1) % len(self._phases)
        self._count += 1
        deadline = self._epoch + self._count * self._slot
        if now - deadline > self.max_lag:
            self.resyncs += 1
            self._epoch, self._count, deadline = now, 0, now
            for members in self._phases:
                for _, _, on_resync in list(members.values()):
                    on_resync()
        if self._handle is not running:
            return  # the last member left during this tick (and maybe a new one restarted us)
        self._handle = self._loop.call_at(deadline, self._run)


_PACERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[float, float], Pacer]] = (
    weakref.WeakKeyDictionary())


def pacer_for(loop: asyncio.AbstractEventLoop, interval: float, max_lag: float = 0.2) -> Pacer:
    """The shared pacer of *loop* for one packet interval (created on first use)."""
    pacers = _PACERS.setdefault(loop, {})
    key = (interval, max_lag)
    pacer = pacers.get(key)
    if pacer is None:
        pacer = pacers[key] = Pacer(loop, interval, max_lag=max_lag)
    return pacer
