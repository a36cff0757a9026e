"""Conformance of every SubscriberStore backend."""

from __future__ import annotations

import hashlib

import pytest

from sipline.sip.errors import UsageError
from sipline.storage import (
    Storage,
    SubscriberExists,
    SubscriberNotFound,
    compute_ha1,
    make_subscriber,
)

pytestmark = pytest.mark.asyncio


def alice(password: str = "secret", realm: str | None = None, domain: str = "example.com"):  # type: ignore[no-untyped-def]
    return make_subscriber("alice", domain, password, realm, display_name="Alice", created_at=1.5)


async def test_add_get_round_trip(storage: Storage) -> None:
    sub = alice()
    await storage.subscribers.add(sub)
    assert await storage.subscribers.get("alice", "example.com") == sub
    assert await storage.subscribers.get("alice", "other.com") is None
    assert await storage.subscribers.get("bob", "example.com") is None


async def test_add_twice_fails(storage: Storage) -> None:
    await storage.subscribers.add(alice())
    with pytest.raises(SubscriberExists):
        await storage.subscribers.add(alice("other"))
    # Same user in another domain but the same realm would make digest ambiguous.
    with pytest.raises(SubscriberExists):
        await storage.subscribers.add(alice(domain="example.org", realm="example.com"))
    await storage.subscribers.add(alice(domain="example.org"))
    assert len(await storage.subscribers.list()) == 2


async def test_list_sorted_and_filtered(storage: Storage) -> None:
    subs = storage.subscribers
    for user, domain in [("zoe", "a.com"), ("bob", "b.com"), ("amy", "b.com"), ("carl", "a.com")]:
        await subs.add(make_subscriber(user, domain, "pw", created_at=0.0))
    assert [(s.domain, s.username) for s in await subs.list()] == [
        ("a.com", "carl"), ("a.com", "zoe"), ("b.com", "amy"), ("b.com", "bob"),
    ]
    assert [s.username for s in await subs.list("b.com")] == ["amy", "bob"]
    assert list(await subs.list("none.com")) == []


async def test_remove(storage: Storage) -> None:
    await storage.subscribers.add(alice())
    assert await storage.subscribers.remove("alice", "example.com") is True
    assert await storage.subscribers.remove("alice", "example.com") is False
    assert await storage.subscribers.ha1("alice", "example.com", "MD5") is None
    await storage.subscribers.add(alice())  # the realm index was released too


async def test_ha1_lookup_by_realm_and_algorithm(storage: Storage) -> None:
    await storage.subscribers.add(alice(realm="sip.example.com"))
    subs = storage.subscribers
    expected_md5 = hashlib.md5(b"alice:sip.example.com:secret").hexdigest()
    assert await subs.ha1("alice", "sip.example.com", "MD5") == expected_md5
    assert await subs.ha1("alice", "sip.example.com", "md5-sess") == expected_md5
    assert await subs.ha1("alice", "sip.example.com", "SHA-256") == hashlib.sha256(
        b"alice:sip.example.com:secret"
    ).hexdigest()
    assert await subs.ha1("alice", "sip.example.com", "SHA-512-256") == compute_ha1(
        "alice", "sip.example.com", "secret", "SHA-512-256"
    )
    assert await subs.ha1("alice", "example.com", "MD5") is None
    assert await subs.ha1("mallory", "sip.example.com", "MD5") is None
    with pytest.raises(UsageError):
        await subs.ha1("alice", "sip.example.com", "SHA-1")
    with pytest.raises(UsageError):
        await subs.ha1("nobody", "sip.example.com", "SHA-1")


async def test_set_password_rehashes(storage: Storage) -> None:
    subs = storage.subscribers
    await subs.add(alice())
    changed = await subs.set_password("alice", "example.com", "n3w")
    assert changed.ha1_md5 == compute_ha1("alice", "example.com", "n3w")
    assert (changed.display_name, changed.created_at, changed.enabled) == ("Alice", 1.5, True)
    assert await subs.get("alice", "example.com") == changed
    moved = await subs.set_password("alice", "example.com", "n3w", realm="voip.example.com")
    assert moved.realm == "voip.example.com"
    assert await subs.ha1("alice", "example.com", "MD5") is None
    assert await subs.ha1("alice", "voip.example.com", "MD5") == compute_ha1(
        "alice", "voip.example.com", "n3w"
    )
    with pytest.raises(SubscriberNotFound):
        await subs.set_password("ghost", "example.com", "x")


async def test_set_password_refuses_realm_collision(storage: Storage) -> None:
    subs = storage.subscribers
    await subs.add(alice())
    await subs.add(alice(domain="example.org"))
    with pytest.raises(SubscriberExists):
        await subs.set_password("alice", "example.org", "x", realm="example.com")
    assert (await subs.get("alice", "example.org")).realm == "example.org"  # type: ignore[union-attr]


async def test_disabled_subscriber_has_no_credentials(storage: Storage) -> None:
    subs = storage.subscribers
    await subs.add(alice())
    off = await subs.set_enabled("alice", "example.com", False)
    assert off.enabled is False
    assert (await subs.get("alice", "example.com")) == off
    assert await subs.ha1("alice", "example.com", "MD5") is None
    await subs.set_enabled("alice", "example.com", True)
    assert await subs.ha1("alice", "example.com", "MD5") is not None
    with pytest.raises(SubscriberNotFound):
        await subs.set_enabled("ghost", "example.com", True)
