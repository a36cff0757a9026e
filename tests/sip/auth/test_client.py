"""DigestClient and build_credentials: choosing, counting, retrying."""

from __future__ import annotations

import itertools

import pytest

from sipline.sip.auth.client import DEFAULT_CLIENT_ALGORITHMS, DigestClient, build_credentials, choose_qop
from sipline.sip.auth.digest import ALGORITHMS, ha1
from sipline.sip.auth.header import Challenge, parse_challenges
from sipline.sip.auth.nonce import NonceFactory
from sipline.sip.auth.server import DigestServer
from sipline.sip.errors import UsageError

REALM = "biloxi.example.com"
URI = "sip:bob@biloxi.example.com"


def cnonces() -> DigestClient:
    counter = itertools.count()
    return DigestClient("bob", password="zanzibar", make_cnonce=lambda: f"cn{next(counter)}")


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    return ha1("bob", realm, "zanzibar", algorithm) if username == "bob" else None


def test_rfc7616_example_via_build_credentials() -> None:
    challenge = Challenge(
        realm="http-auth@example.org",
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
        algorithm="SHA-256",
        qop=("auth", "auth-int"),
    )
    cred = build_credentials(
        challenge,
        "Mufasa",
        "GET",
        "/dir/index.html",
        password="Circle of Life",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert cred.response == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    assert (cred.qop, cred.nc, cred.opaque, cred.algorithm) == ("auth", 1, challenge.opaque, "SHA-256")


def test_rfc2617_example_with_precomputed_ha1() -> None:
    challenge = Challenge(
        realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop=("auth",)
    )
    key = ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    cred = build_credentials(challenge, "Mufasa", "GET", "/dir/index.html", ha1=key, cnonce="0a4f113b")
    assert cred.response == "6629fae49393a05397450978507c4ef1"
    assert cred.algorithm is None


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["MD5", "SHA-256"], "SHA-256"),
        (["SHA-256", "MD5"], "SHA-256"),
        (["MD5-sess", "MD5"], "MD5"),
        (["SHA-1", "MD5"], "MD5"),
        ([None], None),
    ],
)
def test_select_strongest(offered: list[str | None], chosen: str | None) -> None:
    challenges = [Challenge(realm=REALM, nonce="n", algorithm=a) for a in offered]
    picked = cnonces().select(challenges)
    assert picked is not None and picked.algorithm == chosen


@pytest.mark.skipif("SHA-512-256" not in ALGORITHMS, reason="OpenSSL without SHA-512/256")
def test_select_prefers_sha512_256() -> None:
    challenges = [Challenge(realm=REALM, nonce="n", algorithm=a) for a in ("SHA-256", "SHA-512-256")]
    assert cnonces().select(challenges) == challenges[1]
    assert DEFAULT_CLIENT_ALGORITHMS[0] == "SHA-512-256"


@pytest.mark.parametrize(
    "challenge",
    [
        Challenge(realm=REALM, nonce="n", algorithm="SHA-1"),
        Challenge(realm=REALM, nonce="n", qop=("auth-conf",)),
        Challenge(realm="elsewhere", nonce="n"),
    ],
)
def test_unusable_challenges(challenge: Challenge) -> None:
    counter = itertools.count()
    client = DigestClient("bob", password="pw", make_cnonce=lambda: str(next(counter)), realm=REALM)
    assert client.select([challenge]) is None
    assert client.authorize(challenge, "INVITE", URI) is None
    assert not client.should_retry([challenge], None)


def test_ha1_only_client_skips_algorithms_it_has_no_hash_for() -> None:
    client = DigestClient(
        "bob", ha1={"md5": ha1("bob", REALM, "zanzibar")}, make_cnonce=lambda: "c", algorithms=["SHA-256", "MD5"]
    )
    challenges = [Challenge(realm=REALM, nonce="n", algorithm=a, qop=("auth",)) for a in ("SHA-256", "MD5")]
    cred = client.authorize(challenges, "INVITE", URI)
    assert cred is not None and cred.algorithm == "MD5"


def test_nonce_count_advances_and_cnonce_is_kept() -> None:
    client = cnonces()
    challenge = Challenge(realm=REALM, nonce="n1", qop=("auth",))
    first = client.authorize(challenge, "INVITE", URI)
    second = client.authorize([challenge], "BYE", URI)
    other = client.authorize(Challenge(realm=REALM, nonce="n2", qop=("auth",)), "BYE", URI)
    assert first is not None and second is not None and other is not None
    assert (first.nc, second.nc, other.nc) == (1, 2, 1)
    assert first.cnonce == second.cnonce == "cn0" and other.cnonce == "cn1"


def test_counter_memory_is_bounded() -> None:
    counter = itertools.count()
    client = DigestClient("bob", password="pw", make_cnonce=lambda: str(next(counter)), max_nonces=1)
    a = Challenge(realm=REALM, nonce="a", qop=("auth",))
    b = Challenge(realm=REALM, nonce="b", qop=("auth",))
    client.authorize(a, "INVITE", URI)
    client.authorize(b, "INVITE", URI)
    again = client.authorize(a, "INVITE", URI)
    assert again is not None and again.nc == 1 and again.cnonce == "2"


@pytest.mark.parametrize(
    ("options", "prefer_int", "expected"),
    [
        ((), False, None),
        (("auth", "auth-int"), False, "auth"),
        (("auth", "auth-int"), True, "auth-int"),
        (("auth-int",), False, "auth-int"),
        (("auth",), True, "auth"),
        (("x-token", "auth"), False, "auth"),
    ],
)
def test_choose_qop(options: tuple[str, ...], prefer_int: bool, expected: str | None) -> None:
    assert choose_qop(options, prefer_auth_int=prefer_int) == expected


def test_choose_qop_unknown_only() -> None:
    with pytest.raises(UsageError):
        choose_qop(("auth-conf",))


def test_prefer_auth_int_round_trip_with_server() -> None:
    server = DigestServer(REALM, NonceFactory(b"s" * 16, 30.0), qop=["auth", "auth-int"])
    client = DigestClient("bob", password="zanzibar", make_cnonce=lambda: "c", prefer_auth_int=True)
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    cred = client.authorize(server.challenge(0.0), "INVITE", URI, body)
    assert cred is not None and cred.qop == "auth-int"
    assert server.verify(cred, "INVITE", URI, 1.0, lookup, body).ok


def test_stale_flow_end_to_end() -> None:
    """401 -> credentials -> OK; later stale -> silent retry with new nonce -> OK."""
    server = DigestServer(REALM, NonceFactory(b"s" * 16, 30.0), algorithms=["SHA-256", "MD5"])
    client = cnonces()
    wire = ", ".join(str(c) for c in server.challenge(0.0))
    challenges = parse_challenges(wire)
    assert client.should_retry(challenges, None)
    cred = client.authorize(challenges, "REGISTER", URI)
    assert cred is not None and cred.algorithm == "SHA-256"
    assert server.verify(cred, "REGISTER", URI, 1.0, lookup).ok
    # Much later, the cached nonce is stale: the server answers stale=true.
    again = client.authorize(challenges, "REGISTER", URI)
    assert again is not None
    result = server.verify(again, "REGISTER", URI, 100.0, lookup)
    assert not result.ok and all(c.stale for c in result.challenges)
    assert client.should_retry(result.challenges, again)
    retry = client.authorize(result.challenges, "REGISTER", URI)
    assert retry is not None and retry.nc == 1
    assert server.verify(retry, "REGISTER", URI, 101.0, lookup).ok


def test_should_retry_stops_on_wrong_password() -> None:
    server = DigestServer(REALM, NonceFactory(b"s" * 16, 30.0))
    client = DigestClient("bob", password="wrong", make_cnonce=lambda: "c")
    cred = client.authorize(server.challenge(0.0), "REGISTER", URI)
    assert cred is not None
    result = server.verify(cred, "REGISTER", URI, 1.0, lookup)
    assert not result.ok
    assert not client.should_retry(result.challenges, cred)
    other_realm = [Challenge(realm="proxy.example.com", nonce="n")]
    assert client.should_retry(other_realm, cred)


def test_userhash_challenge() -> None:
    challenge = Challenge(realm=REALM, nonce="n", algorithm="SHA-256", userhash=True, qop=("auth",))
    cred = cnonces().authorize(challenge, "INVITE", URI)
    assert cred is not None and cred.userhash and cred.username != "bob" and len(cred.username) == 64


@pytest.mark.parametrize(
    ("challenge", "kwargs"),
    [
        (Challenge(realm=REALM, nonce="n", algorithm="SHA-1"), dict(password="p")),
        (Challenge(realm=REALM, nonce="n"), dict()),
        (Challenge(realm=REALM, nonce="n"), dict(password="p", ha1="00")),
        (Challenge(realm=REALM, nonce="n", qop=("auth",)), dict(password="p", qop="auth-int", cnonce="c")),
        (Challenge(realm=REALM, nonce="n", qop=("auth",)), dict(password="p")),
        (Challenge(realm=REALM, nonce="n", algorithm="MD5-sess"), dict(password="p")),
    ],
)
def test_build_credentials_misuse(challenge: Challenge, kwargs: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        build_credentials(challenge, "bob", "INVITE", URI, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(password="p", ha1={"MD5": "00"}),
        dict(password="p", max_nonces=0),
        dict(password="p", algorithms=["SHA-1"]),
    ],
)
def test_client_misuse(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        DigestClient("bob", make_cnonce=lambda: "c", **kwargs)  # type: ignore[arg-type]
