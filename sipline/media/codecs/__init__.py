"""Audio codecs behind one interface, found by SDP name and clock rate.

Importing the package registers the built-in codecs, so ``get_codec("PCMU")`` works
without the caller knowing which module implements it.
"""

from __future__ import annotations

from sipline.media.codecs.base import (
    Codec,
    Decoder,
    Encoder,
    Pcm,
    codec_for_payload_type,
    get_codec,
    register_codec,
    registered_codecs,
)
from sipline.media.codecs.g711 import PcmaDecoder, PcmaEncoder, PcmuDecoder, PcmuEncoder

__all__ = [
    "Codec",
    "Decoder",
    "Encoder",
    "Pcm",
    "PCMU",
    "PCMA",
    "codec_for_payload_type",
    "get_codec",
    "register_codec",
    "registered_codecs",
]

PCMU = Codec("PCMU", 8000, PcmuEncoder, PcmuDecoder, static_payload_type=0)
PCMA = Codec("PCMA", 8000, PcmaEncoder, PcmaDecoder, static_payload_type=8)
register_codec(PCMU)
register_codec(PCMA)
