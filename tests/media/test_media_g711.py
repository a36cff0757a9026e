"""G.711 against reference values and an independent scalar port of the ITU-T STL."""

from __future__ import annotations

import numpy as np
import pytest

from sipline.media.codecs import PCMA, PCMU, Codec, codec_for_payload_type, get_codec, register_codec, registered_codecs
from sipline.media.codecs.g711 import (
    ALAW_DECODE_TABLE,
    ULAW_DECODE_TABLE,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)
from sipline.media.errors import CodecNotFound, MediaUsageError

ALL = np.arange(-32768, 32768, dtype=np.int16)


def _stl_ulaw(x: int) -> int:
    """Scalar transcription of the G.191 STL algorithm, written independently of the tables."""
    absno = ((~x) >> 2) + 33 if x < 0 else (x >> 2) + 33
    absno = min(absno, 0x1FFF)
    segno, i = 1, absno >> 6
    while i:
        segno, i = segno + 1, i >> 1
    out = ((8 - segno) << 4) | (0x0F - ((absno >> segno) & 0x0F))
    return out | 0x80 if x >= 0 else out


def _stl_alaw(x: int) -> int:
    ix = (~x) >> 4 if x < 0 else x >> 4
    if ix > 15:
        exponent = 1
        while ix > 31:
            ix >>= 1
            exponent += 1
        ix = ix - 16 + (exponent << 4)
    if x >= 0:
        ix |= 0x80
    return ix ^ 0x55


@pytest.mark.parametrize(
    ("sample", "ulaw", "alaw"),
    [
        (0, 0xFF, 0xD5),
        (-1, 0x7F, 0x55),
        (1, 0xFF, 0xD5),
        (8, 0xFE, 0xD5),
        (16, 0xFD, 0xD4),
        (1000, 0xCE, 0xFA),
        (-1000, 0x4E, 0x7A),
        (32767, 0x80, 0xAA),
        (-32768, 0x00, 0x2A),
    ],
)
def test_known_encodings(sample: int, ulaw: int, alaw: int) -> None:
    pcm = np.array([sample], dtype=np.int16)
    assert ulaw_encode(pcm) == bytes([ulaw])
    assert alaw_encode(pcm) == bytes([alaw])


@pytest.mark.parametrize(
    ("code", "ulaw", "alaw"),
    [(0xFF, 0, 848), (0x7F, 0, -848), (0x80, 32124, 5504), (0x00, -32124, -5504),
     (0xD5, 716, 8), (0x55, -716, -8), (0xAA, 5372, 32256), (0x2A, -5372, -32256)],
)
def test_known_decodings(code: int, ulaw: int, alaw: int) -> None:
    assert int(ulaw_decode(bytes([code]))[0]) == ulaw
    assert int(alaw_decode(bytes([code]))[0]) == alaw


def test_full_encode_tables_match_scalar_reference() -> None:
    samples = [int(v) for v in ALL]
    assert ulaw_encode(ALL) == bytes(_stl_ulaw(v) for v in samples)
    assert alaw_encode(ALL) == bytes(_stl_alaw(v) for v in samples)


def test_every_code_roundtrips_through_decode_and_encode() -> None:
    codes = bytes(range(256))
    ulaw_back = ulaw_encode(ulaw_decode(codes))
    # 0x7F is µ-law "negative zero": it decodes to 0, which encodes as 0xFF.
    assert [c for c in range(256) if ulaw_back[c] != c] == [0x7F]
    assert ulaw_back[0x7F] == 0xFF
    assert alaw_encode(alaw_decode(codes)) == codes


def test_decode_tables_are_monotonic_and_symmetric() -> None:
    # Positive codes 0x80..0xFF in µ-law decrease in magnitude as the code grows.
    positive = ULAW_DECODE_TABLE[0x80:].astype(int)
    assert all(a > b for a, b in zip(positive, positive[1:], strict=False))
    assert (ULAW_DECODE_TABLE[:0x80].astype(int) == -positive).all()
    assert (ALAW_DECODE_TABLE[:0x80].astype(int) == -ALAW_DECODE_TABLE[0x80:].astype(int)).all()


def test_quantisation_error_is_bounded_by_segment_step() -> None:
    for encode, decode, step in ((ulaw_encode, ulaw_decode, 1024 + 132), (alaw_encode, alaw_decode, 1024 + 8)):
        error = np.abs(decode(encode(ALL)).astype(int) - ALL.astype(int))
        assert error.max() <= step
        small = np.abs(ALL.astype(int)) < 64
        assert error[small].max() <= 8


def test_frame_of_160_samples_gives_160_bytes() -> None:
    frame = (np.sin(np.arange(160) / 5) * 8000).astype(np.int16)
    for codec in (PCMU, PCMA):
        payload = codec.new_encoder().encode(frame)
        assert len(payload) == 160
        decoded = codec.new_decoder().decode(payload)
        assert decoded.dtype == np.int16 and decoded.shape == (160,)
        assert np.abs(decoded.astype(int) - frame.astype(int)).max() < 300
    assert PCMU.samples_per_frame(0.02) == 160


def test_registry_lookup() -> None:
    assert get_codec("pcmu") is PCMU
    assert get_codec("PCMA", 8000) is PCMA
    assert codec_for_payload_type(0) is PCMU
    assert codec_for_payload_type(8) is PCMA
    assert {PCMU, PCMA} <= set(registered_codecs())
    with pytest.raises(CodecNotFound):
        get_codec("PCMU", 16000)
    with pytest.raises(CodecNotFound):
        codec_for_payload_type(18)
    with pytest.raises(MediaUsageError):
        register_codec(Codec("pcmu", 8000, PCMU.encoder_factory, PCMU.decoder_factory))
