"""DigestServer: challenges, verification outcomes and their reasons."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from sipline.sip.auth.client import build_credentials
from sipline.sip.auth.digest import ha1, userhash
from sipline.sip.auth.header import Challenge, Credentials, parse_credentials
from sipline.sip.auth.nonce import NonceFactory, ReplayGuard
from sipline.sip.auth.server import AuthOutcome, AuthResult, DigestServer
from sipline.sip.errors import UsageError

REALM = "atlanta.example.com"
URI = "sip:atlanta.example.com"
PASSWORDS = {"alice": "wonderland"}


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    password = PASSWORDS.get(username)
    return ha1(username, realm, password, algorithm) if password is not None else None


def make_server(**kwargs: object) -> DigestServer:
    nonces = NonceFactory(b"k" * 32, 60.0)
    return DigestServer(REALM, nonces, **kwargs)  # type: ignore[arg-type]


def answer(challenge: Challenge, *, user: str = "alice", password: str = "wonderland", **kwargs: object) -> Credentials:
    defaults: dict[str, object] = dict(cnonce="c0ffee", nc=1, body=b"")
    defaults.update(kwargs)
    return build_credentials(challenge, user, "REGISTER", URI, password=password, **defaults)  # type: ignore[arg-type]


def test_challenges_one_per_algorithm_in_preference_order() -> None:
    server = make_server(algorithms=["SHA-256", "md5", "MD5"], opaque="op", domain=["sip:a"], userhash=True)
    challenges = server.challenge(10.0)
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert len({c.nonce for c in challenges}) == 1
    first = challenges[0]
    assert (first.realm, first.opaque, first.qop, first.domain, first.userhash, first.stale) == (
        REALM, "op", ("auth",), ("sip:a",), True, False,
    )
    assert all(c.stale for c in server.challenge(10.0, stale=True))


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5", "SHA-256-sess", "MD5-sess"])
@pytest.mark.parametrize("qop", ["auth", "auth-int"])
def test_round_trip_ok(algorithm: str, qop: str) -> None:
    server = make_server(algorithms=[algorithm], qop=["auth", "auth-int"])
    [challenge] = server.challenge(0.0)
    cred = answer(challenge, qop=qop, body=b"v=0\r\n")
    wire = parse_credentials(str(cred))
    result = server.verify(wire, "REGISTER", URI, 1.0, lookup, b"v=0\r\n")
    assert result == AuthResult(AuthOutcome.OK, "authenticated", username="alice")
    assert result.ok


def test_auth_int_body_tampering_fails() -> None:
    server = make_server(qop=["auth-int"])
    challenge = server.challenge(0.0)[0]
    cred = answer(challenge, body=b"original")
    assert server.verify(cred, "REGISTER", URI, 1.0, lookup, b"tampered").reason == "wrong response digest"


def _fail_reason(result: AuthResult) -> str:
    assert result.outcome is AuthOutcome.FAIL
    assert result.challenges and not any(c.stale for c in result.challenges)
    return result.reason


def test_unknown_user_and_wrong_password_look_the_same() -> None:
    server = make_server()
    challenge = server.challenge(0.0)[0]
    unknown = server.verify(answer(challenge, user="mallory"), "REGISTER", URI, 1.0, lookup)
    wrong = server.verify(answer(challenge, password="guess"), "REGISTER", URI, 1.0, lookup)
    assert _fail_reason(unknown) == "unknown user"
    assert _fail_reason(wrong) == "wrong response digest"

    def strip(result: AuthResult) -> list[Challenge]:
        return [dataclasses.replace(c, nonce="") for c in result.challenges]

    assert strip(unknown) == strip(wrong)
    assert unknown.username is None and wrong.username is None


@pytest.mark.parametrize(
    ("mutate", "method", "uri", "reason"),
    [
        (dict(realm="evil.example.com"), "REGISTER", URI, "realm 'evil.example.com' is not"),
        (dict(algorithm="SHA-512-256"), "REGISTER", URI, "not offered"),
        (dict(algorithm="SHA-1"), "REGISTER", URI, "not offered"),
        ({}, "REGISTER", "sip:other.example.com", "does not match Request-URI"),
        (dict(uri="sip:other.example.com"), "REGISTER", URI, "does not match Request-URI"),
        (dict(qop="auth-int"), "REGISTER", URI, "qop 'auth-int' not offered"),
        (dict(nc=None), "REGISTER", URI, "without nc or cnonce"),
        (dict(opaque="forged"), "REGISTER", URI, "opaque does not match"),
        (dict(nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"), "REGISTER", URI, "nonce not issued by us"),
        (dict(response="0" * 64), "REGISTER", URI, "wrong response digest"),
        (dict(response="\u00e9"), "REGISTER", URI, "wrong response digest"),
        ({}, "INVITE", URI, "wrong response digest"),
        (dict(userhash=True), "REGISTER", URI, "userhash not enabled"),
    ],
)
def test_failures_table(mutate: dict[str, object], method: str, uri: str, reason: str) -> None:
    server = make_server()
    cred = dataclasses.replace(answer(server.challenge(0.0)[0]), **mutate)  # type: ignore[arg-type]
    assert reason in _fail_reason(server.verify(cred, method, uri, 1.0, lookup))


def test_stale_only_when_digest_right() -> None:
    server = make_server()
    challenge = server.challenge(0.0)[0]
    late = 61.0
    stale = server.verify(answer(challenge), "REGISTER", URI, late, lookup)
    assert stale.outcome is AuthOutcome.STALE and stale.reason == "nonce expired"
    assert stale.challenges and all(c.stale for c in stale.challenges)
    assert stale.challenges[0].nonce != challenge.nonce
    wrong = server.verify(answer(challenge, password="guess"), "REGISTER", URI, late, lookup)
    assert _fail_reason(wrong) == "wrong response digest"


def test_replayed_nonce_count_is_refused() -> None:
    server = make_server()
    challenge = server.challenge(0.0)[0]
    first = answer(challenge, nc=1)
    assert server.verify(first, "REGISTER", URI, 1.0, lookup).ok
    assert _fail_reason(server.verify(first, "REGISTER", URI, 2.0, lookup)) == "replayed nonce-count"
    assert server.verify(answer(challenge, nc=2), "REGISTER", URI, 3.0, lookup).ok


def test_forgotten_nonce_is_stale() -> None:
    guard = ReplayGuard(1)
    server = make_server(replay=guard)
    old = server.challenge(0.0)[0]
    new = server.challenge(1.0)[0]
    assert server.verify(answer(old), "REGISTER", URI, 2.0, lookup).ok
    assert server.verify(answer(new), "REGISTER", URI, 2.0, lookup).ok  # evicts old
    result = server.verify(answer(old, nc=2), "REGISTER", URI, 3.0, lookup)
    assert result.outcome is AuthOutcome.STALE and result.reason == "nonce no longer tracked"


@pytest.mark.parametrize(
    ("policy", "second"),
    [("once", AuthOutcome.FAIL), ("lifetime", AuthOutcome.OK)],
)
def test_no_qop_policies(policy: str, second: AuthOutcome) -> None:
    server = make_server(qop=[], no_qop=policy, algorithms=["MD5"])
    [challenge] = server.challenge(0.0)
    assert challenge.qop == ()
    cred = answer(challenge, cnonce=None)
    assert cred.qop is None and cred.nc is None
    assert server.verify(cred, "REGISTER", URI, 1.0, lookup).ok
    assert server.verify(cred, "REGISTER", URI, 2.0, lookup).outcome is second


def test_no_qop_refused_and_sess_without_cnonce() -> None:
    strict = make_server(no_qop="refuse")
    challenge = strict.challenge(0.0)[0]
    bare = dataclasses.replace(answer(challenge), qop=None, nc=None, cnonce=None)
    assert _fail_reason(strict.verify(bare, "REGISTER", URI, 1.0, lookup)) == "credentials without qop refused"
    sess = make_server(algorithms=["MD5-sess"])
    sess_challenge = sess.challenge(0.0)[0]
    bare = dataclasses.replace(answer(sess_challenge), qop=None, nc=None, cnonce=None)
    assert _fail_reason(sess.verify(bare, "REGISTER", URI, 1.0, lookup)) == "MD5-sess without cnonce"


def test_binding_must_match() -> None:
    server = make_server()
    challenge = server.challenge(0.0, binding="udp:192.0.2.1")[0]
    cred = answer(challenge)
    assert not server.verify(cred, "REGISTER", URI, 1.0, lookup, binding="udp:192.0.2.9").ok
    assert server.verify(cred, "REGISTER", URI, 1.0, lookup, binding="udp:192.0.2.1").ok


def test_userhash_round_trip() -> None:
    server = make_server(userhash=True)
    challenge = server.challenge(0.0)[0]
    cred = answer(challenge)
    assert cred.userhash and cred.username == userhash("alice", REALM, "SHA-256")
    table = {userhash(name, REALM, "SHA-256"): name for name in PASSWORDS}

    def resolve(hashed: str, realm: str, algorithm: str) -> str | None:
        return table.get(hashed)

    result = server.verify(cred, "REGISTER", URI, 1.0, lookup, lookup_userhash=resolve)
    assert result.ok and result.username == "alice"
    assert _fail_reason(server.verify(cred, "REGISTER", URI, 1.0, lookup)) == "userhash not enabled"
    unknown = dataclasses.replace(cred, username="f" * 64, nc=2)
    assert _fail_reason(server.verify(unknown, "REGISTER", URI, 1.0, lookup, lookup_userhash=resolve)) == "unknown user"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(algorithms=["SHA-1"]),
        dict(algorithms=[]),
        dict(qop=["auth-conf"]),
        dict(no_qop="sometimes"),
        dict(qop=[], no_qop="refuse"),
    ],
)
def test_server_misuse(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        make_server(**kwargs)


def test_many_requests_on_one_nonce() -> None:
    server = make_server()
    challenge = server.challenge(0.0)[0]
    counter = itertools.count(1)
    for _ in range(100):
        assert server.verify(answer(challenge, nc=next(counter)), "REGISTER", URI, 5.0, lookup).ok
