"""Digest verification against the subscriber store, shared by the registrar and the proxy.

The sans-I/O :func:`~sipline.sip.auth_policy.authenticate` takes a synchronous HA1 lookup,
but the subscriber store is asynchronous (it may be Redis).  So the one HA1 the credentials
name is fetched first, and the lookup handed to the core only ever answers for that key:
an unknown user and a wrong password then take the same path and get the same challenge.
"""

from __future__ import annotations

from ..sip.auth.server import AuthResult, DigestServer
from ..sip.auth_policy import authenticate, ha1_key, select_credentials
from ..sip.errors import UsageError
from ..sip.message.model import Request
from ..storage.base import SubscriberStore

__all__ = ["verify_digest"]


async def verify_digest(
    request: Request,
    server: DigestServer,
    subscribers: SubscriberStore,
    now: float,
    *,
    proxy: bool,
    binding: str = "",
) -> AuthResult:
    """Check the request's (Proxy-)Authorization for ``server``'s realm."""
    credentials = select_credentials(request, server.realm, proxy=proxy)
    key = ha1_key(credentials) if credentials is not None else None
    stored: str | None = None
    if key is not None:
        try:
            stored = await subscribers.ha1(*key)
        except UsageError:  # an algorithm the store does not hash: verification fails
            stored = None

    def lookup(username: str, realm: str, algorithm: str) -> str | None:
        return stored if (username, realm, algorithm) == key else None

    return authenticate(request, server, now, lookup, proxy=proxy, binding=binding)
