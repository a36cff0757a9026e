"""Errors, ids, limits and timers: the small shared pieces of the core."""

from __future__ import annotations

from sipline.sip.errors import BadExtension, LoopDetected, ParseError, ProtocolError, TooManyHops
from sipline.sip.ids import BRANCH_MAGIC, CountingIdSource
from sipline.sip.timers import TimerConfig


def test_errors_carry_status_and_reason() -> None:
    e = ParseError("bad Via", header="Via")
    assert (e.status, e.reason, e.header) == (400, "bad Via", "Via")
    assert repr(e) == "ParseError('bad Via', status=400)"
    assert ProtocolError("x", status=503).status == 503
    b = BadExtension("unsupported", unsupported=("foo", "bar"))
    assert b.status == 420 and b.unsupported == ("foo", "bar")
    assert LoopDetected("l").status == 482 and TooManyHops("t").status == 483


def test_counting_ids_are_deterministic() -> None:
    ids = CountingIdSource("x")
    assert [ids.token(), ids.branch(), ids.tag(), ids.call_id()] == ["x1", BRANCH_MAGIC + "x2", "tagx3", "callx4"]


def test_timer_values_follow_table_4() -> None:
    t = TimerConfig(t1=0.1)
    assert (t.timer_b, t.timer_f, t.timer_h, t.timer_j, t.timer_l, t.timer_m) == (6.4,) * 6
