"""Registrar role over real stores: the REGISTER flow end to end, restarts, races, purge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from sipline.roles.registrar import Registrar
from sipline.sip.auth import DigestClient, DigestServer, NonceFactory, parse_challenges
from sipline.sip.errors import UsageError
from sipline.sip.ids import CountingIdSource
from sipline.sip.message import Request, Response, parse_message
from sipline.sip.registrar import RegistrarPolicy
from sipline.storage import (
    Binding,
    BindingChanges,
    BindingSet,
    Source,
    StaleBindingSet,
    Storage,
    StorageUnavailable,
    TooManyBindings,
    make_subscriber,
    open_storage,
)

DOMAIN = "example.com"
NOW = 1_700_000_000.0
SOURCE = Source("udp", "192.0.2.10", 5060)
POLICY = RegistrarPolicy(domains=frozenset({DOMAIN}))
SECRET = b"k" * 32


def register(cseq: int, *headers: str, user: str = "alice", call_id: str = "reg-1") -> Request:
    text = "\r\n".join([
        f"REGISTER sip:{DOMAIN} SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{cseq}{call_id}",
        "Max-Forwards: 70",
        f"To: <sip:{user}@{DOMAIN}>",
        f"From: <sip:{user}@{DOMAIN}>;tag=ua1",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        "User-Agent: test-phone/1.0",
        *headers,
        "Content-Length: 0",
        "", "",
    ])
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


def make_registrar(storage: Storage, ids: CountingIdSource | None = None, **kwargs: object) -> Registrar:
    ids = ids or CountingIdSource("x")
    server = DigestServer(DOMAIN, NonceFactory(SECRET, 300.0, make_salt=ids.token))
    return Registrar(storage, server, POLICY, ids, node_id="node-a",
                     wall_clock=lambda: 0.0, **kwargs)  # type: ignore[arg-type]


async def add_users(storage: Storage) -> None:
    for name in ("alice", "bob"):
        await storage.subscribers.add(make_subscriber(name, DOMAIN, f"{name}-pw", created_at=0.0))


@pytest_asyncio.fixture(params=("memory", "sqlite"))
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    url = "memory://" if request.param == "memory" else f"sqlite://{tmp_path}/sipline.db"
    st = await open_storage(url)
    await add_users(st)
    try:
        yield st
    finally:
        await st.close()


class Phone:
    """A UA that answers 401s with sipline's own Digest client."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        cnonces = CountingIdSource("cn")
        self.client = DigestClient(user, password=password, make_cnonce=cnonces.token)
        self.challenges: list = []  # type: ignore[type-arg]

    def learn(self, response: Response) -> None:
        assert response.status == 401
        self.challenges = [c for v in response.headers.get_fields("WWW-Authenticate")
                           for c in parse_challenges(v)]

    def sign(self, request: Request) -> Request:
        creds = self.client.authorize(self.challenges, request.method, request.uri_text)
        assert creds is not None
        request.headers.add("Authorization", str(creds))
        return request


async def test_full_register_flow(storage: Storage) -> None:
    registrar = make_registrar(storage)
    phone = Phone("alice", "alice-pw")

    # 1. Unauthenticated: 401 with one challenge per algorithm.
    challenge = await registrar.handle(register(1, "Contact: <sip:alice@192.0.2.10>"), SOURCE, NOW)
    assert challenge.status == 401 and challenge.to.tag == "tagx2"  # x1 salted the nonce
    assert len(challenge.headers.get_fields("WWW-Authenticate")) == 2
    phone.learn(challenge)

    # 2. Authorised REGISTER: 200 listing the binding, Date from the injected wall clock.
    ok = await registrar.handle(
        phone.sign(register(2, "Contact: <sip:alice@192.0.2.10>", "Expires: 600")), SOURCE, NOW,
        connection_id="conn-1")
    assert ok.status == 200, ok.reason
    assert ok.headers.get_all("Contact") == ["<sip:alice@192.0.2.10>;expires=600"]
    assert ok.headers.get("Date") == "Thu, 01 Jan 1970 00:00:00 GMT"
    [binding] = await registrar.lookup("sip:alice@EXAMPLE.com;transport=udp", NOW)
    assert binding == Binding(
        aor="sip:alice@example.com", contact="sip:alice@192.0.2.10", expires_at=NOW + 600,
        call_id="reg-1", cseq=2, received=SOURCE, connection_id="conn-1", node_id="node-a",
        user_agent="test-phone/1.0", updated_at=NOW)

    # 3. Refresh later (nonce reused with the next nonce-count): remaining time reset.
    later = NOW + 100
    refreshed = await registrar.handle(
        phone.sign(register(3, "Contact: <sip:alice@192.0.2.10>;expires=300")), SOURCE, later)
    assert refreshed.headers.get_all("Contact") == ["<sip:alice@192.0.2.10>;expires=300"]

    # 4. A query lists it without changing it.
    query = await registrar.handle(phone.sign(register(4)), SOURCE, later + 50)
    assert query.headers.get_all("Contact") == ["<sip:alice@192.0.2.10>;expires=250"]

    # 5. A replayed old CSeq is refused with 500 and changes nothing.
    stale = await registrar.handle(
        phone.sign(register(3, "Contact: <sip:alice@192.0.2.10>", "Expires: 0")), SOURCE, later)
    assert stale.status == 500
    assert len(await registrar.lookup("sip:alice@example.com", later)) == 1

    # 6. Unregister with Expires: 0.
    gone = await registrar.handle(
        phone.sign(register(5, "Contact: <sip:alice@192.0.2.10>", "Expires: 0")), SOURCE, later)
    assert gone.status == 200 and "Contact" not in gone.headers
    assert await registrar.lookup("sip:alice@example.com", later) == []

    # 7. Alice's credentials on Bob's AOR: 403, nothing stored.
    intruder = register(6, "Contact: <sip:evil@192.0.2.66>", user="bob")
    forbidden = await registrar.handle(phone.sign(intruder), SOURCE, later)
    assert (forbidden.status, forbidden.reason) == (403, "Forbidden")
    assert await registrar.lookup("sip:bob@example.com", later) == []


async def test_wrong_password_and_unknown_user_look_the_same(storage: Storage) -> None:
    texts = []
    for user, password in (("alice", "nope"), ("nobody", "nope")):
        registrar = make_registrar(storage, CountingIdSource("same"))
        phone = Phone(user, password)
        phone.learn(await registrar.handle(register(1, user=user), SOURCE, NOW))
        failed = await registrar.handle(phone.sign(register(2, user=user)), SOURCE, NOW)
        assert failed.status == 401
        text = bytes(failed).decode().replace(user, "USER")
        texts.append(text)
    assert texts[0] == texts[1]


async def test_domain_require_and_star(storage: Storage) -> None:
    registrar = make_registrar(storage)
    phone = Phone("alice", "alice-pw")
    required = await registrar.handle(register(1, "Require: gruu"), SOURCE, NOW)
    assert (required.status, required.headers.get("Unsupported")) == (420, "gruu")
    phone.learn(await registrar.handle(register(1), SOURCE, NOW))
    foreign = register(2, "Contact: <sip:a@h>")
    foreign.headers.set("To", "<sip:alice@elsewhere.org>")
    assert (await registrar.handle(phone.sign(foreign), SOURCE, NOW)).status == 404
    for cseq, contact in ((3, "sip:a@192.0.2.1"), (4, "sip:b@192.0.2.2")):
        r = await registrar.handle(phone.sign(register(cseq, f"Contact: <{contact}>")), SOURCE, NOW)
        assert r.status == 200
    assert len(r.headers.get_all("Contact")) == 2
    too_brief = await registrar.handle(phone.sign(register(5, "Contact: <sip:c@h>;expires=5")),
                                       SOURCE, NOW)
    assert (too_brief.status, too_brief.headers.get("Min-Expires")) == (423, "60")
    cleared = await registrar.handle(phone.sign(register(6, "Contact: *", "Expires: 0")), SOURCE, NOW)
    assert cleared.status == 200 and await registrar.lookup("sip:alice@example.com", NOW) == []


async def test_purge_removes_expired(storage: Storage) -> None:
    registrar = make_registrar(storage)
    phone = Phone("alice", "alice-pw")
    phone.learn(await registrar.handle(register(1), SOURCE, NOW))
    await registrar.handle(phone.sign(register(2, "Contact: <sip:a@h>;expires=60")), SOURCE, NOW)
    assert await registrar.purge(NOW + 30) == 0
    assert await registrar.purge(NOW + 61) == 1


async def test_bindings_survive_sqlite_restart(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/data.db"
    first = await open_storage(url)
    await add_users(first)
    registrar = make_registrar(first)
    phone = Phone("bob", "bob-pw")
    phone.learn(await registrar.handle(register(1, user="bob"), SOURCE, NOW))
    ok = await registrar.handle(
        phone.sign(register(2, "Supported: path", "Path: <sip:edge.example.com;lr>",
                            "Contact: <sip:bob@198.51.100.7:5070>;q=0.7", user="bob")), SOURCE, NOW)
    assert ok.status == 200 and ok.headers.get("Path") == "<sip:edge.example.com;lr>"
    await first.close()

    second = await open_storage(url)
    try:
        restarted = make_registrar(second, CountingIdSource("y"))
        [b] = await restarted.lookup("sip:bob@example.com", NOW + 1)
        assert (b.contact, b.q, b.path, b.cseq) == ("sip:bob@198.51.100.7:5070", 0.7,
                                                    ("<sip:edge.example.com;lr>",), 2)
        # Nonces are stateless: the old one still verifies after the restart.
        again = await restarted.handle(
            phone.sign(register(3, "Contact: <sip:bob@198.51.100.7:5070>;q=0.7", user="bob")),
            SOURCE, NOW + 2)
        assert again.status == 200
        assert again.headers.get_all("Contact") == ["<sip:bob@198.51.100.7:5070>;expires=3600;q=0.7"]
    finally:
        await second.close()


class _FlakyLocation:
    """Wraps a real location store and fails ``apply`` in a chosen way."""

    def __init__(self, inner: object, error: Exception) -> None:
        self._inner = inner
        self._error = error

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def apply(self, aor: str, changes: BindingChanges, now: float) -> BindingSet:
        raise self._error

    async def update_atomically(self, aor: str, decide: object, now: float) -> BindingSet:
        raise self._error


class _Stores:
    def __init__(self, storage: Storage, location: object) -> None:
        self.location = location
        self.subscribers = storage.subscribers


@pytest.mark.parametrize(("error", "status", "retry_after"), [
    (StaleBindingSet("sip:alice@example.com", 1, 2), 500, "5"),
    (TooManyBindings("sip:alice@example.com", 1), 403, None),
    (StorageUnavailable("down"), 500, "5"),
])
async def test_storage_failures_become_responses(
    storage: Storage, error: Exception, status: int, retry_after: str | None
) -> None:
    registrar = make_registrar(_Stores(storage, _FlakyLocation(storage.location, error)),  # type: ignore[arg-type]
                               attempts=2)
    phone = Phone("alice", "alice-pw")
    phone.learn(await registrar.handle(register(1), SOURCE, NOW))
    response = await registrar.handle(phone.sign(register(2, "Contact: <sip:a@h>")), SOURCE, NOW)
    assert response.status == status
    assert response.headers.get("Retry-After") == retry_after


async def test_rejection_inside_transaction_writes_nothing(storage: Storage) -> None:
    """A concurrent writer makes the second decision differ from the first snapshot's."""
    registrar = make_registrar(storage)
    phone = Phone("alice", "alice-pw")
    phone.learn(await registrar.handle(register(1), SOURCE, NOW))
    real_snapshot = storage.location.snapshot
    calls = 0

    async def racing_snapshot(aor: str, now: float) -> BindingSet:
        nonlocal calls
        calls += 1
        if calls == 2:  # between the first decision and transact's own snapshot
            await storage.location.upsert(Binding(aor=aor, contact="sip:a@h", expires_at=now + 60,
                                                  call_id="reg-1", cseq=50, updated_at=now), now)
        return await real_snapshot(aor, now)

    storage.location.snapshot = racing_snapshot  # type: ignore[method-assign]
    atomic = getattr(storage.location, "update_atomically", None)
    if atomic is not None:
        # SQLite decides inside its write transaction: the other writer gets in just before.
        async def racing_update(aor: str, decide: object, now: float) -> BindingSet:
            await storage.location.upsert(Binding(aor=aor, contact="sip:a@h", expires_at=now + 60,
                                                  call_id="reg-1", cseq=50, updated_at=now), now)
            return await atomic(aor, decide, now)  # type: ignore[no-any-return]

        storage.location.update_atomically = racing_update  # type: ignore[attr-defined]
    response = await registrar.handle(phone.sign(register(2, "Contact: <sip:a@h>")), SOURCE, NOW)
    assert response.status == 500
    [b] = await storage.location.lookup("sip:alice@example.com", NOW)
    assert b.cseq == 50


async def test_only_register_is_handled(storage: Storage) -> None:
    req = register(1)
    req.method = "OPTIONS"
    with pytest.raises(UsageError):
        await make_registrar(storage).handle(req, SOURCE, NOW)


async def test_nonce_binding_and_no_date(storage: Storage) -> None:
    registrar = make_registrar(storage, nonce_binding=str)
    registrar_no_date = Registrar(storage, DigestServer(DOMAIN, NonceFactory(SECRET, 300.0)), POLICY,
                                  CountingIdSource(), wall_clock=None)
    phone = Phone("alice", "alice-pw")
    phone.learn(await registrar.handle(register(1), SOURCE, NOW))
    other_source = Source("udp", "203.0.113.5", 5060)
    moved = await registrar.handle(phone.sign(register(2)), other_source, NOW)
    assert moved.status == 401  # nonce bound to the first source
    phone.learn(moved)
    assert (await registrar.handle(phone.sign(register(3)), other_source, NOW)).status == 200
    needs_ext = register(1)
    needs_ext.headers.add("Require", "nothing")
    assert "Date" not in (await registrar_no_date.handle(needs_ext, SOURCE, NOW)).headers


async def test_lookup_accepts_any_spelling_and_odd_algorithms(storage: Storage) -> None:
    registrar = make_registrar(storage)
    assert await registrar.lookup("not a uri", NOW) == []
    assert await registrar.lookup("tel:+1555", NOW) == []
    # Credentials naming an algorithm the store cannot hash fail like any wrong password.
    server = DigestServer(DOMAIN, NonceFactory(SECRET, 300.0), algorithms=("MD5-sess",))
    sess = Registrar(storage, server, POLICY, CountingIdSource(), wall_clock=None)
    phone = Phone("alice", "alice-pw")
    phone.learn(await sess.handle(register(1), SOURCE, NOW))

    async def refuse(username: str, realm: str, algorithm: str) -> str | None:
        raise UsageError("no such hash")

    storage.subscribers.ha1 = refuse  # type: ignore[method-assign]
    assert (await sess.handle(phone.sign(register(2)), SOURCE, NOW)).status == 401
