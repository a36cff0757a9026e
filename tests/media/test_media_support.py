"""Ports, WAV input/output with resampling, tone generation and measurement."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest

from sipline.media.errors import MediaParseError, MediaUsageError, PortsExhausted
from sipline.media.ports import PortAllocator
from sipline.media.tone import (
    DTMF_FREQUENCIES,
    detect_dtmf,
    dominant_frequency,
    dtmf_tone,
    sine,
    strongest_frequencies,
)
from sipline.media.wav import (
    WavWriter,
    _decode_samples,
    read_wav,
    resample,
    to_int16,
    write_wav,
)


def test_port_allocator_hands_out_even_ports_and_rotates() -> None:
    ports = PortAllocator(10001, 10010)
    assert (ports.first, ports.last, ports.capacity) == (10002, 10009, 4)
    taken = [ports.allocate() for _ in range(4)]
    assert taken == [10002, 10004, 10006, 10008]
    with pytest.raises(PortsExhausted):
        ports.allocate()
    ports.release(10004)
    assert ports.in_use == frozenset({10002, 10006, 10008})
    assert ports.allocate() == 10004
    ports.release(10002)
    ports.release(10006)
    # Rotation: the cursor continues after 10004 instead of reusing the lowest free port.
    assert ports.allocate() == 10006
    assert ports.allocate() == 10002
    with pytest.raises(MediaUsageError):
        ports.release(10003)


def test_port_allocator_reserves_one_given_port() -> None:
    ports = PortAllocator(10002, 10009)
    ports.reserve(10006)
    assert ports.in_use == frozenset({10006})
    assert [ports.allocate() for _ in range(3)] == [10002, 10004, 10008]  # 10006 is skipped
    for bad in (10006, 10003, 10000, 10010):  # taken, odd, below, above the range
        with pytest.raises(MediaUsageError):
            ports.reserve(bad)
    ports.release(10006)
    ports.reserve(10006)


@pytest.mark.parametrize(("first", "last"), [(0, 100), (100, 100), (60000, 70000), (200, 100)])
def test_port_allocator_rejects_bad_ranges(first: int, last: int) -> None:
    with pytest.raises(MediaUsageError):
        PortAllocator(first, last)


def _write(path: Path | io.BytesIO, rate: int, width: int, channels: int, samples: np.ndarray) -> None:
    with wave.open(path if isinstance(path, io.BytesIO) else str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())


def test_44k1_stereo_tone_resampled_to_8k_keeps_frequency(tmp_path: Path) -> None:
    tone = sine(1000, 0.5, rate=44100)
    stereo = np.stack([tone, tone], axis=1).astype("<i2")
    path = tmp_path / "tone.wav"
    _write(path, 44100, 2, 2, stereo)
    pcm = read_wav(path)
    assert pcm.dtype == np.int16 and len(pcm) == 4000
    assert dominant_frequency(pcm) == pytest.approx(1000, abs=2)
    # Amplitude survives (half scale in, about half scale out).
    assert 15000 < np.abs(pcm[100:-100]).max() < 18000


def test_resampling_rejects_aliases() -> None:
    # 6 kHz is above the 4 kHz Nyquist limit of 8 kHz: it must vanish, not fold to 2 kHz.
    high = sine(6000, 0.5, rate=44100)
    out = resample(high, 44100, 8000)
    assert np.sqrt(np.mean(out[200:-200] ** 2)) < 30


@pytest.mark.parametrize(
    ("width", "encode"),
    [
        (1, lambda x: ((x.astype(np.int32) >> 8) + 128).astype(np.uint8)),
        (3, lambda x: np.stack([np.zeros_like(x, dtype=np.uint8), (x & 0xFF).astype(np.uint8),
                                ((x >> 8) & 0xFF).astype(np.uint8)], axis=1)),
        (4, lambda x: (x.astype(np.int32) << 16).astype("<i4")),
    ],
    ids=["8-bit", "24-bit", "32-bit"],
)
def test_other_sample_widths(width: int, encode: object) -> None:
    tone = sine(440, 0.25, rate=16000)
    buffer = io.BytesIO()
    _write(buffer, 16000, width, 1, encode(tone))  # type: ignore[operator]
    buffer.seek(0)
    pcm = read_wav(buffer)
    assert len(pcm) == 2000
    assert dominant_frequency(pcm) == pytest.approx(440, abs=2)


def test_write_then_read_is_lossless_at_8k(tmp_path: Path) -> None:
    pcm = sine(300, 0.1)
    path = tmp_path / "out.wav"
    write_wav(path, pcm)
    with wave.open(str(path)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (1, 2, 8000)
    assert np.array_equal(read_wav(path), pcm)


def test_not_a_wav_file() -> None:
    with pytest.raises(MediaParseError):
        read_wav(io.BytesIO(b"RIFF\x00\x00\x00\x00JUNK"))
    with pytest.raises(MediaParseError):
        _decode_samples(b"\x00" * 10, 5)


def test_resample_edge_cases() -> None:
    signal = np.arange(5, dtype=np.float64)
    assert np.array_equal(resample(signal, 8000, 8000), signal)
    assert resample(np.zeros(0), 44100, 8000).size == 0
    with pytest.raises(MediaUsageError):
        resample(signal, 0, 8000)
    # A rate pair with more than 4096 phases uses the on-the-fly kernel.
    out = resample(sine(1000, 0.2, rate=8000).astype(np.float64), 8000, 8001)
    assert dominant_frequency(to_int16(out), 8001) == pytest.approx(1000, abs=2)
    assert to_int16(np.array([1e9, -1e9, 1.4])).tolist() == [32767, -32768, 1]


def test_sine_and_dominant_frequency() -> None:
    assert dominant_frequency(sine(1000, 0.5)) == pytest.approx(1000, abs=0.5)
    assert dominant_frequency(sine(697.5, 0.5)) == pytest.approx(697.5, abs=1)
    assert dominant_frequency(np.zeros(160, dtype=np.int16)) == 0.0
    assert dominant_frequency(np.zeros(2, dtype=np.int16)) == 0.0
    assert np.abs(sine(1000, 0.1, amplitude=1.0)).max() == 32767
    with pytest.raises(MediaUsageError):
        sine(1000, -1.0)


@pytest.mark.parametrize("digit", list(DTMF_FREQUENCIES))
def test_dtmf_tones_are_detected(digit: str) -> None:
    assert detect_dtmf(dtmf_tone(digit, 0.1)) == digit


def test_detect_dtmf_rejects_single_tones_and_silence() -> None:
    assert detect_dtmf(sine(1000, 0.1)) is None
    assert detect_dtmf(np.zeros(800, dtype=np.int16)) is None
    low, high = strongest_frequencies(dtmf_tone("5"), count=2)
    assert {round(low), round(high)} == {770, 1336}
    with pytest.raises(MediaUsageError):
        dtmf_tone("X")


def test_wav_writer_streams_in_chunks_and_closes_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    tone = sine(700, 0.5)
    frames = tone.reshape(-1, 160)
    writer = WavWriter(path, flush_frames=10, first_flush=3)
    for frame in frames[:3]:
        writer.add(frame)
    assert writer.samples == 3 * 160  # the staggered first chunk went out after 3 frames
    for frame in frames[3:12]:
        writer.add(frame)
    assert writer.samples == 3 * 160  # then every 10 frames: 9 are still pending
    writer.add(frames[12])
    assert writer.samples == 13 * 160
    for frame in frames[13:]:
        writer.add(frame)
    writer.close()
    assert np.array_equal(read_wav(path), tone)  # header fixed up, nothing lost or reordered


def test_wav_writer_of_nothing_is_an_empty_wav(tmp_path: Path) -> None:
    WavWriter(tmp_path / "empty.wav").close()
    assert read_wav(tmp_path / "empty.wav").size == 0
