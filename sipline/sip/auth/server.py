"""Server-side Digest policy: which challenges to send and whether credentials pass.

A registrar, proxy or B2BUA asks two questions of this module.  *What do I put in my
401/407?*  -- :meth:`DigestServer.challenge` returns one challenge per offered algorithm in
preference order, which is how RFC 8760 §2.4 lets SHA-256 clients and MD5-only clients both
succeed against one response.  *Do these credentials authenticate this request?* --
:meth:`DigestServer.verify` returns an :class:`AuthResult` carrying, when the answer is no,
the challenges to send back.

Security properties worth preserving when editing:

* An unknown user and a wrong password travel the same code path: the digest is computed
  against a decoy HA1 and compared with :func:`hmac.compare_digest`, and the peer gets the
  same fresh challenges.  Only :attr:`AuthResult.reason`, meant for logs, tells them apart.
* ``stale=true`` is only ever sent after the digest itself checked out (RFC 7616 §3.3), so a
  client that does not know the password cannot use staleness to probe anything.
* The core never looks up users itself; the caller passes ``lookup_ha1`` so the storage
  layer (and its I/O) stays outside.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from sipline.sip.auth.digest import Algorithm, compute_response, find_algorithm
from sipline.sip.auth.header import Challenge, Credentials
from sipline.sip.auth.nonce import NonceFactory, NonceStatus, ReplayGuard, ReplayVerdict
from sipline.sip.errors import UsageError

__all__ = [
    "AuthOutcome",
    "AuthResult",
    "DigestServer",
    "HA1Lookup",
    "NoQopPolicy",
    "UserhashLookup",
]

HA1Lookup = Callable[[str, str, str], str | None]
"""``(username, realm, base_algorithm) -> HA1 hex or None``; base_algorithm is e.g. "SHA-256"
for both SHA-256 and SHA-256-sess, since they share one stored HA1."""

UserhashLookup = Callable[[str, str, str], str | None]
"""``(userhash, realm, base_algorithm) -> username or None`` for RFC 7616 hashed usernames."""

NoQopPolicy = Literal["refuse", "once", "lifetime"]
"""Credentials without qop (RFC 2069 clients) carry no nonce-count: refuse them, accept each
nonce once, or accept a nonce any number of times within its lifetime."""

_QOP_SUPPORTED = ("auth", "auth-int")
_NO_QOP_POLICIES = ("refuse", "once", "lifetime")


class AuthOutcome(enum.Enum):
    OK = "ok"
    STALE = "stale"  # right password, old nonce: resend challenges with stale=true
    FAIL = "fail"  # send the challenges again (401/407)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Verdict on one set of credentials.

    ``challenges`` is empty for OK and otherwise holds what to put in the 401/407.
    ``reason`` is for logs only: sending it to the peer would reveal which usernames exist.
    ``username`` is the authenticated identity on OK (resolved when a userhash was used).
    """

    outcome: AuthOutcome
    reason: str
    username: str | None = None
    challenges: tuple[Challenge, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK


class DigestServer:
    """Challenge/verify policy for one realm.

    ``algorithms`` is the preference order of the challenges; ``qop`` the options offered
    (empty means RFC 2069 style challenges).  ``replay`` bounds nonce-count memory; one guard
    may be shared by several servers using distinct nonce factories or realms.
    """

    __slots__ = (
        "realm",
        "_nonces",
        "_algorithms",
        "_qop",
        "_opaque",
        "_replay",
        "_no_qop",
        "_domain",
        "_userhash",
    )

    def __init__(
        self,
        realm: str,
        nonces: NonceFactory,
        *,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        qop: Sequence[str] = ("auth",),
        opaque: str | None = None,
        replay: ReplayGuard | None = None,
        no_qop: NoQopPolicy = "once",
        domain: Sequence[str] = (),
        userhash: bool = False,
    ) -> None:
        resolved: list[Algorithm] = []
        for name in algorithms:
            algo = find_algorithm(name)
            if algo is None:
                raise UsageError(f"unsupported digest algorithm {name!r}")
            if algo not in resolved:
                resolved.append(algo)
        if not resolved:
            raise UsageError("DigestServer needs at least one algorithm")
        qops = tuple(dict.fromkeys(q.lower() for q in qop))
        if any(q not in _QOP_SUPPORTED for q in qops):
            raise UsageError(f"qop must be among {_QOP_SUPPORTED}, got {tuple(qop)}")
        if no_qop not in _NO_QOP_POLICIES:
            raise UsageError(f"no_qop must be one of {_NO_QOP_POLICIES}")
        if not qops and no_qop == "refuse":
            raise UsageError("a server offering no qop cannot refuse credentials without qop")
        self.realm = realm
        self._nonces = nonces
        self._algorithms = tuple(resolved)
        self._qop = qops
        self._opaque = opaque
        self._replay = replay if replay is not None else ReplayGuard()
        self._no_qop: NoQopPolicy = no_qop
        self._domain = tuple(domain)
        self._userhash = userhash

    def challenge(self, now: float, *, stale: bool = False, binding: str = "") -> list[Challenge]:
        """One challenge per algorithm, best first, all sharing one fresh nonce.

        ``binding`` ties the nonce to something about the client (e.g. ``"udp:192.0.2.1"``);
        the same value must be passed to :meth:`verify`.
        """
        nonce = self._nonces.issue(now, realm=self.realm, binding=binding)
        return [
            Challenge(
                realm=self.realm,
                nonce=nonce,
                opaque=self._opaque,
                algorithm=algo.name,
                qop=self._qop,
                stale=stale,
                domain=self._domain,
                userhash=self._userhash,
            )
            for algo in self._algorithms
        ]

    def verify(
        self,
        credentials: Credentials,
        method: str,
        uri: str,
        now: float,
        lookup_ha1: HA1Lookup,
        body: bytes = b"",
        *,
        binding: str = "",
        lookup_userhash: UserhashLookup | None = None,
    ) -> AuthResult:
        """Decide whether ``credentials`` authenticate a request.

        ``method`` and ``uri`` are the request's method and Request-URI as received (a proxy
        passes the URI it received, before any rewriting); ``body`` is needed for
        ``qop=auth-int``.
        """

        def fail(reason: str) -> AuthResult:
            return AuthResult(
                AuthOutcome.FAIL, reason, challenges=tuple(self.challenge(now, binding=binding))
            )

        if credentials.realm != self.realm:
            return fail(f"realm {credentials.realm!r} is not {self.realm!r}")
        algo = find_algorithm(credentials.algorithm)
        if algo is None or algo not in self._algorithms:
            return fail(f"algorithm {credentials.algorithm!r} not offered")
        if credentials.uri != uri:
            return fail(f"digest-uri {credentials.uri!r} does not match Request-URI {uri!r}")
        qop = credentials.qop
        if qop is None:
            if self._no_qop == "refuse":
                return fail("credentials without qop refused")
            if algo.session and credentials.cnonce is None:
                return fail(f"{algo.name} without cnonce")
        elif qop not in self._qop:
            return fail(f"qop {qop!r} not offered")
        elif credentials.nc is None or credentials.cnonce is None:
            return fail(f"qop={qop} without nc or cnonce")
        if credentials.opaque != self._opaque:
            return fail("opaque does not match")
        check = self._nonces.verify(credentials.nonce, now, realm=self.realm, binding=binding)
        if check.status is NonceStatus.INVALID or check.issued_at is None:
            return fail("nonce not issued by us")

        username: str | None = credentials.username
        if credentials.userhash:
            if not self._userhash or lookup_userhash is None:
                return fail("userhash not enabled")
            username = lookup_userhash(credentials.username, self.realm, algo.base)
        stored = lookup_ha1(username, self.realm, algo.base) if username is not None else None
        # Unknown users are checked against a decoy so both failures cost the same work.
        key = stored if stored is not None else algo.hash(f"sipline decoy:{self.realm}")
        expected = compute_response(
            algo,
            key,
            nonce=credentials.nonce,
            method=method,
            uri=credentials.uri,
            qop=qop,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
            body=body,
        )
        matches = hmac.compare_digest(
            expected.encode("ascii"), credentials.response.lower().encode("utf-8")
        )
        if stored is None:
            return fail("unknown user")
        if not matches:
            return fail("wrong response digest")
        if check.status is NonceStatus.STALE:
            return AuthResult(
                AuthOutcome.STALE,
                "nonce expired",
                challenges=tuple(self.challenge(now, stale=True, binding=binding)),
            )
        verdict = self._replay_verdict(credentials, check.issued_at)
        if verdict is ReplayVerdict.REPLAYED:
            return fail("replayed nonce-count")
        if verdict is ReplayVerdict.FORGOTTEN:
            return AuthResult(
                AuthOutcome.STALE,
                "nonce no longer tracked",
                challenges=tuple(self.challenge(now, stale=True, binding=binding)),
            )
        return AuthResult(AuthOutcome.OK, "authenticated", username=username)

    def _replay_verdict(self, credentials: Credentials, issued_at: float) -> ReplayVerdict:
        if credentials.qop is not None and credentials.nc is not None:
            return self._replay.check(credentials.nonce, issued_at, credentials.nc)
        if self._no_qop == "once":
            # Without a nonce-count the only replay defence is to burn the nonce.
            return self._replay.check(credentials.nonce, issued_at, 1)
        return ReplayVerdict.FRESH
