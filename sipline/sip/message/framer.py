"""Message framing on stream transports (TCP, TLS; RFC 3261 §18.3, RFC 5626 §3.5.1).

A byte stream carries messages back to back; Content-Length is the only delimiter of the
body, so it is mandatory here.  Between messages a peer may send a double CRLF keep-alive
"ping", answered with a single CRLF "pong".  The framer turns bytes into whole-message
frames and keep-alive events, and refuses to buffer more than the configured limits so a
slow or hostile peer cannot grow our memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import MessageTooLarge, ParseError
from ..limits import DEFAULT_LIMITS, Limits

__all__ = ["StreamFramer", "KeepAlivePing", "KeepAlivePong", "Frame"]

_CONTENT_LENGTH_RE = re.compile(rb"\r?\n(?:content-length|l)[ \t]*:[ \t]*([0-9]*)[ \t]*\r?\n", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class KeepAlivePing:
    """A CRLFCRLF ping: answer with a single CRLF (RFC 5626 §3.5.1)."""


@dataclass(frozen=True, slots=True)
class KeepAlivePong:
    """A lone CRLF pong, answering our ping."""


Frame = bytes | KeepAlivePing | KeepAlivePong


class StreamFramer:
    """Splits a byte stream into SIP messages.

    Feed received bytes with :meth:`feed`, then call :meth:`next_frame` until it returns None.
    A framing error is final for the connection: the runtime should answer 400 if it can and
    close, because the stream position is lost.
    """

    __slots__ = ("_buffer", "_limits")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._buffer = bytearray()
        self._limits = limits

    @property
    def buffered(self) -> int:
        """Bytes received but not yet framed."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > self._limits.max_message_size + 4:
            # Fast refusal of a flood: nothing legal is that long without a frame boundary.
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0 or head_end > self._limits.max_header_size:
                raise MessageTooLarge("stream buffer limit exceeded without a complete message")

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None if more bytes are needed."""
        buf = self._buffer
        if not buf:
            return None
        if buf[0] == 0x0D or buf[0] == 0x0A:
            if buf.startswith(b"\r\n\r\n"):
                del buf[:4]
                return KeepAlivePing()
            if buf.startswith(b"\r\n"):
                if len(buf) == 2:
                    # Could be the first half of a ping: wait, unless more never comes.
                    del buf[:2]
                    return KeepAlivePong()
                if buf[2] != 0x0D:
                    del buf[:2]
                    return KeepAlivePong()
                if len(buf) < 4:
                    return None
                raise ParseError("stray CR after a keep-alive CRLF")
            elif buf[0] == 0x0A:
                del buf[:1]
                return KeepAlivePong()
            else:
                if len(buf) < 2:
                    return None
                raise ParseError("stray CR in stream")
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self._limits.max_header_size:
                raise MessageTooLarge(f"header section exceeds {self._limits.max_header_size} bytes")
            return None
        head_len = end + 4
        if end > self._limits.max_header_size:
            raise MessageTooLarge(f"header section exceeds {self._limits.max_header_size} bytes")
        match = _CONTENT_LENGTH_RE.search(buf, 0, head_len)
        if match is None:
            raise ParseError("missing Content-Length on a stream transport", header="Content-Length")
        digits = match.group(1)
        if not digits or len(digits) > 10:
            raise ParseError("malformed Content-Length", header="Content-Length")
        length = int(digits)
        if length > self._limits.max_body_size:
            raise MessageTooLarge(f"Content-Length {length} exceeds the {self._limits.max_body_size}-byte limit")
        total = head_len + length
        if len(buf) < total:
            return None
        frame = bytes(buf[:total])
        del buf[:total]
        return frame
