"""G.711 µ-law (PCMU) and A-law (PCMA) with tables built from the ITU-T reference.

The tables follow the ITU-T G.191 Software Tool Library (``g711.c``) rather than the
older Sun code found in many projects: the two agree on decoding but differ on encoding
negative inputs, because the reference takes the one's complement of negative samples
(making the quantiser symmetric around -0.5) while Sun negates after shifting.  Matching
the reference keeps our output bit-exact with conformance vectors.

Encoding is a single lookup (``take``, cheaper than fancy indexing for a 160-sample
frame) into a 65 536-entry table indexed by the sample's bit pattern, decoding a lookup
into 256 entries: a 20 ms frame costs two numpy calls instead of 160 Python-level
iterations, and a whole prompt can be encoded in one call (``encode_frames``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sipline.media.codecs.base import Decoder, Encoder, Pcm

__all__ = [
    "ulaw_encode",
    "ulaw_decode",
    "alaw_encode",
    "alaw_decode",
    "PcmuEncoder",
    "PcmuDecoder",
    "PcmaEncoder",
    "PcmaDecoder",
    "ULAW_ENCODE_TABLE",
    "ULAW_DECODE_TABLE",
    "ALAW_ENCODE_TABLE",
    "ALAW_DECODE_TABLE",
]


def _all_samples() -> npt.NDArray[np.int64]:
    """Every int16 value, ordered by its unsigned bit pattern (the table index)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64)


def _bit_length(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Number of significant bits of non-negative integers (0 for 0), vectorised."""
    out = np.zeros_like(values)
    remaining = values.copy()
    while np.any(remaining):
        nonzero = remaining > 0
        out[nonzero] += 1
        remaining >>= 1
    return out


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    x = _all_samples()
    # 14-bit magnitude (one's complement for negatives) plus the µ-law bias of 33.
    magnitude = np.where(x < 0, (~x) >> 2, x >> 2) + 33
    magnitude = np.minimum(magnitude, 0x1FFF)
    segment = _bit_length(magnitude >> 6) + 1  # 1..8
    high = 8 - segment
    low = 0x0F - ((magnitude >> segment) & 0x0F)
    code = (high << 4) | low
    code = np.where(x >= 0, code | 0x80, code)
    table: npt.NDArray[np.uint8] = code.astype(np.uint8)
    return table


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    y = np.arange(256, dtype=np.int64)
    sign = np.where(y < 0x80, -1, 1)
    inverted = ~y
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    step = 4 << (exponent + 1)
    value = sign * ((0x80 << exponent) + step * mantissa + step // 2 - 4 * 33)
    table: npt.NDArray[np.int16] = value.astype(np.int16)
    return table


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    x = _all_samples()
    magnitude = np.where(x < 0, (~x) >> 4, x >> 4)  # 12-bit magnitude
    # Exponent: 0 for magnitudes up to 15, else the position of the leading one - 3.
    exponent = np.maximum(_bit_length(magnitude) - 4, 0)
    mantissa = np.where(exponent == 0, magnitude, (magnitude >> np.maximum(exponent - 1, 0)) - 16)
    code = (exponent << 4) + mantissa
    code = np.where(x >= 0, code | 0x80, code)
    return (code ^ 0x55).astype(np.uint8)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    y = np.arange(256, dtype=np.int64)
    toggled = (y ^ 0x55) & 0x7F
    exponent = toggled >> 4
    mantissa = toggled & 0x0F
    mantissa = np.where(exponent > 0, mantissa + 16, mantissa)
    mantissa = (mantissa << 4) + 0x08
    mantissa = np.where(exponent > 1, mantissa << np.maximum(exponent - 1, 0), mantissa)
    return np.where(y > 127, mantissa, -mantissa).astype(np.int16)


ULAW_ENCODE_TABLE = _build_ulaw_encode()
ULAW_DECODE_TABLE = _build_ulaw_decode()
ALAW_ENCODE_TABLE = _build_alaw_encode()
ALAW_DECODE_TABLE = _build_alaw_decode()
for _table in (ULAW_ENCODE_TABLE, ULAW_DECODE_TABLE, ALAW_ENCODE_TABLE, ALAW_DECODE_TABLE):
    _table.flags.writeable = False


def _as_pcm(pcm: Pcm) -> Pcm:
    return np.ascontiguousarray(pcm, dtype=np.int16)


def ulaw_encode(pcm: Pcm) -> bytes:
    """µ-law bytes for int16 samples."""
    return ULAW_ENCODE_TABLE.take(_as_pcm(pcm).view(np.uint16)).tobytes()


def ulaw_decode(payload: bytes) -> Pcm:
    """int16 samples for µ-law bytes."""
    return ULAW_DECODE_TABLE.take(np.frombuffer(payload, dtype=np.uint8))


def alaw_encode(pcm: Pcm) -> bytes:
    """A-law bytes for int16 samples."""
    return ALAW_ENCODE_TABLE.take(_as_pcm(pcm).view(np.uint16)).tobytes()


def alaw_decode(payload: bytes) -> Pcm:
    """int16 samples for A-law bytes."""
    return ALAW_DECODE_TABLE.take(np.frombuffer(payload, dtype=np.uint8))


def _split(payload: bytes, size: int) -> list[bytes]:
    return [payload[start:start + size] for start in range(0, len(payload), size)]


class PcmuEncoder(Encoder):
    """Stateless µ-law encoder (RFC 3551 PCMU, payload type 0)."""

    stateless = True

    def encode(self, pcm: Pcm) -> bytes:
        return ulaw_encode(pcm)

    def encode_frames(self, pcm: Pcm, frame_samples: int) -> list[bytes]:
        # One byte per sample: encode the buffer in one lookup, then cut it.
        return _split(ulaw_encode(pcm), frame_samples)


class PcmuDecoder(Decoder):
    """Stateless µ-law decoder."""

    def decode(self, payload: bytes) -> Pcm:
        return ulaw_decode(payload)


class PcmaEncoder(Encoder):
    """Stateless A-law encoder (RFC 3551 PCMA, payload type 8)."""

    stateless = True

    def encode(self, pcm: Pcm) -> bytes:
        return alaw_encode(pcm)

    def encode_frames(self, pcm: Pcm, frame_samples: int) -> list[bytes]:
        return _split(alaw_encode(pcm), frame_samples)


class PcmaDecoder(Decoder):
    """Stateless A-law decoder."""

    def decode(self, payload: bytes) -> Pcm:
        return alaw_decode(payload)
