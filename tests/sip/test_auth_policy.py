"""auth_policy: 401/407 shapes, credential selection, identity checks, no user enumeration."""

from __future__ import annotations

import re

import pytest

from sipline.sip.auth import AuthOutcome, AuthResult, DigestServer, NonceFactory, build_credentials, ha1
from sipline.sip.auth.header import Challenge, parse_challenges
from sipline.sip.auth_policy import (
    auth_failure_response,
    authenticate,
    challenge_headers,
    challenge_response,
    ha1_key,
    identity_matches,
    select_credentials,
)
from sipline.sip.errors import UsageError
from sipline.sip.ids import CountingIdSource
from sipline.sip.message import Request, parse_message

REALM = "example.com"
RURI = "sip:example.com"
NOW = 50.0
PASSWORDS = {"alice": "secret"}


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    password = PASSWORDS.get(username)
    return ha1(username, realm, password, algorithm) if password is not None else None


def make_server(salt: str = "n") -> DigestServer:
    ids = CountingIdSource(salt)
    return DigestServer(REALM, NonceFactory(b"s" * 32, 30.0, make_salt=ids.token))


def request(*headers: str, method: str = "REGISTER", ruri: str = RURI,
            to: str = "<sip:alice@example.com>", from_: str = "<sip:alice@example.com>;tag=f") -> Request:
    text = "\r\n".join([
        f"{method} {ruri} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx",
        "Max-Forwards: 70",
        f"To: {to}",
        f"From: {from_}",
        "Call-ID: a@b",
        f"CSeq: 1 {method}",
        *headers,
        "Content-Length: 0",
        "", "",
    ])
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


def answer(challenge: Challenge, user: str = "alice", password: str = "secret", uri: str = RURI,
           method: str = "REGISTER") -> str:
    return str(build_credentials(challenge, user, method, uri, password=password, cnonce="cn", nc=1))


def nonce_of(text: str) -> str:
    match = re.search(r'nonce="([^"]+)"', text)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize(("proxy", "status", "reason", "header"), [
    (False, 401, "Unauthorized", "WWW-Authenticate"),
    (True, 407, "Proxy Authentication Required", "Proxy-Authenticate"),
])
def test_challenge_response_shape(proxy: bool, status: int, reason: str, header: str) -> None:
    server = make_server()
    response = challenge_response(request(), server, NOW, proxy=proxy, to_tag="t1")
    nonce = nonce_of(response.headers.get(header) or "")
    assert bytes(response).decode() == "\r\n".join([
        f"SIP/2.0 {status} {reason}",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx",
        "To: <sip:alice@example.com>;tag=t1",
        "From: <sip:alice@example.com>;tag=f",
        "Call-ID: a@b",
        "CSeq: 1 REGISTER",
        f'{header}: Digest realm="example.com", nonce="{nonce}", algorithm=SHA-256, qop="auth"',
        f'{header}: Digest realm="example.com", nonce="{nonce}", algorithm=MD5, qop="auth"',
        "Content-Length: 0",
        "", "",
    ])
    assert challenge_headers(proxy)[2] == status


def test_stale_challenge_flag() -> None:
    response = challenge_response(request(), make_server(), NOW, proxy=False, to_tag="t", stale=True)
    assert all("stale=true" in v for v in response.headers.get_fields("WWW-Authenticate"))


def full_flow(proxy: bool) -> None:
    server = make_server()
    _, cred_header, _ = challenge_headers(proxy)
    first = authenticate(request(), server, NOW, lookup, proxy=proxy)
    assert first.outcome is AuthOutcome.FAIL and first.challenges
    creds = answer(first.challenges[0])
    ok = authenticate(request(f"{cred_header}: {creds}"), server, NOW + 1, lookup, proxy=proxy)
    assert ok.ok and ok.username == "alice"
    # The other header name is ignored: a proxy does not read Authorization and vice versa.
    _, other, _ = challenge_headers(not proxy)
    assert not authenticate(request(f"{other}: {creds}"), make_server(), NOW, lookup, proxy=proxy).ok


@pytest.mark.parametrize("proxy", [False, True])
def test_authenticate_round_trip(proxy: bool) -> None:
    full_flow(proxy)


def test_picks_our_realm_among_several_and_skips_garbage() -> None:
    server = make_server()
    [challenge, _] = server.challenge(NOW)
    foreign = Challenge(realm="elsewhere.net", nonce="abc", qop=("auth",), algorithm="MD5")
    req = request(
        "Authorization: Basic Zm9vOmJhcg==",
        "Authorization: Digest username=broken",
        f"Authorization: {answer(foreign)}",
        f"Authorization: {answer(challenge)}",
    )
    chosen = select_credentials(req, REALM, proxy=False)
    assert chosen is not None and chosen.realm == REALM
    assert authenticate(req, server, NOW, lookup, proxy=False).ok
    assert select_credentials(req, "nowhere", proxy=False) is None


def test_digest_uri_must_match_request_uri() -> None:
    server = make_server()
    [challenge, _] = server.challenge(NOW)
    creds = answer(challenge, uri="sip:other.example.com")
    result = authenticate(request(f"Authorization: {creds}"), server, NOW, lookup, proxy=False)
    assert result.outcome is AuthOutcome.FAIL and "digest-uri" in result.reason


def test_stale_nonce_gives_stale_401() -> None:
    server = make_server()
    [challenge, _] = server.challenge(NOW)
    result = authenticate(request(f"Authorization: {answer(challenge)}"), server, NOW + 31, lookup,
                          proxy=False)
    assert result.outcome is AuthOutcome.STALE
    response = auth_failure_response(request(), result, proxy=False, to_tag="t")
    assert response.status == 401
    assert all(c.stale for v in response.headers.get_fields("WWW-Authenticate") for c in parse_challenges(v))


def test_unknown_and_known_users_are_indistinguishable() -> None:
    # Two servers with the same secret and salt sequence: same nonce position, so any
    # difference other than the nonce would be a leak.  (Salt prefixes differ to prove
    # the nonce is the *only* difference.)
    outcomes = []
    for user, salt in (("alice", "a"), ("mallory", "b")):
        server = make_server(salt)
        [challenge, _] = server.challenge(NOW)
        creds = answer(challenge, user=user, password="wrong")
        req = request(f"Authorization: {creds}")
        result = authenticate(req, server, NOW, lookup, proxy=False)
        assert result.outcome is AuthOutcome.FAIL
        response = auth_failure_response(request(), result, proxy=False, to_tag="t")
        text = bytes(response).decode()
        outcomes.append(text.replace(nonce_of(text), "NONCE"))
    assert outcomes[0] == outcomes[1]


def test_auth_failure_response_refuses_success() -> None:
    with pytest.raises(UsageError):
        auth_failure_response(request(), AuthResult(AuthOutcome.OK, "ok", "alice"), proxy=False, to_tag="t")


def test_ha1_key() -> None:
    server = make_server()
    sha, md5 = server.challenge(NOW)
    creds = select_credentials(request(f"Authorization: {answer(sha)}"), REALM, proxy=False)
    assert creds is not None and ha1_key(creds) == ("alice", REALM, "SHA-256")
    odd = Challenge(realm=REALM, nonce="n", algorithm="MD5-sess", qop=("auth",))
    creds = select_credentials(request(f"Authorization: {answer(odd)}"), REALM, proxy=False)
    assert creds is not None and ha1_key(creds) == ("alice", REALM, "MD5")
    unknown = creds.__class__(username="a", realm=REALM, nonce="n", uri=RURI, response="0", algorithm="X")
    assert ha1_key(unknown) is None


@pytest.mark.parametrize(("method", "to", "from_", "user", "domain", "ok"), [
    ("REGISTER", "<sip:alice@example.com>", "<sip:x@y>;tag=1", "alice", "example.com", True),
    ("REGISTER", "<sip:alice@EXAMPLE.com>", "<sip:x@y>;tag=1", "alice", "example.COM", True),
    ("REGISTER", "<sip:al%69ce@example.com>", "<sip:x@y>;tag=1", "alice", "example.com", True),
    ("REGISTER", "<sip:Alice@example.com>", "<sip:x@y>;tag=1", "alice", "example.com", False),
    ("REGISTER", "<sip:bob@example.com>", "<sip:alice@example.com>;tag=1", "alice", "example.com", False),
    ("REGISTER", "<sip:alice@other.com>", "<sip:x@y>;tag=1", "alice", "example.com", False),
    ("REGISTER", "<tel:+1555>", "<sip:x@y>;tag=1", "alice", "example.com", False),
    ("INVITE", "<sip:bob@example.com>", "<sip:alice@example.com>;tag=1", "alice", "example.com", True),
    ("INVITE", "<sip:alice@example.com>", "<sip:bob@example.com>;tag=1", "alice", "example.com", False),
])
def test_identity_matches(method: str, to: str, from_: str, user: str, domain: str, ok: bool) -> None:
    assert identity_matches(request(method=method, to=to, from_=from_), user, domain) is ok


def test_identity_with_malformed_header_never_matches() -> None:
    req = request()
    req.headers.set("To", "<sip:alice@example.com")
    assert not identity_matches(req, "alice", REALM)
