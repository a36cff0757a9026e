"""Digest authentication applied to SIP messages (RFC 3261 §22.1-§22.3, §26.3.2.3).

:mod:`sipline.sip.auth` works on header *values*; this module is the glue that knows
which headers a registrar or a proxy reads and writes:

=========  ====================  ==========================  ======
role       challenge header      credentials header          status
=========  ====================  ==========================  ======
UAS        WWW-Authenticate      Authorization               401
proxy      Proxy-Authenticate    Proxy-Authorization         407
=========  ====================  ==========================  ======

A request may carry several credentials, one per realm (a proxy chain may have
challenged it more than once, §22.3), so we pick the set for *our* realm and leave the
others to whom they belong.  Credentials we cannot parse are treated like absent ones: the
peer gets fresh challenges rather than a 400 that would tell an attacker which of its
probes reached the digest check.

Unknown and known users must not be told apart.  :class:`~sipline.sip.auth.DigestServer`
already runs both through the same code; here the rule is that every failure, whatever
its :attr:`AuthResult.reason`, becomes the same response shape built only from the fresh
challenges -- so the bytes of two failures differ in the nonce alone.
"""

from __future__ import annotations

from .auth.digest import find_algorithm
from .auth.header import Challenge, Credentials, parse_credentials
from .auth.server import AuthOutcome, AuthResult, DigestServer, HA1Lookup
from .errors import ParseError, UsageError
from .message.builders import response_to
from .message.model import Request, Response
from .message.uri import SipURI
from .methods import REGISTER

__all__ = [
    "challenge_headers",
    "select_credentials",
    "authenticate",
    "challenge_response",
    "auth_failure_response",
    "identity_matches",
    "ha1_key",
]


def challenge_headers(proxy: bool) -> tuple[str, str, int]:
    """``(challenge header, credentials header, status)`` for a UAS (401) or a proxy (407)."""
    if proxy:
        return "Proxy-Authenticate", "Proxy-Authorization", 407
    return "WWW-Authenticate", "Authorization", 401


def select_credentials(request: Request, realm: str, *, proxy: bool) -> Credentials | None:
    """The Digest credentials of *request* for *realm*, or None.

    Every Authorization (or Proxy-Authorization) field is one set of credentials; fields
    that do not parse, or belong to another realm, are skipped.
    """
    _, header, _ = challenge_headers(proxy)
    for value in request.headers.get_fields(header):
        try:
            credentials = parse_credentials(value, header=header)
        except ParseError:
            continue
        if credentials.realm == realm:
            return credentials
    return None


def ha1_key(credentials: Credentials) -> tuple[str, str, str] | None:
    """``(username, realm, base algorithm)`` to look the HA1 up with before verifying.

    Storage lookups are asynchronous while :meth:`DigestServer.verify` takes a plain
    callable, so a role fetches the one HA1 it needs first.  None when the algorithm is
    unknown (verification will fail anyway) or a hashed username needs resolving first.
    """
    algo = find_algorithm(credentials.algorithm)
    if algo is None or credentials.userhash:
        return None
    return credentials.username, credentials.realm, algo.base


def authenticate(
    request: Request,
    server: DigestServer,
    now: float,
    lookup_ha1: HA1Lookup,
    *,
    proxy: bool,
    binding: str = "",
) -> AuthResult:
    """Verify *request*'s credentials for ``server.realm``.

    The digest-uri must equal the Request-URI as received (§22.4 and RFC 7616 §3.4.6: a
    captured Authorization must not be replayable against another resource); the server
    checks that against :attr:`Request.uri_text`.  Without credentials for our realm the
    result is a FAIL carrying fresh challenges.
    """
    credentials = select_credentials(request, server.realm, proxy=proxy)
    if credentials is None:
        return AuthResult(
            AuthOutcome.FAIL,
            "no credentials for this realm",
            challenges=tuple(server.challenge(now, binding=binding)),
        )
    return server.verify(
        credentials,
        request.method,
        request.uri_text,
        now,
        lookup_ha1,
        request.body,
        binding=binding,
    )


def _challenge_response(
    request: Request, challenges: tuple[Challenge, ...] | list[Challenge], *, proxy: bool, to_tag: str
) -> Response:
    name, _, status = challenge_headers(proxy)
    # One field per challenge: several comma-joined challenges are legal but some deployed
    # UAs only read the first one of a field.
    headers = [(name, str(challenge)) for challenge in challenges]
    return response_to(request, status, to_tag=to_tag, headers=headers)


def challenge_response(
    request: Request,
    server: DigestServer,
    now: float,
    *,
    proxy: bool,
    to_tag: str,
    stale: bool = False,
    binding: str = "",
) -> Response:
    """A 401 with WWW-Authenticate (or 407 with Proxy-Authenticate), one challenge per
    algorithm the server offers, best first (RFC 8760 §2.4)."""
    challenges = server.challenge(now, stale=stale, binding=binding)
    return _challenge_response(request, challenges, proxy=proxy, to_tag=to_tag)


def auth_failure_response(
    request: Request, result: AuthResult, *, proxy: bool, to_tag: str
) -> Response:
    """The 401/407 for a FAIL or STALE :class:`AuthResult`, built from its challenges only.

    The reason phrase is the registered one whatever ``result.reason`` says: that text is
    for logs and would reveal whether the username exists.
    """
    if result.ok:
        raise UsageError("auth_failure_response() needs a failed AuthResult")
    return _challenge_response(request, result.challenges, proxy=proxy, to_tag=to_tag)


def identity_matches(request: Request, username: str, domain: str) -> bool:
    """Whether the authenticated *username*@*domain* may act as the request's identity.

    For REGISTER the identity is the To AOR (§10.3 step 4: a user registers its own AOR);
    for any other request, the From URI (what a proxy checks before routing on a user's
    behalf).  The user part is compared unescaped and case-sensitively, the domain
    case-insensitively.  A malformed header never matches.
    """
    try:
        address = request.to if request.method == REGISTER else request.from_
    except ParseError:
        return False
    uri = address.uri
    if not isinstance(uri, SipURI):
        return False
    return uri.user_unescaped == username and uri.host.lower() == domain.lower()

