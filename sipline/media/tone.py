"""Test signals and their measurement: sine and DTMF tones, dominant frequency.

End-to-end media tests cannot compare samples bit-for-bit (G.711 quantises, the jitter
buffer may conceal a frame), but they can ask a robust question: is the 1 kHz tone we
sent the strongest frequency in what arrived?  :func:`dominant_frequency` answers with an
FFT and parabolic interpolation between bins, which resolves a 0.5 s buffer to well under
a hertz.  The same generators produce prompts and in-band DTMF for interop tests.
"""

from __future__ import annotations

import numpy as np

from sipline.media.codecs.base import Pcm
from sipline.media.errors import MediaUsageError

__all__ = ["DTMF_FREQUENCIES", "sine", "dtmf_tone", "dominant_frequency", "strongest_frequencies", "detect_dtmf"]

_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")

DTMF_FREQUENCIES: dict[str, tuple[float, float]] = {
    key: (_ROWS[row], _COLUMNS[column])
    for row, keys in enumerate(_KEYPAD)
    for column, key in enumerate(keys)
}
"""(low, high) frequency pair of each DTMF key (ITU-T Q.23)."""


def _samples(duration: float, rate: int) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    if duration < 0 or rate <= 0:
        raise MediaUsageError("duration must be >= 0 and rate > 0")
    return np.arange(round(duration * rate), dtype=np.float64) / rate


def sine(
    frequency: float, duration: float, *, rate: int = 8000, amplitude: float = 0.5, phase: float = 0.0
) -> Pcm:
    """A sine tone; ``amplitude`` is a fraction of full scale."""
    t = _samples(duration, rate)
    return np.rint(amplitude * 32767.0 * np.sin(2.0 * np.pi * frequency * t + phase)).astype(np.int16)


def dtmf_tone(digit: str, duration: float = 0.1, *, rate: int = 8000, amplitude: float = 0.4) -> Pcm:
    """The dual tone of ``digit``; each component gets half of ``amplitude``."""
    try:
        low, high = DTMF_FREQUENCIES[digit.upper()]
    except KeyError:
        raise MediaUsageError(f"{digit!r} is not a DTMF digit") from None
    t = _samples(duration, rate)
    mixed = np.sin(2.0 * np.pi * low * t) + np.sin(2.0 * np.pi * high * t)
    return np.rint(amplitude / 2.0 * 32767.0 * mixed).astype(np.int16)


def _spectrum(pcm: Pcm) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    signal = np.asarray(pcm, dtype=np.float64)
    signal = signal - signal.mean()
    magnitude: np.ndarray[tuple[int], np.dtype[np.float64]] = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    return magnitude


def _refine(magnitude: np.ndarray[tuple[int], np.dtype[np.float64]], peak: int) -> float:
    """Fractional bin of a peak by fitting a parabola through log magnitudes."""
    if peak <= 0 or peak >= magnitude.size - 1:
        return float(peak)
    left, centre, right = np.log(magnitude[peak - 1 : peak + 2] + 1e-12)
    denominator = left - 2.0 * centre + right
    return peak + (0.5 * (left - right) / denominator if denominator else 0.0)


def strongest_frequencies(pcm: Pcm, rate: int = 8000, count: int = 2, *, separation: float = 50.0) -> list[float]:
    """The ``count`` strongest spectral peaks (Hz), strongest first, ``separation`` apart."""
    if len(pcm) < 4:
        return []
    magnitude = _spectrum(pcm)
    hz_per_bin = rate / (2.0 * (magnitude.size - 1))
    found: list[float] = []
    for peak in np.argsort(magnitude)[::-1]:
        if magnitude[peak] <= 1e-6 or len(found) == count:
            break
        frequency = _refine(magnitude, int(peak)) * hz_per_bin
        if all(abs(frequency - other) >= separation for other in found):
            found.append(frequency)
    return found


def dominant_frequency(pcm: Pcm, rate: int = 8000) -> float:
    """Frequency (Hz) of the strongest component; 0.0 for silence or tiny buffers."""
    peaks = strongest_frequencies(pcm, rate, 1)
    return peaks[0] if peaks else 0.0


def detect_dtmf(pcm: Pcm, rate: int = 8000, *, tolerance: float = 0.02) -> str | None:
    """The DTMF key whose two frequencies are the two strongest peaks, if any."""
    peaks = sorted(strongest_frequencies(pcm, rate, 2))
    if len(peaks) != 2:
        return None
    for key, (low, high) in DTMF_FREQUENCIES.items():
        if abs(peaks[0] - low) <= low * tolerance and abs(peaks[1] - high) <= high * tolerance:
            return key
    return None
