"""Jitter buffer on simulated arrival times: loss, reordering, lateness, wrap, adaptation."""

from __future__ import annotations

import numpy as np
import pytest

from sipline.media.errors import MediaUsageError
from sipline.media.jitter import Concealment, JitterBuffer, JitterConfig
from sipline.media.plc import Concealer
from sipline.media.rtp import RtpPacket

FIXED = JitterConfig(target_delay=0.04, adaptive=False)


def _packet(seq: int, ssrc: int = 1) -> RtpPacket:
    return RtpPacket(0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc, b"\xff" * 160)


def _run(arrivals: list[tuple[float, int]], ticks: int, config: JitterConfig = FIXED) -> tuple[list[object], JitterBuffer]:
    """Tick every 20 ms: deliver what has arrived by then, then pop one item.

    Outputs are sequence numbers, "C" for a concealed loss, "U" for an underrun and "-"
    while the buffer is still filling.
    """
    buffer = JitterBuffer(config)
    pending = sorted(arrivals)
    out: list[object] = []
    for tick in range(ticks):
        now = round(tick * 0.02, 6)
        while pending and pending[0][0] <= now:
            arrival, seq = pending.pop(0)
            buffer.push(_packet(seq), arrival)
        item = buffer.pop(now)
        if item is None:
            out.append("-")
        elif isinstance(item, Concealment):
            out.append("C" if item.lost else "U")
        else:
            out.append(item.sequence)
    return out, buffer


def _steady(seqs: list[int], offset: float = 0.001) -> list[tuple[float, int]]:
    return [(i * 0.02 + offset, seq) for i, seq in enumerate(seqs)]


@pytest.mark.parametrize(
    ("name", "arrivals", "expected", "counts"),
    [
        ("clean", _steady(list(range(6))), ["-", "-", "-", 0, 1, 2, 3, 4, 5], {"played": 6, "lost": 0}),
        ("loss", [a for a in _steady(list(range(6))) if a[1] != 2], ["-", "-", "-", 0, 1, "C", 3, 4, 5],
         {"lost": 1, "concealed": 1, "played": 5}),
        ("reorder", [(0.001, 0), (0.021, 2), (0.022, 1), (0.041, 3), (0.061, 4)], ["-", "-", "-", 0, 1, 2, 3, 4],
         {"reordered": 1, "lost": 0}),
        ("late", [a for a in _steady(list(range(6))) if a[1] != 2] + [(0.15, 2)], ["-", "-", "-", 0, 1, "C", 3, 4, 5],
         {"lost": 0, "late": 1}),
        ("duplicate", _steady([0, 1, 1, 2, 3]) + [(0.11, 0)], ["-", "-", "-", 0, 1, 2, 3],
         {"duplicates": 2, "played": 4, "received": 6}),
        ("wrap", _steady([65534, 65535, 65536, 65537]), ["-", "-", "-", 65534, 65535, 0, 1], {"lost": 0}),
        ("underrun", _steady([0, 1]) + [(0.121, 2), (0.141, 3)], ["-", "-", "-", 0, 1, "U", "U", 2, 3],
         {"underruns": 2, "lost": 0, "concealed": 2}),
        ("stale", _steady(list(range(4))) + [(0.1, -50)], ["-", "-", "-", 0, 1, 2, 3],
         {"late": 1}),
    ],
)
def test_playout_scenarios(
    name: str, arrivals: list[tuple[float, int]], expected: list[object], counts: dict[str, int]
) -> None:
    out, buffer = _run(arrivals, len(expected))
    assert out == expected, name
    stats = buffer.stats
    for key, value in counts.items():
        assert getattr(stats, key) == value, (name, key)


def test_burst_is_trimmed_back_to_the_target_delay() -> None:
    arrivals = [(0.0, seq) for seq in range(10)]
    out, buffer = _run(arrivals, 10)
    # Target 40 ms = 2 frames + 2 slack: each pop discards one old frame until caught up.
    assert out == ["-", "-", 1, 3, 5, 6, 7, 8, 9, "U"]
    assert buffer.stats.discarded == 3


def test_capacity_bounds_memory() -> None:
    buffer = JitterBuffer(JitterConfig(capacity=4, adaptive=False))
    for seq in range(6):
        buffer.push(_packet(seq), 0.0)
    assert buffer.stats.depth == 4 and buffer.stats.discarded == 2
    item = buffer.pop(1.0)
    assert isinstance(item, RtpPacket) and item.sequence == 2


def test_capacity_overflow_after_start_skips_ahead() -> None:
    buffer = JitterBuffer(JitterConfig(capacity=3, adaptive=False, target_delay=0.0, trim_slack=100))
    buffer.push(_packet(0), 0.0)
    assert isinstance(buffer.pop(0.0), RtpPacket)
    for seq in (2, 3, 4, 5):  # 1 never comes; capacity forces 2 out
        buffer.push(_packet(seq), 0.01)
    item = buffer.pop(0.02)
    assert isinstance(item, RtpPacket) and item.sequence == 3


def test_resync_on_new_ssrc_and_sequence_jump() -> None:
    buffer = JitterBuffer(FIXED)
    buffer.push(_packet(10), 0.0)
    buffer.push(_packet(20000), 0.02)  # a jump bigger than MAX_DROPOUT: sender restarted
    buffer.push(_packet(20001, ssrc=2), 0.04)
    assert buffer.stats.resyncs == 2
    assert buffer.stats.depth == 1
    item = buffer.pop(0.1)
    assert isinstance(item, RtpPacket) and item.ssrc == 2


def test_interarrival_jitter_matches_rfc3550_hand_computation() -> None:
    buffer = JitterBuffer(JitterConfig(adaptive=True, min_delay=0.04))
    buffer.push(_packet(0), 0.0)
    buffer.push(_packet(1), 0.03)  # D = 240 - 160 = 80 -> J = 5
    buffer.push(_packet(2), 0.04)  # D = 80 - 160 = -80 -> J = 5 + 75/16
    assert buffer.stats.jitter * 8000 == pytest.approx(9.6875)
    assert buffer.target_delay == pytest.approx(0.04 + 4 * 9.6875 / 8000)
    buffer.push(_packet(3), 0.3, timing=False)  # telephone events stay out of the estimate
    assert buffer.stats.jitter * 8000 == pytest.approx(9.6875)


def test_adaptive_target_is_clamped() -> None:
    buffer = JitterBuffer(JitterConfig(adaptive=True, max_delay=0.1))
    buffer.push(_packet(0), 0.0)
    buffer.push(_packet(1), 5.0)
    assert buffer.target_delay == 0.1


@pytest.mark.parametrize(
    "kwargs", [{"frame_duration": 0.0}, {"clock_rate": 0}, {"capacity": 0}, {"min_delay": 0.5, "max_delay": 0.1}]
)
def test_config_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(MediaUsageError):
        JitterConfig(**kwargs)  # type: ignore[arg-type]


def test_concealer_fades_then_silences() -> None:
    concealer = Concealer(4, attenuation=0.5, max_repeats=2)
    assert not concealer.conceal().any()  # nothing to repeat yet
    frame = np.array([1000, -1000, 400, 0], dtype=np.int16)
    assert concealer.good(frame) is frame
    assert concealer.conceal().tolist() == [500, -500, 200, 0]
    assert concealer.conceal().tolist() == [250, -250, 100, 0]
    assert concealer.conceal().tolist() == [0, 0, 0, 0]
    concealer.good(frame)
    assert concealer.conceal().tolist() == [500, -500, 200, 0]
