"""Explicit bounds on what a peer may make us hold in memory.

Every receive path is hostile territory: a datagram flood or a slow TCP peer must not grow our
memory without bound, and a message with ten thousand Via headers must be refused before a
proxy spends time on it.  The defaults fit real traffic with a wide margin (a large INVITE
with SDP and a long route set is ~4 KB) and every one is a setting.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits", "DEFAULT_LIMITS"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits applied while parsing and framing messages."""

    #: Largest whole message (start line, headers and body) accepted, in bytes (413 beyond).
    max_message_size: int = 65535
    #: Largest header section (start line and headers) accepted, in bytes.
    max_header_size: int = 32768
    #: Most header fields (lines after unfolding) in one message.
    max_headers: int = 256
    #: Most Via values in one message; a deep Via stack usually means a loop or an attack.
    max_vias: int = 70
    #: Largest body, in bytes.
    max_body_size: int = 65535


DEFAULT_LIMITS = Limits()
