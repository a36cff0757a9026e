"""Bookkeeping of the RTP port range: even ports for RTP, the odd neighbour for RTCP.

RFC 3550 §11 pairs RTP on an even port with RTCP on the next one, and firewalls are opened
for a configured range, so sessions must not bind wherever the OS likes.  The allocator
is pure (no sockets): it hands out candidates and the session reports back whether the
bind worked, which keeps the range logic testable and lets a port held by another process
be skipped.  Allocation rotates through the range instead of reusing the lowest free port,
so a just-closed port is not reused while stale packets for it may still be arriving.
"""

from __future__ import annotations

from sipline.media.errors import MediaUsageError, PortsExhausted

__all__ = ["PortAllocator"]


class PortAllocator:
    """Hands out even ports in ``[first, last]`` (inclusive), each with ``port + 1`` for RTCP."""

    def __init__(self, first: int = 16384, last: int = 32767) -> None:
        first += first % 2  # round up to even
        if not 0 < first < last <= 65535:
            raise MediaUsageError(f"invalid RTP port range {first}-{last}")
        self.first = first
        self.last = last if last % 2 else last - 1  # the RTCP port must fit too
        self._size = (self.last - self.first + 1) // 2
        self._in_use: set[int] = set()
        self._cursor = 0

    @property
    def capacity(self) -> int:
        """Number of RTP/RTCP pairs in the range."""
        return self._size

    @property
    def in_use(self) -> frozenset[int]:
        """RTP ports currently allocated."""
        return frozenset(self._in_use)

    def allocate(self) -> int:
        """Reserve the next free even port; raise :class:`PortsExhausted` when none is left."""
        for _ in range(self._size):
            port = self.first + 2 * self._cursor
            self._cursor = (self._cursor + 1) % self._size
            if port not in self._in_use:
                self._in_use.add(port)
                return port
        raise PortsExhausted(f"no free RTP port in {self.first}-{self.last}")

    def reserve(self, port: int) -> None:
        """Mark one particular pair as taken (a session reopened on the port in its SDP).

        The port must be an even port of the range and currently free; anything else is a
        usage error, because two sessions on one port would steal each other's packets.
        """
        if not (self.first <= port <= self.last and (port - self.first) % 2 == 0):
            raise MediaUsageError(f"port {port} is not an RTP port of {self.first}-{self.last}")
        if port in self._in_use:
            raise MediaUsageError(f"port {port} is already allocated")
        self._in_use.add(port)

    def release(self, port: int) -> None:
        """Return ``port`` to the pool; releasing a port not allocated is a usage error."""
        try:
            self._in_use.remove(port)
        except KeyError:
            raise MediaUsageError(f"port {port} was not allocated") from None
