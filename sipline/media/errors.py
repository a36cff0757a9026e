"""Media errors, grafted onto the one sipline exception hierarchy.

Media code meets two kinds of failure: a peer sends bytes we cannot accept (a truncated
RTP header, an RTCP length that runs past the datagram) and the local application asks
for something impossible (an unknown codec, no free port).  The first kind subclasses
:class:`~sipline.sip.errors.ParseError` as well as :class:`MediaError`, so a receive path
that already catches ``ProtocolError`` keeps working, and a media caller can catch the
narrower ``MediaError`` without knowing about SIP statuses.
"""

from __future__ import annotations

from sipline.sip.errors import ParseError, SiplineError, UsageError

__all__ = ["MediaError", "MediaParseError", "MediaUsageError", "CodecNotFound", "PortsExhausted"]


class MediaError(SiplineError):
    """Base of every error raised by :mod:`sipline.media`."""


class MediaParseError(MediaError, ParseError):
    """A packet or payload from the network is malformed; ``reason`` names the fault."""


class MediaUsageError(MediaError, UsageError):
    """The local application misused a media API (bad argument, closed session)."""


class CodecNotFound(MediaUsageError):
    """No codec is registered under the requested encoding name and clock rate."""


class PortsExhausted(MediaError):
    """Every even port of the configured RTP range is in use."""
