"""Digest hash arithmetic against the RFC worked examples."""

from __future__ import annotations

import hashlib

import pytest

from sipline.sip.auth.digest import ALGORITHMS, compute_response, find_algorithm, ha1, userhash
from sipline.sip.errors import UsageError

# RFC 2617 §3.5 and RFC 7616 §3.9.1 worked examples (GET /dir/index.html, user Mufasa).
RFC2617 = dict(
    realm="testrealm@host.com",
    password="Circle Of Life",
    nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
    cnonce="0a4f113b",
    algorithm="MD5",
    response="6629fae49393a05397450978507c4ef1",
)
RFC7616_SHA256 = dict(
    realm="http-auth@example.org",
    password="Circle of Life",
    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    algorithm="SHA-256",
    response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
)


@pytest.mark.parametrize("case", [RFC2617, RFC7616_SHA256], ids=["rfc2617", "rfc7616-sha256"])
def test_rfc_worked_examples(case: dict[str, str]) -> None:
    key = ha1("Mufasa", case["realm"], case["password"], case["algorithm"])
    got = compute_response(
        case["algorithm"],
        key,
        nonce=case["nonce"],
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc=1,
        cnonce=case["cnonce"],
    )
    assert got == case["response"]


def _h(name: str, text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.new(name, data).hexdigest()


def test_rfc2069_no_qop() -> None:
    key = _h("md5", "alice:r:pw")
    expected = _h("md5", f"{key}:n:{_h('md5', 'REGISTER:sip:r')}")
    assert compute_response("MD5", key, nonce="n", method="REGISTER", uri="sip:r") == expected


def test_auth_int_hashes_the_body() -> None:
    key = ha1("alice", "r", "pw", "SHA-256")
    body = b"v=0\r\n"
    ha2 = _h("sha256", f"INVITE:sip:b@r:{_h('sha256', body)}")
    expected = _h("sha256", f"{key}:n:0000002a:c:auth-int:{ha2}")
    got = compute_response(
        "SHA-256", key, nonce="n", method="INVITE", uri="sip:b@r", qop="AUTH-INT", nc=42, cnonce="c", body=body
    )
    assert got == expected


def test_sess_rekeys_ha1() -> None:
    key = ha1("alice", "r", "pw", "MD5-sess")
    assert key == ha1("alice", "r", "pw", "MD5")
    session = _h("md5", f"{key}:n:c")
    expected = _h("md5", f"{session}:n:00000001:c:auth:{_h('md5', 'BYE:sip:b')}")
    got = compute_response("MD5-sess", key.upper(), nonce="n", method="BYE", uri="sip:b", qop="auth", nc=1, cnonce="c")
    assert got == expected


def test_userhash_rfc7616() -> None:
    assert userhash("Mufasa", "http-auth@example.org", "SHA-256") == _h(
        "sha256", "Mufasa:http-auth@example.org"
    )


@pytest.mark.parametrize(
    ("name", "canonical"),
    [(None, "MD5"), ("md5", "MD5"), ("sha-256-SESS", "SHA-256-sess"), ("SHA-1", None), ("", None)],
)
def test_find_algorithm(name: str | None, canonical: str | None) -> None:
    found = find_algorithm(name)
    assert (found.name if found else None) == canonical


def test_algorithm_base_and_strength() -> None:
    sess = ALGORITHMS["SHA-256-SESS"]
    assert sess.base == "SHA-256" and ALGORITHMS["MD5"].base == "MD5"
    assert sess.strength > ALGORITHMS["MD5-SESS"].strength


@pytest.mark.skipif("SHA-512-256" not in ALGORITHMS, reason="OpenSSL without SHA-512/256")
def test_sha512_256_is_not_truncated_sha512() -> None:
    key = ha1("u", "r", "p", "SHA-512-256")
    assert key == hashlib.new("sha512_256", b"u:r:p").hexdigest()
    assert key != hashlib.sha512(b"u:r:p").hexdigest()[:64]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(algorithm="SHA-1"),
        dict(algorithm="MD5-sess", qop="auth", nc=1),  # no cnonce for -sess
        dict(qop="auth-conf", nc=1, cnonce="c"),
        dict(qop="auth", cnonce="c"),  # no nc
        dict(qop="auth", nc=1),  # no cnonce
    ],
)
def test_compute_response_misuse(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = dict(algorithm="MD5", nonce="n", method="M", uri="u")
    args.update(kwargs)
    algorithm = args.pop("algorithm")
    with pytest.raises(UsageError):
        compute_response(algorithm, "00", **args)  # type: ignore[arg-type]


def test_ha1_unknown_algorithm() -> None:
    with pytest.raises(UsageError):
        ha1("u", "r", "p", "SHA-1")


def test_unavailable_hash_is_not_offered() -> None:
    from sipline.sip.auth.digest import _available

    assert _available("sha256") and not _available("no-such-hash")
