"""Codec interfaces and the registry that finds them by SDP encoding name.

SDP names a codec by ``encoding name / clock rate`` (``PCMU/8000``); the session only
knows that pair, so the registry is keyed by it (case-insensitively, as RFC 4855 says
MIME subtypes are).  Encoders and decoders are separate objects because stateful codecs
(G.722, Opus) keep history per direction; G.711 is stateless, but the shape must not
change when a stateful codec is added.

PCM is mono ``numpy.int16`` everywhere: the jitter buffer, tone measurement and WAV
writer all take the same array type, so a frame never needs converting between them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sipline.media.errors import CodecNotFound, MediaUsageError

__all__ = ["Pcm", "Encoder", "Decoder", "Codec", "register_codec", "get_codec", "codec_for_payload_type", "registered_codecs"]

Pcm = npt.NDArray[np.int16]
"""Mono signed 16-bit samples."""


class Encoder(ABC):
    """Turns PCM frames into payload bytes for one direction of one stream."""

    #: True when a frame's payload depends only on that frame's samples (G.711), so a
    #: prompt can be encoded once and its payloads sent by any stream of the codec.
    stateless: bool = False

    @abstractmethod
    def encode(self, pcm: Pcm) -> bytes:
        """Encode one frame of samples at the codec's clock rate."""

    def encode_frames(self, pcm: Pcm, frame_samples: int) -> list[bytes]:
        """Encode a whole buffer (a multiple of ``frame_samples``) into one payload per frame.

        Frame by frame here; sample-wise codecs override it with one call for the buffer,
        which is what makes playing a prompt cheap.
        """
        return [self.encode(pcm[start:start + frame_samples]) for start in range(0, len(pcm), frame_samples)]


class Decoder(ABC):
    """Turns payload bytes back into PCM for one direction of one stream."""

    @abstractmethod
    def decode(self, payload: bytes) -> Pcm:
        """Decode one payload into samples at the codec's clock rate."""


@dataclass(frozen=True, slots=True)
class Codec:
    """A registered codec: its SDP identity and factories for fresh encoder/decoder state.

    ``static_payload_type`` is the RFC 3551 number (0 for PCMU, 8 for PCMA) or ``None``
    for codecs that always need a dynamic ``a=rtpmap``.
    """

    name: str
    clock_rate: int
    encoder_factory: Callable[[], Encoder]
    decoder_factory: Callable[[], Decoder]
    static_payload_type: int | None = None
    channels: int = 1

    def new_encoder(self) -> Encoder:
        """A fresh encoder (per outgoing stream)."""
        return self.encoder_factory()

    def new_decoder(self) -> Decoder:
        """A fresh decoder (per incoming stream)."""
        return self.decoder_factory()

    def samples_per_frame(self, ptime: float) -> int:
        """Samples in one packet of ``ptime`` seconds (160 for 20 ms at 8 kHz)."""
        return round(self.clock_rate * ptime)


_REGISTRY: dict[tuple[str, int], Codec] = {}


def register_codec(codec: Codec) -> None:
    """Add ``codec``; registering the same name and rate twice is a programming error."""
    key = (codec.name.upper(), codec.clock_rate)
    if key in _REGISTRY:
        raise MediaUsageError(f"codec {codec.name}/{codec.clock_rate} already registered")
    _REGISTRY[key] = codec


def get_codec(name: str, clock_rate: int = 8000) -> Codec:
    """Look up a codec by SDP encoding name and clock rate."""
    try:
        return _REGISTRY[(name.upper(), clock_rate)]
    except KeyError:
        raise CodecNotFound(f"no codec {name}/{clock_rate}") from None


def codec_for_payload_type(payload_type: int) -> Codec:
    """The codec statically bound to ``payload_type`` by RFC 3551, if registered."""
    for codec in _REGISTRY.values():
        if codec.static_payload_type == payload_type:
            return codec
    raise CodecNotFound(f"no codec for static payload type {payload_type}")


def registered_codecs() -> tuple[Codec, ...]:
    """Every registered codec, in registration order."""
    return tuple(_REGISTRY.values())
