"""Packet loss concealment for PCM frames: fade the last good frame into silence.

Repeating the previous 20 ms masks a single lost packet far better than a hole of
silence (the ear hears a click at the gap), but repeating it for long turns into a buzz.
So each concealed frame is the last good one attenuated a little more, and after a few
frames the output is silence until real audio returns.  G.711 Appendix I does better
with pitch-period repetition; this is the simple baseline that the E-model's
"with PLC" robustness factor assumes something at least this good.
"""

from __future__ import annotations

import numpy as np

from sipline.media.codecs.base import Pcm

__all__ = ["Concealer"]


class Concealer:
    """Produces replacement frames; feed it every good frame through :meth:`good`."""

    def __init__(self, frame_samples: int = 160, *, attenuation: float = 0.5, max_repeats: int = 3) -> None:
        self.frame_samples = frame_samples
        self.attenuation = attenuation
        self.max_repeats = max_repeats
        self._last: Pcm | None = None
        self._repeats = 0

    def good(self, frame: Pcm) -> Pcm:
        """Record a decoded frame (returned unchanged) as the base for concealment."""
        self._last = frame
        self._repeats = 0
        return frame

    def conceal(self) -> Pcm:
        """A replacement frame: the last one attenuated once more, or silence."""
        self._repeats += 1
        if self._last is None or self._repeats > self.max_repeats:
            return np.zeros(self.frame_samples, dtype=np.int16)
        gain = self.attenuation**self._repeats
        return np.rint(self._last.astype(np.float64) * gain).astype(np.int16)
