"""Where a proxied request goes next: RFC 3263 for branch targets, numeric hosts kept.

Split from :mod:`sipline.roles.proxy` so the role reads as routing and forwarding.  Every
branch and every ACK for a 2xx needs the transport address of its next hop.  For a host
name that is a DNS question (NAPTR, SRV, A/AAAA: :func:`sipline.runtime.dns.locate`); for
an IP literal -- the common case behind an SBC, and every static route written as an
address -- the answer follows from the URI alone and never changes, so it is kept and
:meth:`HopResolver.resolve_now` gives it without a task or a trip through the resolver.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from ..runtime.dns import Resolver, locate
from ..sip.errors import UsageError
from ..sip.locate import Destination as LocateTarget
from ..sip.message import SipURI, TelURI
from ..sip.message.uri import URI
from ..sip.transport import Peer, default_port

__all__ = ["HopResolver"]

#: Entries kept per table before it is cleared (a bound against hostile URIs).
_MAX_ENTRIES = 4096


class HopResolver:
    """RFC 3263 resolution for the proxy, remembering the answers for numeric hosts.

    ``transports`` returns the transports we can send on, best first (part of the
    answer, so part of the cache key).
    """

    def __init__(self, resolver: Resolver, transports: Callable[[], tuple[str, ...]]) -> None:
        self.resolver = resolver
        self._transports = transports
        self._numeric: dict[tuple[object, ...], Peer] = {}
        self._is_ip: dict[str, bool] = {}

    def _numeric_key(self, uri: URI) -> tuple[object, ...] | None:
        """Cache key for *uri* when RFC 3263 needs no DNS for it (a numeric host)."""
        if not isinstance(uri, SipURI):
            return None
        host = uri.maddr or uri.host
        numeric = self._is_ip.get(host)
        if numeric is None:
            numeric = _is_ip_literal(host)
            if len(self._is_ip) > _MAX_ENTRIES:
                self._is_ip.clear()
            self._is_ip[host] = numeric
        if not numeric:
            return None
        return (uri.scheme, uri.host, uri.port, uri.transport, uri.maddr, self._transports())

    def resolve_now(self, uri: URI) -> Peer | None:
        """The answer of :meth:`resolve` when it is known without asking DNS, else None."""
        key = self._numeric_key(uri)
        return None if key is None else self._numeric.get(key)

    async def resolve(self, uri: URI) -> Peer:
        """RFC 3263: the first transport address for *uri*."""
        if isinstance(uri, TelURI) or not isinstance(uri, SipURI):
            raise UsageError(f"cannot route to {uri}")
        key = self._numeric_key(uri)
        if key is not None:
            known = self._numeric.get(key)
            if known is not None:
                return known
        targets = await locate(
            LocateTarget(uri.scheme, uri.host, uri.port, uri.transport, uri.maddr), self.resolver,
            transports=self._transports(),
        )
        first = targets[0]
        peer = Peer(first.transport, first.address, first.port or default_port(first.transport))
        if key is not None:
            if len(self._numeric) > _MAX_ENTRIES:
                self._numeric.clear()
            self._numeric[key] = peer
        return peer


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
