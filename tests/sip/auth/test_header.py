"""Parsing and serialising Digest header values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipline.sip.auth.header import Challenge, Credentials, parse_challenges, parse_credentials
from sipline.sip.errors import ParseError, UsageError

RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_parse_rfc2617_challenge() -> None:
    [ch] = parse_challenges(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert ch == Challenge(
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        opaque="5ccc069c403ebaf9f0171e9517f40e41",
        qop=("auth", "auth-int"),
    )
    assert ch.algorithm is None and not ch.stale


def test_parse_rfc2617_credentials() -> None:
    cred = parse_credentials(RFC2617_AUTHORIZATION)
    assert cred.username == "Mufasa"
    assert cred.nc == 1 and cred.qop == "auth" and cred.cnonce == "0a4f113b"
    assert cred.response == "6629fae49393a05397450978507c4ef1"
    assert parse_credentials(str(cred)) == cred


def test_full_challenge_fields_and_roundtrip() -> None:
    text = (
        'digest REALM="atlanta.com", domain="sip:a.com sip:b.com", nonce="n1", opaque="o", '
        'stale=TRUE, algorithm=SHA-256, qop="auth, auth-int", userhash=true, charset=UTF-8, '
        'x-note="a \\"quoted\\" \\\\ word"'
    )
    [ch] = parse_challenges(text, header="Proxy-Authenticate")
    assert ch.realm == "atlanta.com"
    assert ch.domain == ("sip:a.com", "sip:b.com")
    assert ch.stale and ch.userhash and ch.algorithm == "SHA-256"
    assert ch.qop == ("auth", "auth-int")
    assert ch.extra == (("charset", "UTF-8"), ("x-note", 'a "quoted" \\ word'))
    assert str(ch) == (
        'Digest realm="atlanta.com", domain="sip:a.com sip:b.com", nonce="n1", opaque="o", '
        'stale=true, algorithm=SHA-256, qop="auth,auth-int", userhash=true, charset=UTF-8, '
        'x-note="a \\"quoted\\" \\\\ word"'
    )
    assert parse_challenges(str(ch)) == [ch]


def test_multiple_challenges_and_foreign_schemes() -> None:
    text = (
        'Digest realm="r", nonce="a", algorithm=SHA-256, Basic realm="x",'
        ' Negotiate, Digest realm="r", nonce="a", algorithm=MD5'
    )
    got = parse_challenges(text)
    assert [c.algorithm for c in got] == ["SHA-256", "MD5"]
    assert parse_challenges('Bearer realm="x"') == []


def test_credentials_lenient_quoting_and_case() -> None:
    cred = parse_credentials(
        'Digest USERNAME="bob",Realm="r",nonce="n",uri="sip:x",response=abcd,'
        'qop="AUTH",nc="0000000A",cnonce="c",algorithm="MD5-sess",userhash=false,foo=bar'
    )
    assert cred.qop == "auth" and cred.nc == 10 and cred.algorithm == "MD5-sess"
    assert not cred.userhash and cred.extra == (("foo", "bar"),)
    assert str(cred) == (
        'Digest username="bob", realm="r", nonce="n", uri="sip:x", response="abcd", '
        'algorithm=MD5-sess, cnonce="c", qop=auth, nc=0000000a, foo=bar'
    )


def test_credentials_userhash_serialised() -> None:
    cred = Credentials("h", "r", "n", "sip:x", "00", userhash=True, extra=(("p", "a b"),))
    assert str(cred).endswith('userhash=true, p="a b"')
    assert parse_credentials(str(cred)) == cred


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "expected auth-scheme"),
        ("   ", "expected auth-scheme"),
        ('Digest realm="r"', "missing 'nonce'"),
        ('Digest nonce="n"', "missing 'realm'"),
        ("Digest", "missing 'realm'"),
        ('Digest realm="r", realm="s", nonce="n"', "duplicate parameter 'realm'"),
        ('Digest realm="r, nonce="n"', "expected ','"),
        ('Digest realm="r", nonce="n', "unterminated quoted-string"),
        ('Digest realm="r", nonce="n\\', "unterminated quoted-string"),
        ('Digest realm="r", nonce=', "expected parameter value"),
        ('Digest realm="r", nonce', "missing 'nonce'"),
        ('Digest realm="r",, nonce="n"', "expected parameter name or auth-scheme"),
        ('Digest realm="r" nonce="n"', "expected ','"),
        ('Digest realm "r"', "expected '='"),
        ('Digest,realm="r"', "not ','"),
        ('Digest realm="r", nonce="n", stale=maybe', "stale must be true or false"),
        ('Digest realm="r", nonce="n", qop="auth,,auth-int"', "malformed qop"),
        ('Digest realm="r", nonce="n", algorithm="SHA 256"', "not a token"),
        ('Digest realm="r\x00", nonce="n"', "control character"),
        ('Digest realm="r\\\r", nonce="n"', "control character"),
        ('Digest realm="r\\\u00e9", nonce="n"', "non-ASCII"),
        ('Digest realm=r@x, nonce="n"', "expected ','"),
        ('Digest realm="r"x, nonce="n"', "expected ','"),
        ('"Digest" realm="r"', "expected auth-scheme"),
        ('Digest=realm', "expected whitespace after auth-scheme"),
    ],
)
def test_malformed_challenges(text: str, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_challenges(text)
    assert fragment in info.value.reason
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('Digest username="u", realm="r", nonce="n", uri="u"', "missing 'response'"),
        ('Digest username="u", realm="r", nonce="n", response="x"', "missing 'uri'"),
        ('Basic dXNlcg', "expected"),
        ('Basic realm="x"', "unsupported auth-scheme 'Basic'"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="x", Digest realm="r"',
         "more than one set of credentials"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth, nc=00000001',
         "requires cnonce and nc"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth, cnonce="c"',
         "requires cnonce and nc"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="x", nc=1', "8 hex digits"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="x", nc=0000000g',
         "8 hex digits"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="x", qop="a b"',
         "not a token"),
        ('Digest username="u", realm="r", nonce="n", uri="u", response="x", userhash=1',
         "userhash must be true or false"),
    ],
)
def test_malformed_credentials(text: str, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_credentials(text, header="Proxy-Authorization")
    assert fragment in info.value.reason
    assert info.value.header == "Proxy-Authorization"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Challenge(realm="r\r\nX: y", nonce="n"),
        lambda: Challenge(realm="r", nonce="n", qop=("auth int",)),
        lambda: Challenge(realm="r", nonce="n", algorithm="MD5,x"),
        lambda: Challenge(realm="r", nonce="n", domain=("sip:a sip:b",)),
        lambda: Challenge(realm="r", nonce="n", domain=("",)),
        lambda: Challenge(realm="r", nonce="n", extra=(("bad name", "v"),)),
        lambda: Challenge(realm="r", nonce="n", extra=(("ok", "v\n"),)),
        lambda: Credentials("u", "r", "n", "sip:x", "00", qop="a\"b"),
        lambda: Credentials("u", "r", "n", "sip:x", "00", nc=2**32),
        lambda: Credentials("u", "r", "n", "sip:x", "00", nc=-1),
        lambda: Credentials("u\n", "r", "n", "sip:x", "00"),
    ],
)
def test_dataclasses_refuse_unwritable_values(build: object) -> None:
    with pytest.raises(UsageError):
        build()  # type: ignore[operator]


def test_extra_values_are_quoted_when_not_tokens() -> None:
    ch = Challenge(realm="r", nonce="n", extra=(("note", ""), ("k", "tok")))
    assert str(ch) == 'Digest realm="r", nonce="n", note="", k=tok'


_ALPHABET = st.sampled_from(list('Digest realm="nonce=, \\\t\r\nauth-int qop"=,xyz\x00\u00e9'))


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.text(_ALPHABET, max_size=60)))
def test_fuzz_only_parse_error_escapes(text: str) -> None:
    _parse_or_parse_error(text)


def _parse_or_parse_error(text: str) -> None:
    try:
        challenges = parse_challenges(text)
    except ParseError:
        challenges = []
    for challenge in challenges:  # whatever parses must survive a write/read cycle
        assert parse_challenges(str(challenge)) == [challenge]
    try:
        credentials = parse_credentials(text)
    except ParseError:
        return
    assert parse_credentials(str(credentials)) == credentials


_PARAM = st.tuples(
    st.sampled_from(["realm", "nonce", "qop", "nc", "stale", "domain", "username", "uri",
                     "response", "cnonce", "algorithm", "opaque", "userhash", "x"]),
    st.one_of(
        st.sampled_from(["auth", "auth-int", "true", "00000001", "MD5", "sip:a sip:b", ""]),
        st.text(max_size=8),
    ),
    st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["Digest", "digest", "Basic"]), st.lists(_PARAM, max_size=8))
def test_fuzz_structured_headers(scheme: str, params: list[tuple[str, str, bool]]) -> None:
    rendered = ", ".join(
        f'{name}="{value}"' if quoted else f"{name}={value}" for name, value, quoted in params
    )
    _parse_or_parse_error(f"{scheme} {rendered}")


_SAFE_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), max_size=20
)


@settings(max_examples=200, deadline=None)
@given(
    realm=_SAFE_TEXT,
    nonce=_SAFE_TEXT,
    opaque=st.none() | _SAFE_TEXT,
    stale=st.booleans(),
    qop=st.lists(st.sampled_from(["auth", "auth-int", "x-ext"]), max_size=3),
)
def test_fuzz_challenge_roundtrip(
    realm: str, nonce: str, opaque: str | None, stale: bool, qop: list[str]
) -> None:
    ch = Challenge(realm=realm, nonce=nonce, opaque=opaque, stale=stale, qop=tuple(qop))
    assert parse_challenges(str(ch)) == [ch]


@settings(max_examples=200, deadline=None)
@given(username=_SAFE_TEXT, uri=_SAFE_TEXT, nc=st.integers(0, 2**32 - 1), cnonce=_SAFE_TEXT)
def test_fuzz_credentials_roundtrip(username: str, uri: str, nc: int, cnonce: str) -> None:
    cred = Credentials(username, "r", "n", uri, "ab", qop="auth", nc=nc, cnonce=cnonce)
    assert parse_credentials(str(cred)) == cred


# The fast path (one regex walk) must read exactly what the scanner reads, and hand
# everything it does not recognise to the scanner.
_FAST_ALPHABET = st.sampled_from(list('Digest ab=,"\t\\x1-'))


@pytest.mark.parametrize("value", [
    RFC2617_AUTHORIZATION,
    '  Digest   a = b ,c= "d, e = f"  ',
    'Digest a="", b=c',
    "Digest\ta=b",
    'Digest a=b ,\t c=d\t',
])
def test_fast_credentials_agree_with_scanner(value: str) -> None:
    from sipline.sip.auth.header import _fast_groups, _parse_groups

    assert _fast_groups(value) is not None
    assert _fast_groups(value) == _parse_groups(value, "Authorization")


@pytest.mark.parametrize("value", ['Digest a="x\\"y"', "Digest a=b, Basic c=d", "Digest a=b,",
                                   "Digest", 'Digest a="b"c', "Digest ,a=b", "Digest a=\"b"])
def test_fast_credentials_leave_the_rest_to_the_scanner(value: str) -> None:
    from sipline.sip.auth.header import _fast_groups

    assert _fast_groups(value) is None


@settings(max_examples=300)
@given(st.text(_FAST_ALPHABET, max_size=30))
def test_fast_credentials_never_disagree(tail: str) -> None:
    from sipline.sip.auth.header import _fast_groups, _parse_groups

    value = "Digest " + tail
    fast = _fast_groups(value)
    if fast is None:
        return
    assert fast == _parse_groups(value, "Authorization")
