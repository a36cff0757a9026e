"""Client-side Digest: answering a 401/407 challenge (RFC 3261 §22.2-§22.3, RFC 8760 §2.4).

:func:`build_credentials` is the pure core: one challenge in, one set of credentials out,
every variable input (cnonce, nonce-count) an argument.  :class:`DigestClient` wraps it with
the little state a user agent keeps between requests: the nonce-count per nonce, the cnonce
it chose for that nonce, and the algorithm preference that decides which of several
challenges to answer (a server offering SHA-256 and MD5 gets SHA-256 from us).

The same code answers WWW-Authenticate (put the result in Authorization) and
Proxy-Authenticate (put it in Proxy-Authorization); the header names are the caller's
business.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence

from sipline.sip.auth.digest import ALGORITHMS, Algorithm, compute_response, find_algorithm
from sipline.sip.auth.digest import ha1 as compute_ha1
from sipline.sip.auth.digest import userhash as compute_userhash
from sipline.sip.auth.header import Challenge, Credentials
from sipline.sip.errors import UsageError

__all__ = [
    "DEFAULT_CLIENT_ALGORITHMS",
    "DigestClient",
    "build_credentials",
    "choose_qop",
]

DEFAULT_CLIENT_ALGORITHMS: tuple[str, ...] = tuple(
    name
    for name in ("SHA-512-256", "SHA-256", "SHA-512-256-sess", "SHA-256-sess", "MD5", "MD5-sess")
    if name.upper() in ALGORITHMS
)
"""Strongest first; plain variants before ``-sess`` at equal strength (wider support)."""


def choose_qop(options: Sequence[str], *, prefer_auth_int: bool = False) -> str | None:
    """The qop to answer with, or None for an RFC 2069 challenge without qop.

    ``auth`` is preferred: a session border controller that rewrites SDP on the way would
    otherwise break every auth-int digest.  ``prefer_auth_int`` flips that when body
    integrity matters more.  Raises :class:`UsageError` if every offered
    option is unknown -- :meth:`DigestClient.select` filters such challenges out first.
    """
    if not options:
        return None
    order = ("auth-int", "auth") if prefer_auth_int else ("auth", "auth-int")
    for qop in order:
        if qop in options:
            return qop
    raise UsageError(f"no supported qop among {tuple(options)}")


def build_credentials(
    challenge: Challenge,
    username: str,
    method: str,
    uri: str,
    *,
    password: str | None = None,
    ha1: str | None = None,
    cnonce: str | None = None,
    nc: int = 1,
    qop: str | None = None,
    body: bytes = b"",
) -> Credentials:
    """Credentials answering ``challenge`` for one request.

    Give exactly one of ``password`` or a precomputed ``ha1`` (for the challenge's base
    algorithm).  ``qop`` None picks automatically via :func:`choose_qop`.  ``cnonce`` is
    required whenever the challenge offers qop or uses a ``-sess`` algorithm.
    """
    algo = find_algorithm(challenge.algorithm)
    if algo is None:
        raise UsageError(f"unsupported digest algorithm {challenge.algorithm!r}")
    if (password is None) == (ha1 is None):
        raise UsageError("give exactly one of password or ha1")
    if qop is None:
        qop = choose_qop(challenge.qop)
    elif qop not in challenge.qop:
        raise UsageError(f"qop {qop!r} not offered by the challenge")
    if cnonce is None and (qop is not None or algo.session):
        raise UsageError("a cnonce is required for this challenge")
    key = ha1 if ha1 is not None else compute_ha1(username, challenge.realm, password or "", algo)
    response = compute_response(
        algo,
        key,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc if qop is not None else None,
        cnonce=cnonce,
        body=body,
    )
    sent_name = username
    if challenge.userhash:
        sent_name = compute_userhash(username, challenge.realm, algo)
    return Credentials(
        username=sent_name,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=challenge.algorithm,
        # RFC 7616 §3.4: no cnonce without qop (RFC 2069 compatibility), except -sess.
        cnonce=cnonce if qop is not None or algo.session else None,
        opaque=challenge.opaque,
        qop=qop,
        nc=nc if qop is not None else None,
        userhash=challenge.userhash,
    )


class DigestClient:
    """One identity answering challenges, with nonce-count state.

    ``ha1`` maps base algorithm names ("MD5", "SHA-256", ...) to precomputed HA1 values for
    devices that must not hold the clear password; challenges for other algorithms are then
    unusable.  ``make_cnonce`` is the injected id source.  ``realm`` restricts the client to
    one protection space; None answers any realm.  At most ``max_nonces`` nonces are
    remembered (an old nonce restarts at nc=1 with a new cnonce, which servers accept).
    """

    __slots__ = (
        "username",
        "_password",
        "_ha1",
        "_make_cnonce",
        "_order",
        "_prefer_auth_int",
        "_realm",
        "_max",
        "_counters",
    )

    def __init__(
        self,
        username: str,
        *,
        make_cnonce: Callable[[], str],
        password: str | None = None,
        ha1: Mapping[str, str] | None = None,
        algorithms: Sequence[str] = DEFAULT_CLIENT_ALGORITHMS,
        prefer_auth_int: bool = False,
        realm: str | None = None,
        max_nonces: int = 16,
    ) -> None:
        if (password is None) == (ha1 is None):
            raise UsageError("give exactly one of password or ha1")
        if max_nonces < 1:
            raise UsageError("max_nonces must be at least 1")
        order: list[Algorithm] = []
        for name in algorithms:
            algo = find_algorithm(name)
            if algo is None:
                raise UsageError(f"unsupported digest algorithm {name!r}")
            order.append(algo)
        self.username = username
        self._password = password
        self._ha1 = {k.upper(): v for k, v in ha1.items()} if ha1 is not None else None
        self._make_cnonce = make_cnonce
        self._order = tuple(order)
        self._prefer_auth_int = prefer_auth_int
        self._realm = realm
        self._max = max_nonces
        self._counters: OrderedDict[tuple[str, str], tuple[int, str]] = OrderedDict()

    def _rank(self, challenge: Challenge) -> int | None:
        algo = find_algorithm(challenge.algorithm)
        if algo is None or algo not in self._order:
            return None
        if self._realm is not None and challenge.realm != self._realm:
            return None
        if challenge.qop and not any(q in ("auth", "auth-int") for q in challenge.qop):
            return None
        if self._ha1 is not None and algo.base.upper() not in self._ha1:
            return None
        return self._order.index(algo)

    def select(self, challenges: Iterable[Challenge]) -> Challenge | None:
        """The challenge to answer: best algorithm in our order, server order on ties."""
        best: tuple[int, Challenge] | None = None
        for challenge in challenges:
            rank = self._rank(challenge)
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, challenge)
        return best[1] if best is not None else None

    def authorize(
        self,
        challenges: Challenge | Iterable[Challenge],
        method: str,
        uri: str,
        body: bytes = b"",
    ) -> Credentials | None:
        """Credentials for the best usable challenge, or None if none is usable.

        Each call for the same nonce advances the nonce-count, so use it once per new
        request (retransmissions reuse the credentials already sent).
        """
        pool = (challenges,) if isinstance(challenges, Challenge) else challenges
        challenge = self.select(pool)
        if challenge is None:
            return None
        algo = find_algorithm(challenge.algorithm)
        assert algo is not None  # select() only returns challenges with a known algorithm
        qop = choose_qop(challenge.qop, prefer_auth_int=self._prefer_auth_int)
        slot = (challenge.realm, challenge.nonce)
        previous = self._counters.pop(slot, None)
        if previous is None:
            nc, cnonce = 1, self._make_cnonce()
        else:
            nc, cnonce = previous[0] + 1, previous[1]
        self._counters[slot] = (nc, cnonce)
        while len(self._counters) > self._max:
            self._counters.popitem(last=False)
        return build_credentials(
            challenge,
            self.username,
            method,
            uri,
            password=self._password,
            ha1=self._ha1[algo.base.upper()] if self._ha1 is not None else None,
            cnonce=cnonce,
            nc=nc,
            qop=qop,
            body=body,
        )

    def should_retry(self, challenges: Iterable[Challenge], previous: Credentials | None) -> bool:
        """Whether to answer a 401/407 automatically rather than give up (or prompt).

        Retry when nothing was sent yet, when the server says the nonce was merely stale
        (RFC 3261 §22.3: no new password needed), or when the challenge is for a realm the
        previous credentials did not cover.  A fresh non-stale challenge for the same realm
        means the credentials were refused: retrying would loop.
        """
        challenge = self.select(challenges)
        if challenge is None:
            return False
        if previous is None or challenge.stale:
            return True
        return challenge.realm != previous.realm
