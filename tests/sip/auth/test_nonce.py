"""Stateless nonces and the nonce-count replay guard."""

from __future__ import annotations

import base64
import itertools

import pytest

from sipline.sip.auth.nonce import NonceFactory, NonceStatus, ReplayGuard, ReplayVerdict
from sipline.sip.errors import UsageError

SECRET = b"0123456789abcdef-secret"


def _factory(**kwargs: object) -> NonceFactory:
    return NonceFactory(SECRET, 30.0, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("age", "status"),
    [
        (0.0, NonceStatus.VALID),
        (30.0, NonceStatus.VALID),
        (30.001, NonceStatus.STALE),
        (1e6, NonceStatus.STALE),
        (-2.0, NonceStatus.VALID),  # within clock skew
        (-2.5, NonceStatus.STALE),  # from a clock far ahead
    ],
)
def test_age_table(age: float, status: NonceStatus) -> None:
    nonces = _factory()
    nonce = nonces.issue(1000.0, realm="r")
    check = nonces.verify(nonce, 1000.0 + age, realm="r")
    assert check.status is status
    assert check.issued_at == 1000.0


def test_salt_makes_nonces_distinct_and_is_authenticated() -> None:
    counter = itertools.count()
    nonces = _factory(make_salt=lambda: f"s{next(counter)}")
    a, b = nonces.issue(5.0, realm="r"), nonces.issue(5.0, realm="r")
    assert a != b
    assert nonces.verify(a, 5.0, realm="r").status is NonceStatus.VALID
    assert _factory().issue(5.0, realm="r") == _factory().issue(5.0, realm="r")


def _flip(nonce: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_tampered_and_foreign_nonces_are_invalid() -> None:
    nonces = _factory(make_salt=lambda: "salt")
    nonce = nonces.issue(100.0, realm="r", binding="udp:192.0.2.1")
    ok = nonces.verify(nonce, 101.0, realm="r", binding="udp:192.0.2.1")
    assert ok.status is NonceStatus.VALID
    invalid = [
        _flip(nonce, 0),  # timestamp moved
        _flip(nonce, 9),  # salt changed
        _flip(nonce, -1),  # mac changed
    ]
    for bad in invalid:
        assert nonces.verify(bad, 101.0, realm="r", binding="udp:192.0.2.1").status is NonceStatus.INVALID
    assert nonces.verify(nonce, 101.0, realm="other", binding="udp:192.0.2.1").status is NonceStatus.INVALID
    assert nonces.verify(nonce, 101.0, realm="r", binding="udp:192.0.2.2").status is NonceStatus.INVALID
    other = NonceFactory(b"another secret of 16+ bytes", 30.0)
    assert other.verify(nonce, 101.0, realm="r").status is NonceStatus.INVALID
    # An expired *and* tampered nonce is invalid, never stale.
    assert nonces.verify(_flip(nonce, -1), 1e6, realm="r").status is NonceStatus.INVALID


@pytest.mark.parametrize(
    "garbage",
    ["", "!!!!", "a", "abcde", "A" * 500, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "AAAA" * 6 + "A"],
)
def test_garbage_nonces_are_invalid(garbage: str) -> None:
    check = _factory().verify(garbage, 0.0, realm="r")
    assert check.status is NonceStatus.INVALID and check.issued_at is None


def test_non_canonical_spelling_is_invalid() -> None:
    nonces = _factory()
    nonce = nonces.issue(1.0, realm="r")  # 24 bytes -> 32 chars, no spare bits
    salted = _factory(make_salt=lambda: "x").issue(1.0, realm="r")  # 25 bytes -> spare bits
    assert len(salted) % 4 != 0
    last = salted[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = salted[:-1] + alphabet[alphabet.index(last) ^ 1]
    salted_factory = _factory(make_salt=lambda: "x")
    assert salted_factory.verify(salted, 1.0, realm="r").status is NonceStatus.VALID
    assert salted_factory.verify(twin, 1.0, realm="r").status is NonceStatus.INVALID
    assert nonces.verify(nonce, 1.0, realm="r").status is NonceStatus.VALID


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((b"short", 30.0), {}),
        ((SECRET, 0.0), {}),
        ((SECRET, 30.0), {"clock_skew": -1.0}),
    ],
)
def test_factory_misuse(args: tuple[bytes, float], kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        NonceFactory(*args, **kwargs)  # type: ignore[arg-type]


def test_issue_misuse() -> None:
    with pytest.raises(UsageError):
        _factory(make_salt=lambda: "x" * 65).issue(0.0, realm="r")
    with pytest.raises(UsageError):
        _factory().issue(1e17, realm="r")
    assert _factory().lifetime == 30.0


def test_replay_window_table() -> None:
    guard = ReplayGuard(10, window=4)
    steps = [
        (1, ReplayVerdict.FRESH),
        (1, ReplayVerdict.REPLAYED),
        (3, ReplayVerdict.FRESH),
        (2, ReplayVerdict.FRESH),  # out of order, inside the window
        (2, ReplayVerdict.REPLAYED),
        (7, ReplayVerdict.FRESH),
        (3, ReplayVerdict.REPLAYED),  # 7-3 = 4: fell out of the window
        (4, ReplayVerdict.FRESH),
        (4, ReplayVerdict.REPLAYED),
        (0, ReplayVerdict.REPLAYED),  # nc starts at 1
        (2**32 - 1, ReplayVerdict.FRESH),  # huge jump stays cheap
        (2**32 - 1, ReplayVerdict.REPLAYED),
        (2**32 - 2, ReplayVerdict.FRESH),
    ]
    for nc, verdict in steps:
        assert guard.check("n", 0.0, nc) is verdict, nc
    assert len(guard) == 1


def test_eviction_raises_horizon() -> None:
    guard = ReplayGuard(2)
    assert guard.check("a", 1.0, 1) is ReplayVerdict.FRESH
    assert guard.check("b", 2.0, 1) is ReplayVerdict.FRESH
    assert guard.check("a", 1.0, 2) is ReplayVerdict.FRESH  # "a" now most recent
    assert guard.check("c", 3.0, 1) is ReplayVerdict.FRESH  # evicts "b"
    assert len(guard) == 2
    assert guard.check("b", 2.0, 1) is ReplayVerdict.FORGOTTEN  # cannot replay "b"
    assert guard.check("b", 2.0, 9) is ReplayVerdict.FORGOTTEN
    assert guard.check("old", 0.5, 1) is ReplayVerdict.FORGOTTEN
    assert guard.check("a", 1.0, 2) is ReplayVerdict.REPLAYED  # still tracked
    assert guard.check("d", 4.0, 1) is ReplayVerdict.FRESH


def test_guard_misuse() -> None:
    with pytest.raises(UsageError):
        ReplayGuard(0)
    with pytest.raises(UsageError):
        ReplayGuard(1, window=0)
