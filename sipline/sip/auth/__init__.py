"""Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760), sans-I/O.

``header`` parses and writes the four authentication header values, ``digest`` holds the
hash arithmetic, ``nonce`` the stateless HMAC nonces and the nonce-count replay guard,
``server`` the challenge/verify policy and ``client`` the answering side.  Everything works
on header *value strings* and plain arguments, so the message model stays independent.
"""

from __future__ import annotations

from sipline.sip.auth.client import (
    DEFAULT_CLIENT_ALGORITHMS,
    DigestClient,
    build_credentials,
    choose_qop,
)
from sipline.sip.auth.digest import ALGORITHMS, Algorithm, compute_response, find_algorithm, ha1, userhash
from sipline.sip.auth.header import Challenge, Credentials, parse_challenges, parse_credentials
from sipline.sip.auth.nonce import NonceCheck, NonceFactory, NonceStatus, ReplayGuard, ReplayVerdict
from sipline.sip.auth.server import (
    AuthOutcome,
    AuthResult,
    DigestServer,
    HA1Lookup,
    NoQopPolicy,
    UserhashLookup,
)

__all__ = [
    # header values
    "Challenge",
    "Credentials",
    "parse_challenges",
    "parse_credentials",
    # hash arithmetic
    "ALGORITHMS",
    "Algorithm",
    "compute_response",
    "find_algorithm",
    "ha1",
    "userhash",
    # nonces
    "NonceCheck",
    "NonceFactory",
    "NonceStatus",
    "ReplayGuard",
    "ReplayVerdict",
    # server
    "AuthOutcome",
    "AuthResult",
    "DigestServer",
    "HA1Lookup",
    "NoQopPolicy",
    "UserhashLookup",
    # client
    "DEFAULT_CLIENT_ALGORITHMS",
    "DigestClient",
    "build_credentials",
    "choose_qop",
]
