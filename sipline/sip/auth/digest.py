"""The Digest hash computations (RFC 7616 §3.4.1-§3.4.3, RFC 2617 §3.2.2, RFC 8760).

Everything here is a pure function of strings, so the client, the server and the subscriber
store all compute the same values the same way.  The request-digest is built from two
halves: HA1 depends only on who the user is (and, for ``-sess`` algorithms, on the nonce
pair), HA2 only on what the request is.  Keeping them apart is what lets a registrar store
HA1 instead of passwords: :func:`ha1` is the only place a password is ever hashed.

Strings are encoded as UTF-8 before hashing (RFC 7616 ``charset=UTF-8``); for the ASCII
names used in practice that is the same as the Latin-1 of RFC 2617.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sipline.sip.errors import UsageError

__all__ = [
    "Algorithm",
    "ALGORITHMS",
    "find_algorithm",
    "ha1",
    "userhash",
    "compute_response",
]


@dataclass(frozen=True, slots=True)
class Algorithm:
    """A Digest algorithm token and what it means (RFC 7616 §3.3 ``algorithm``).

    ``base`` names the plain variant sharing the same HA1 ("SHA-256" for "SHA-256-sess"):
    subscriber stores key their HA1 by it.  ``strength`` orders algorithms for a client
    choosing among several challenges; bigger is better.
    """

    name: str
    hash_name: str  # hashlib constructor name
    session: bool  # "-sess": HA1 is re-keyed with nonce and cnonce
    strength: int

    @property
    def base(self) -> str:
        return self.name[: -len("-sess")] if self.session else self.name

    def hash(self, data: str | bytes) -> str:
        """Lower-case hex digest ``H(data)``; ``str`` input is UTF-8 encoded."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return hashlib.new(self.hash_name, raw).hexdigest()


def _available(hash_name: str) -> bool:
    # SHA-512/256 comes from OpenSSL and is missing from some minimal builds; offering an
    # algorithm we cannot compute would fail every request that picked it.
    try:
        hashlib.new(hash_name)
    except ValueError:
        return False
    return True


_ALL = (
    Algorithm("MD5", "md5", False, 10),
    Algorithm("MD5-sess", "md5", True, 10),
    Algorithm("SHA-256", "sha256", False, 20),
    Algorithm("SHA-256-sess", "sha256", True, 20),
    Algorithm("SHA-512-256", "sha512_256", False, 30),
    Algorithm("SHA-512-256-sess", "sha512_256", True, 30),
)

ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType(
    {a.name.upper(): a for a in _ALL if _available(a.hash_name)}
)
"""Supported algorithms keyed by upper-cased token; look up with :func:`find_algorithm`."""


def find_algorithm(name: str | None) -> Algorithm | None:
    """The algorithm a token names, case-insensitively; absent (None) means MD5.

    Returns None for an unknown token so callers can decide whether that is a skipped
    challenge (client) or a failed verification (server).
    """
    if name is None:
        return ALGORITHMS["MD5"]
    return ALGORITHMS.get(name.upper())


def _resolve(algorithm: Algorithm | str) -> Algorithm:
    if isinstance(algorithm, Algorithm):
        return algorithm
    found = find_algorithm(algorithm)
    if found is None:
        raise UsageError(f"unsupported digest algorithm {algorithm!r}")
    return found


def ha1(username: str, realm: str, password: str, algorithm: Algorithm | str = "MD5") -> str:
    """``H(username ":" realm ":" password)``: what a subscriber store keeps.

    For ``-sess`` algorithms this is the stored (pre-session) value; the session key is
    derived per request inside :func:`compute_response`.
    """
    return _resolve(algorithm).hash(f"{username}:{realm}:{password}")


def userhash(username: str, realm: str, algorithm: Algorithm | str = "MD5") -> str:
    """RFC 7616 §3.4.4 hashed username ``H(username ":" realm)``."""
    return _resolve(algorithm).hash(f"{username}:{realm}")


def compute_response(
    algorithm: Algorithm | str,
    ha1: str,
    *,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: int | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest for one request (RFC 7616 §3.4.1, RFC 2069 when ``qop`` is None).

    ``ha1`` is the stored HA1 (see :func:`ha1`); ``uri`` is the digest-uri exactly as it
    appears in the credentials; ``body`` matters only for ``qop=auth-int``.
    """
    algo = _resolve(algorithm)
    key = ha1.lower()
    if algo.session:
        if cnonce is None:
            raise UsageError(f"{algo.name} needs a cnonce")
        key = algo.hash(f"{key}:{nonce}:{cnonce}")
    if qop is None:
        ha2 = algo.hash(f"{method}:{uri}")
        return algo.hash(f"{key}:{nonce}:{ha2}")
    qop = qop.lower()
    if qop == "auth":
        ha2 = algo.hash(f"{method}:{uri}")
    elif qop == "auth-int":
        ha2 = algo.hash(f"{method}:{uri}:{algo.hash(body)}")
    else:
        raise UsageError(f"unsupported qop {qop!r}")
    if nc is None or cnonce is None:
        raise UsageError(f"qop={qop} needs nc and cnonce")
    return algo.hash(f"{key}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}")
