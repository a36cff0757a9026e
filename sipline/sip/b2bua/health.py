"""Carrier host health from OPTIONS keepalives, as deadlines (no clock, no sockets).

Each carrier host is probed every ``interval`` seconds.  A probe ends with an answer (any
final response but 408/503 proves the host's SIP stack is alive and willing), or a failure
(timeout, transport error, 408, 503).  Thresholds damp flapping: ``down_threshold`` failures
in a row take an up host down, ``up_threshold`` answers in a row bring a down host back.
Hosts start *up*, so a fresh node routes calls before its first probe returns.

Theory of operation (the aioquic pattern): the runtime asks :meth:`HealthMonitor.next_deadline`,
sleeps until then, calls :meth:`~HealthMonitor.due` with ``now`` to learn which hosts to probe
(each probe gets a deadline ``timeout`` later), and reports each outcome with
:meth:`~HealthMonitor.record`.  A probe that is still unanswered at its deadline is recorded as
a failure by :meth:`~HealthMonitor.due` itself, so a host that stops answering goes down even
if the runtime never hears back.

State table (``ok`` = answered probe, ``fail`` = failed probe)::

    state  input  streak after          next state
    UP     ok     failures = 0          UP
    UP     fail   failures += 1         DOWN if failures >= down_threshold else UP
    DOWN   ok     successes += 1        UP if successes >= up_threshold else DOWN
    DOWN   fail   successes = 0         DOWN
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from ..errors import UsageError

__all__ = ["HostState", "HealthSettings", "HealthChange", "HealthMonitor", "probe_succeeded"]


class HostState(str, enum.Enum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """Probe timing and damping for one host (usually from its carrier trunk)."""

    interval: float = 30.0
    timeout: float = 5.0
    up_threshold: int = 2
    down_threshold: int = 3

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise UsageError("health interval and timeout must be positive")
        if self.up_threshold < 1 or self.down_threshold < 1:
            raise UsageError("health thresholds must be at least 1")


@dataclass(frozen=True, slots=True)
class HealthChange:
    """A host changed state at ``at`` (for logs and counters)."""

    host: Hashable
    state: HostState
    at: float


def probe_succeeded(status: int) -> bool:
    """Whether a final response to OPTIONS counts as "alive": anything but 408 and 503.

    A 404 or 405 still proves a working SIP stack that will take INVITEs; 503 is the host
    saying it will not, and 408 is what the runtime reports for no answer at all.
    """
    return 200 <= status < 700 and status not in (408, 503)


@dataclass(slots=True)
class _Host:
    settings: HealthSettings
    state: HostState
    next_probe: float
    probe_deadline: float | None = None
    successes: int = 0
    failures: int = 0
    changed_at: float = 0.0


class HealthMonitor:
    """Health of a set of hosts (keys are any hashable: ``(trunk, host)`` pairs in practice)."""

    def __init__(self) -> None:
        self._hosts: dict[Hashable, _Host] = {}
        self._changes: list[HealthChange] = []

    def add(self, host: Hashable, settings: HealthSettings, now: float, *, first_probe: float | None = None) -> None:
        """Watch ``host``; its first probe is due at ``first_probe`` (default: ``now``)."""
        if host in self._hosts:
            raise UsageError(f"host {host!r} already watched")
        self._hosts[host] = _Host(settings, HostState.UP, now if first_probe is None else first_probe, changed_at=now)

    def remove(self, host: Hashable) -> None:
        self._hosts.pop(host, None)

    def __contains__(self, host: object) -> bool:
        return host in self._hosts

    def hosts(self) -> Iterable[Hashable]:
        return tuple(self._hosts)

    def state(self, host: Hashable) -> HostState:
        """The host's state; hosts not watched count as up (health checks disabled)."""
        entry = self._hosts.get(host)
        return entry.state if entry is not None else HostState.UP

    def is_up(self, host: Hashable) -> bool:
        return self.state(host) is HostState.UP

    # -- time ----------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`due` next has something to do (a probe to send or to give up on)."""
        times = [h.probe_deadline if h.probe_deadline is not None else h.next_probe for h in self._hosts.values()]
        return min(times, default=None)

    def due(self, now: float) -> list[Hashable]:
        """Hosts to probe now.  Expired probes are recorded as failures first."""
        out: list[Hashable] = []
        for key, host in self._hosts.items():
            if host.probe_deadline is not None:
                if now < host.probe_deadline:
                    continue
                self._outcome(key, host, False, now)
            if now >= host.next_probe:
                host.probe_deadline = now + host.settings.timeout
                host.next_probe = now + host.settings.interval
                out.append(key)
        return out

    def record(self, host: Hashable, ok: bool, now: float) -> None:
        """The outcome of the probe in flight for ``host``; late or unknown outcomes are ignored."""
        entry = self._hosts.get(host)
        if entry is None or entry.probe_deadline is None:
            return
        self._outcome(host, entry, ok, now)

    def probe_now(self, host: Hashable, now: float) -> None:
        """Make ``host`` due at ``now`` (a call to it just went unanswered), unless a probe is
        already in flight."""
        entry = self._hosts.get(host)
        if entry is not None and entry.probe_deadline is None:
            entry.next_probe = min(entry.next_probe, now)

    def drain_changes(self) -> list[HealthChange]:
        out, self._changes = self._changes, []
        return out

    def _outcome(self, key: Hashable, host: _Host, ok: bool, now: float) -> None:
        host.probe_deadline = None
        limits = host.settings
        if ok:
            host.failures = 0
            host.successes += 1
            if host.state is HostState.DOWN and host.successes >= limits.up_threshold:
                self._set(key, host, HostState.UP, now)
        else:
            host.successes = 0
            host.failures += 1
            if host.state is HostState.UP and host.failures >= limits.down_threshold:
                self._set(key, host, HostState.DOWN, now)

    def _set(self, key: Hashable, host: _Host, state: HostState, now: float) -> None:
        host.state = state
        host.changed_at = now
        host.successes = host.failures = 0
        self._changes.append(HealthChange(key, state, now))
