"""Digest verification against the subscriber store, shared by the registrar and the proxy.

The sans-I/O :func:`~sipline.sip.auth_policy.authenticate` takes a synchronous HA1 lookup,
but the subscriber store is asynchronous (it may be Redis).  So the one HA1 the credentials
name is fetched first, and the lookup handed to the core only ever answers for that key:
an unknown user and a wrong password then take the same path and get the same challenge.

A request without credentials for our realm needs no store at all: :func:`challenge_now`
answers it synchronously, which is how every first REGISTER and INVITE of a digest exchange
is turned round without a task.  Both functions make the decisions
:func:`~sipline.sip.auth_policy.authenticate` makes, reading the credentials only once.
"""

from __future__ import annotations

from ..sip.auth.header import Credentials
from ..sip.auth.server import AuthOutcome, AuthResult, DigestServer
from ..sip.auth_policy import ha1_key, select_credentials
from ..sip.errors import UsageError
from ..sip.message.model import Request
from ..storage.base import SubscriberStore

__all__ = ["challenge_now", "verify_credentials", "verify_digest"]


def challenge_now(
    request: Request, server: DigestServer, now: float, *, proxy: bool, binding: str = ""
) -> tuple[Credentials | None, AuthResult | None]:
    """The request's credentials for ``server``'s realm, or the failed result (fresh
    challenges) that answers a request carrying none: ``(credentials, None)`` or
    ``(None, result)``."""
    credentials = select_credentials(request, server.realm, proxy=proxy)
    if credentials is not None:
        return credentials, None
    return None, AuthResult(
        AuthOutcome.FAIL,
        "no credentials for this realm",
        challenges=tuple(server.challenge(now, binding=binding)),
    )


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
    credentials, refused = challenge_now(request, server, now, proxy=proxy, binding=binding)
    if refused is not None:
        return refused
    assert credentials is not None
    return await verify_credentials(request, credentials, server, subscribers, now, binding=binding)


async def verify_credentials(
    request: Request,
    credentials: Credentials,
    server: DigestServer,
    subscribers: SubscriberStore,
    now: float,
    *,
    binding: str = "",
) -> AuthResult:
    """Check credentials already picked by :func:`challenge_now` against the store."""
    key = ha1_key(credentials)
    stored: str | None = None
    if key is not None:
        try:
            stored = await subscribers.ha1(*key)
        except UsageError:  # an algorithm the store does not hash: verification fails
            stored = None

    def lookup(username: str, realm: str, algorithm: str) -> str | None:
        return stored if (username, realm, algorithm) == key else None

    # The digest-uri must be the Request-URI as received (§22.4): the server compares.
    return server.verify(credentials, request.method, request.uri_text, now, lookup,
                         request.body, binding=binding)
