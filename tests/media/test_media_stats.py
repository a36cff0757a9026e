"""RFC 3550 receiver statistics and the E-model against hand-computed values."""

from __future__ import annotations

import pytest

from sipline.media.rtcp import ReportBlock
from sipline.media.stats import (
    G711_BPL_NO_PLC,
    ReceiverStatistics,
    estimate_mos,
    mos_from_r,
    r_factor,
)


def _feed(stats: ReceiverStatistics, seqs: list[int]) -> list[bool]:
    return [stats.update(seq, (seq * 160) & 0xFFFFFFFF, i * 0.02) for i, seq in enumerate(seqs)]


@pytest.mark.parametrize(
    ("seqs", "expected", "received", "lost", "extended_max"),
    [
        (list(range(10)), 10, 10, 0, 9),
        ([s for s in range(10) if s not in (3, 7)], 10, 8, 2, 9),
        ([65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3], 10, 10, 0, 65539),
        ([0, 1, 1, 2], 3, 4, -1, 2),
        ([0, 2, 1], 3, 3, 0, 2),
        ([100, 101, 50], 2, 3, -1, 101),
    ],
    ids=["clean", "loss", "wrap", "duplicate", "reorder", "old-reordered"],
)
def test_expected_and_lost(seqs: list[int], expected: int, received: int, lost: int, extended_max: int) -> None:
    stats = ReceiverStatistics()
    _feed(stats, seqs)
    assert (stats.expected, stats.received, stats.lost, stats.extended_max) == (
        expected, received, lost, extended_max
    )


def test_fraction_lost_per_interval() -> None:
    stats = ReceiverStatistics()
    _feed(stats, [s for s in range(10) if s not in (3, 7)])
    first = stats.interval_report()
    assert (first.fraction_lost, first.cumulative_lost, first.extended_highest) == (51, 2, 9)  # 2*256//10
    for seq in range(10, 20):
        stats.update(seq, seq * 160, seq * 0.02)
    second = stats.interval_report()
    assert (second.fraction_lost, second.cumulative_lost) == (0, 2)
    # An interval with nothing expected reports zero, not a division error.
    assert stats.interval_report().fraction_lost == 0


def test_large_jump_is_believed_only_when_it_continues() -> None:
    stats = ReceiverStatistics()
    assert _feed(stats, [0, 1, 5000, 5001]) == [True, True, False, True]
    assert (stats.base_seq, stats.received, stats.expected) == (5001, 1, 1)


def test_probation_requires_sequential_packets() -> None:
    stats = ReceiverStatistics(probation=2)
    assert _feed(stats, [10, 11, 12]) == [False, True, True]
    assert (stats.base_seq, stats.received) == (11, 2)
    broken = ReceiverStatistics(probation=2)
    assert _feed(broken, [10, 12, 13]) == [False, False, True]
    assert (broken.base_seq, broken.received) == (13, 1)


def test_jitter_hand_computed() -> None:
    stats = ReceiverStatistics()
    stats.update(0, 0, 0.0)
    stats.update(1, 160, 0.03)  # transit changes by +80 -> J = 80/16
    stats.update(2, 320, 0.04)  # transit changes by -80 -> J = 5 + (80 - 5)/16
    assert stats.jitter == pytest.approx(9.6875)
    assert stats.jitter_seconds == pytest.approx(9.6875 / 8000)
    stats.update(3, 320, 0.2, timing=False)  # counted, but not a timing sample
    assert stats.jitter == pytest.approx(9.6875) and stats.received == 4


def test_jitter_across_timestamp_wrap() -> None:
    stats = ReceiverStatistics()
    stats.update(0, 0xFFFFFF60, 0.0)
    stats.update(1, 0, 0.02)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)


def test_report_block() -> None:
    stats = ReceiverStatistics()
    assert stats.expected == 0
    _feed(stats, [0, 1, 3])
    block = stats.report_block(0xABCD, lsr=7, dlsr=9)
    assert block == ReportBlock(0xABCD, 64, 1, 3, int(stats.jitter), 7, 9)


@pytest.mark.parametrize(
    ("loss", "jitter_ms", "delay_ms", "r"),
    [
        (0.0, 0.0, 0.0, 93.2),
        (0.01, 0.0, 0.0, 93.2 - 95 / 26.1),
        (0.0, 0.0, 200.0, 93.2 - (0.024 * 200 + 0.11 * 22.7)),
        (0.0, 10.0, 0.0, 93.2 - 0.024 * 20),
        (2.0, 0.0, 0.0, 93.2 - 95 * 100 / 125.1),
    ],
)
def test_r_factor(loss: float, jitter_ms: float, delay_ms: float, r: float) -> None:
    assert r_factor(loss, jitter_ms, delay_ms) == pytest.approx(r)


def test_r_factor_without_concealment_is_worse() -> None:
    assert r_factor(0.01, bpl=G711_BPL_NO_PLC) == pytest.approx(93.2 - 95 / 5.3)


@pytest.mark.parametrize(
    ("r", "mos"),
    [(-5.0, 1.0), (0.0, 1.0), (120.0, 4.5), (100.0, 4.5), (50.0, 2.575),
     (93.2, 1 + 0.035 * 93.2 + 93.2 * 33.2 * 6.8 * 7e-6)],
)
def test_mos_from_r(r: float, mos: float) -> None:
    assert mos_from_r(r) == pytest.approx(mos)


def test_estimate_mos_orders_conditions() -> None:
    perfect = estimate_mos(0.0)
    assert perfect == pytest.approx(4.409, abs=1e-3)
    assert estimate_mos(0.05, 20.0, 150.0) < estimate_mos(0.01, 5.0, 50.0) < perfect
