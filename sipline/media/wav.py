"""WAV files in and out, normalised to the telephone format: mono, 8 kHz, int16.

Prompts come from anywhere (a 44.1 kHz stereo studio file, an 8-bit mono recording), but
everything downstream of this module speaks one format, so conversion happens once, at
load time.  Resampling is band-limited interpolation with a Kaiser-windowed sinc whose
cutoff sits below the lower Nyquist frequency: plain linear interpolation from 44.1 kHz
would fold everything above 4 kHz back into the voice band as audible aliasing.

Only the stdlib ``wave`` module touches the file; numpy does the arithmetic.
"""

from __future__ import annotations

import math
import os
import wave
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from sipline.media.codecs.base import Pcm
from sipline.media.errors import MediaParseError, MediaUsageError

__all__ = ["TELEPHONE_RATE", "read_wav", "write_wav", "WavWriter", "resample", "to_int16"]

TELEPHONE_RATE = 8000
_Source = str | os.PathLike[str] | BinaryIO
_CHUNK = 4096


def read_wav(source: _Source, rate: int = TELEPHONE_RATE) -> Pcm:
    """Load a PCM WAV (8/16/24/32-bit, any channels, any rate) as mono int16 at ``rate``."""
    try:
        with wave.open(source if not isinstance(source, os.PathLike) else os.fspath(source), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            source_rate = reader.getframerate()
            raw = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        raise MediaParseError(f"not a PCM WAV file: {exc}") from exc
    samples = _decode_samples(raw, width)
    usable = len(samples) - len(samples) % channels
    mono = samples[:usable].reshape(-1, channels).mean(axis=1)
    return to_int16(resample(mono, source_rate, rate))


def write_wav(target: _Source, pcm: Pcm, rate: int = TELEPHONE_RATE) -> None:
    """Write mono int16 samples as a 16-bit PCM WAV."""
    with wave.open(target if not isinstance(target, os.PathLike) else os.fspath(target), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(np.asarray(pcm, dtype="<i2").tobytes())


class WavWriter:
    """A 16-bit mono WAV written while a call lasts, ``flush_frames`` frames at a time.

    Why streaming: holding a whole recording in memory costs 16 kB per second of call
    (57 MB for an hour, per call), and writing it all at hang-up stalls the event loop for
    as long as the write takes.  Frames are gathered and written in chunks (one write per
    second of audio by default), and :meth:`close` fixes the sizes in the header.
    ``first_flush`` lets many recordings that started together (a batch of calls) write in
    different ticks instead of all in the same one.
    """

    def __init__(self, target: _Source, rate: int = TELEPHONE_RATE, *, flush_frames: int = 50,
                 first_flush: int | None = None) -> None:
        # We open a named file ourselves: wave.open(path) that fails leaves a half-built
        # writer whose __del__ raises.  Both stay open until close().
        self._file: BinaryIO | None = None
        if isinstance(target, (str, os.PathLike)):
            self._file = open(target, "wb")  # noqa: SIM115
            self._writer = wave.open(self._file, "wb")  # noqa: SIM115
        else:
            self._writer = wave.open(target, "wb")  # noqa: SIM115
        self._writer.setnchannels(1)
        self._writer.setsampwidth(2)
        self._writer.setframerate(rate)
        self._pending: list[Pcm] = []
        self._flush_frames = flush_frames
        self._next_flush = flush_frames if first_flush is None else max(1, first_flush)
        self.samples = 0

    def add(self, frame: Pcm) -> None:
        """Append one frame of samples (written with the next chunk)."""
        self._pending.append(frame)
        if len(self._pending) >= self._next_flush:
            self._next_flush = self._flush_frames
            self.flush()

    def flush(self) -> None:
        """Write the gathered frames now."""
        if self._pending:
            chunk = np.concatenate(self._pending).astype("<i2", copy=False)
            self._pending.clear()
            self._writer.writeframesraw(chunk.tobytes())
            self.samples += chunk.size

    def close(self) -> None:
        """Write what is left and the final header."""
        try:
            self.flush()
        finally:
            try:
                self._writer.close()
            finally:
                if self._file is not None:
                    self._file.close()


def _decode_samples(raw: bytes, width: int) -> npt.NDArray[np.float64]:
    """Interleaved samples scaled to the int16 range, as floats."""
    if width == 1:  # 8-bit WAV is unsigned with a 128 offset
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float64)
    if width == 3:
        triplets = np.frombuffer(raw[: len(raw) - len(raw) % 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = triplets[:, 0] | (triplets[:, 1] << 8) | (triplets[:, 2] << 16)
        value = np.where(value & 0x800000, value - (1 << 24), value)
        return value.astype(np.float64) / 256.0
    if width == 4:
        return np.frombuffer(raw, dtype="<i4").astype(np.float64) / 65536.0
    raise MediaParseError(f"unsupported WAV sample width {width}")


def to_int16(samples: npt.NDArray[np.float64]) -> Pcm:
    """Round and saturate floats in the int16 range."""
    return np.clip(np.rint(samples), -32768, 32767).astype(np.int16)


def resample(
    samples: npt.NDArray[np.float64] | Pcm, source_rate: int, target_rate: int, *, zero_crossings: int = 16
) -> npt.NDArray[np.float64]:
    """Band-limited resampling of a mono signal; returns floats at ``target_rate``.

    ``zero_crossings`` is the half-length of the sinc kernel in zero crossings of the
    lower of the two rates: 16 gives roughly 70 dB of stop-band rejection with beta 8.
    """
    if source_rate <= 0 or target_rate <= 0:
        raise MediaUsageError("sample rates must be positive")
    signal = np.asarray(samples, dtype=np.float64)
    if source_rate == target_rate or signal.size == 0:
        return signal.copy()
    ratio = target_rate / source_rate
    scale = min(1.0, ratio)
    cutoff = 0.5 * scale * 0.94  # cycles per input sample, leaving a transition band
    half = zero_crossings / scale  # kernel half-width in input samples
    reach = int(np.ceil(half))
    offsets = np.arange(-reach + 1, reach + 1)
    # Output n sits at input position n * step / phases: its integer part picks the taps,
    # its fractional part (one of ``phases`` values) picks a precomputed kernel row.
    common = math.gcd(source_rate, target_rate)
    step, phases = source_rate // common, target_rate // common
    table = _kernel(np.arange(phases)[:, None] / phases - offsets[None, :], cutoff, half) if phases <= 4096 else None
    padded = np.concatenate([np.zeros(reach), signal, np.zeros(reach + 1)])
    count = (signal.size * target_rate) // source_rate
    out = np.empty(count, dtype=np.float64)
    for start in range(0, count, _CHUNK):
        n = np.arange(start, min(start + _CHUNK, count), dtype=np.int64)
        base, phase = np.divmod(n * step, phases)
        taps = padded[base[:, None] + offsets[None, :] + reach]
        if table is not None:
            kernel = table[phase]
        else:
            kernel = _kernel(phase[:, None] / phases - offsets[None, :], cutoff, half)
        out[start : start + n.size] = np.einsum("ij,ij->i", taps, kernel)
    return out


def _kernel(distance: npt.NDArray[np.float64], cutoff: float, half: float) -> npt.NDArray[np.float64]:
    """Kaiser-windowed sinc low-pass evaluated at ``distance`` input samples."""
    beta = 8.0
    window = np.i0(beta * np.sqrt(np.clip(1.0 - (distance / half) ** 2, 0.0, None))) / np.i0(beta)
    result: npt.NDArray[np.float64] = 2.0 * cutoff * np.sinc(2.0 * cutoff * distance) * window
    return result
