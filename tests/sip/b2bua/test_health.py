"""The OPTIONS keepalive state machine, driven by hand with ``now``."""

from __future__ import annotations

import pytest

from sipline.sip.b2bua.health import HealthMonitor, HealthSettings, HostState, probe_succeeded
from sipline.sip.errors import UsageError

S = HealthSettings(interval=10.0, timeout=2.0, up_threshold=2, down_threshold=3)


def test_down_after_threshold_failures_and_back_after_answers() -> None:
    mon = HealthMonitor()
    mon.add("a", S, now=0.0)
    assert mon.is_up("a") and mon.next_deadline() == 0.0
    now = 0.0
    for _ in range(3):
        assert mon.due(now) == ["a"]
        assert mon.next_deadline() == now + 2.0
        assert mon.due(now + 1.0) == []  # probe in flight, not yet expired
        now += 10.0
    # The third probe expires at its deadline: recorded by due() itself.
    assert mon.is_up("a")
    assert mon.due(now) == ["a"]  # the 3rd expired probe is counted, a 4th sent
    assert mon.state("a") is HostState.DOWN
    changes = mon.drain_changes()
    assert [(c.host, c.state, c.at) for c in changes] == [("a", HostState.DOWN, 30.0)]
    mon.record("a", True, now + 0.5)
    assert not mon.is_up("a")
    assert mon.due(now + 10.0) == ["a"]
    mon.record("a", True, now + 10.1)
    assert mon.is_up("a")
    assert mon.drain_changes()[0].state is HostState.UP


def test_failure_streak_resets_on_answer() -> None:
    mon = HealthMonitor()
    mon.add("a", S, now=0.0)
    t = 0.0
    for ok in (False, False, True, False, False):
        assert mon.due(t) == ["a"]
        mon.record("a", ok, t + 0.1)
        t += 10.0
    assert mon.is_up("a")
    assert mon.due(t) == ["a"]
    mon.record("a", False, t + 0.1)
    assert not mon.is_up("a")


def test_down_streak_resets_on_failure() -> None:
    mon = HealthMonitor()
    mon.add("a", HealthSettings(interval=1.0, timeout=0.5, up_threshold=2, down_threshold=1), now=0.0)
    mon.due(0.0)
    mon.record("a", False, 0.1)
    assert not mon.is_up("a")
    for t, ok in ((1.0, True), (2.0, False), (3.0, True)):
        mon.due(t)
        mon.record("a", ok, t + 0.1)
        assert not mon.is_up("a")
    mon.due(4.0)
    mon.record("a", True, 4.1)
    assert mon.is_up("a")


def test_misc() -> None:
    mon = HealthMonitor()
    assert mon.next_deadline() is None and mon.is_up("unknown")
    mon.add("a", S, now=0.0, first_probe=5.0)
    assert "a" in mon and list(mon.hosts()) == ["a"] and mon.due(1.0) == []
    mon.record("a", True, 1.0)  # no probe in flight: ignored
    mon.record("zzz", False, 1.0)
    with pytest.raises(UsageError):
        mon.add("a", S, now=0.0)
    mon.remove("a")
    assert "a" not in mon
    with pytest.raises(UsageError):
        HealthSettings(interval=0)
    with pytest.raises(UsageError):
        HealthSettings(up_threshold=0)


@pytest.mark.parametrize(("status", "alive"), [(200, True), (404, True), (405, True), (408, False),
                                               (503, False), (100, False), (500, True)])
def test_probe_succeeded(status: int, alive: bool) -> None:
    assert probe_succeeded(status) is alive


def test_probe_now() -> None:
    mon = HealthMonitor()
    mon.add("a", S, now=0.0)
    assert mon.due(0.0) == ["a"]
    mon.probe_now("a", 1.0)  # in flight: no change
    mon.record("a", False, 1.5)
    mon.probe_now("a", 2.0)
    mon.probe_now("zzz", 2.0)
    assert mon.next_deadline() == 2.0 and mon.due(2.0) == ["a"]
