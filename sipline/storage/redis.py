"""Redis backend: the location service, subscribers and counters shared by many nodes.

Every sipline node talks to the same Redis, so a contact registered through one node is
reachable from all, and a channel limit holds across the cluster.  Atomicity comes from
Redis itself: an AOR is rewritten under WATCH/MULTI (optimistic, retried when another
writer touched it), counters and token buckets are Lua scripts, which Redis runs without
interleaving.  The merge logic stays in Python (:mod:`sipline.storage._logic`) so this
backend cannot drift from the others.

Times stored here come from the callers of several machines: they must share an origin,
in practice Unix time.  Redis' own clock is used only to expire idle token buckets, a
pure memory-saving measure (a missing bucket and a full one behave the same).

Key layout under the prefix (default ``sipline:``)::

    loc:b:<aor>   hash contact -> binding JSON
    loc:v:<aor>   version of the AOR (absent = 0)
    loc:seq       global version sequence (never reuses a version, see memory.py)
    loc:idx       sorted set aor -> earliest expiry, drives purge_expired() and all()
    sub           hash ["user","domain"] -> subscriber JSON
    sub:realm     hash ["user","realm"] -> ["user","domain"], the digest lookup index
    cnt:<key>     channel counter;  bkt:<key>  token bucket hash {t, u}

The multi-key transactions assume one Redis (or a primary with replicas), not Redis
Cluster, whose slots would split these keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from sipline.sip.errors import UsageError
from sipline.storage._logic import (
    binding_from_json,
    binding_order,
    binding_to_json,
    ha1_of,
    merge_bindings,
    sort_bindings,
    subscriber_from_dict,
    subscriber_to_dict,
)
from sipline.storage.base import DEFAULT_MAX_BINDINGS
from sipline.storage.errors import (
    StaleBindingSet,
    StorageError,
    SubscriberExists,
    SubscriberNotFound,
)
from sipline.storage.models import (
    Binding,
    BindingChanges,
    BindingSet,
    Subscriber,
    make_subscriber,
)

__all__ = [
    "connect",
    "RedisLocationStore",
    "RedisSubscriberStore",
    "RedisCounterStore",
]

T = TypeVar("T")

# Optimistic transactions retry when another writer touched the watched keys.  Hitting
# this bound means a hot AOR under pathological contention: fail rather than spin.
_MAX_RETRIES = 64


def connect(url: str) -> aioredis.Redis:
    """A client for ``redis://host:port/db`` that returns str, not bytes."""
    return aioredis.from_url(url, decode_responses=True)


async def _optimistic(
    client: aioredis.Redis,
    keys: Sequence[str],
    body: Callable[[Any], Awaitable[T]],
) -> T:
    """Run ``body(pipe)`` under WATCH ``keys`` until its MULTI/EXEC goes through.

    ``body`` reads through the pipeline in immediate mode, calls ``pipe.multi()``, queues
    its writes and returns; if it returns without calling multi() there is nothing to
    commit.
    """
    # The pipeline is Any: redis-py's stubs type results as bytes|str unions and its
    # watch/unwatch as untyped, which buys nothing but casts here.
    pipe: Any
    async with client.pipeline(transaction=True) as pipe:
        for _ in range(_MAX_RETRIES):
            await pipe.watch(*keys)
            result = await body(pipe)
            if not pipe.explicit_transaction:
                await pipe.unwatch()
                return result
            try:
                await pipe.execute()
            except WatchError:
                continue
            return result
    raise StorageError(f"gave up after {_MAX_RETRIES} conflicting writes on {keys[0]}")


class RedisLocationStore:
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "sipline:",
        max_bindings: int = DEFAULT_MAX_BINDINGS,
    ) -> None:
        if max_bindings < 1:
            raise UsageError("max_bindings must be at least 1")
        self.client = client
        self.prefix = prefix
        self.max_bindings = max_bindings
        self._seq = f"{prefix}loc:seq"
        self._idx = f"{prefix}loc:idx"

    def _keys(self, aor: str) -> tuple[str, str]:
        return f"{self.prefix}loc:b:{aor}", f"{self.prefix}loc:v:{aor}"

    async def _read(self, aor: str) -> tuple[dict[str, Binding], int]:
        bkey, vkey = self._keys(aor)
        pipe: Any
        async with self.client.pipeline(transaction=True) as pipe:
            raw, version = await pipe.hgetall(bkey).get(vkey).execute()
        return {c: binding_from_json(v) for c, v in raw.items()}, int(version or 0)

    async def _mutate(
        self,
        aor: str,
        compute: Callable[[dict[str, Binding], int], dict[str, Binding]],
    ) -> tuple[dict[str, Binding], dict[str, Binding], int]:
        """Atomically replace the AOR's bindings with ``compute(stored, version)``.

        Returns ``(before, after, version_after)``; no write when nothing changed.
        """
        bkey, vkey = self._keys(aor)

        async def body(pipe: Any) -> tuple[dict[str, Binding], dict[str, Binding], int]:
            raw = await pipe.hgetall(bkey)
            version = int(await pipe.get(vkey) or 0)
            stored = {c: binding_from_json(v) for c, v in raw.items()}
            new = compute(stored, version)
            if new == stored:
                return stored, new, version
            # INCR outside the transaction: it only hands out unique numbers, and a
            # number wasted by a lost race is harmless.
            version = int(await self.client.incr(self._seq)) if new else 0
            pipe.multi()
            pipe.delete(bkey)
            if new:
                pipe.hset(bkey, mapping={c: binding_to_json(b) for c, b in new.items()})
                pipe.set(vkey, version)
                pipe.zadd(self._idx, {aor: min(b.expires_at for b in new.values())})
            else:
                pipe.delete(vkey)
                pipe.zrem(self._idx, aor)
            return stored, new, version

        return await _optimistic(self.client, (bkey, vkey), body)

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        return list((await self.snapshot(aor, now)).bindings)

    async def snapshot(self, aor: str, now: float) -> BindingSet:
        stored, version = await self._read(aor)
        alive = sort_bindings(b for b in stored.values() if b.alive(now))
        return BindingSet(aor, tuple(alive), version)

    async def apply(self, aor: str, changes: BindingChanges, now: float) -> BindingSet:
        def compute(stored: dict[str, Binding], version: int) -> dict[str, Binding]:
            if changes.expected_version is not None and changes.expected_version != version:
                raise StaleBindingSet(aor, changes.expected_version, version)
            return merge_bindings(aor, stored.values(), changes, now, self.max_bindings)

        _, after, version = await self._mutate(aor, compute)
        return BindingSet(aor, tuple(sort_bindings(after.values())), version)

    async def upsert(self, binding: Binding, now: float | None = None) -> None:
        at = binding.updated_at if now is None else now
        await self.apply(binding.aor, BindingChanges(upsert=(binding,)), at)

    async def remove(self, aor: str, contact: str) -> bool:
        before, after, _ = await self._mutate(
            aor, lambda stored, _v: {c: b for c, b in stored.items() if c != contact}
        )
        return len(before) != len(after)

    async def remove_all(self, aor: str) -> int:
        before, _, _ = await self._mutate(aor, lambda stored, _v: {})
        return len(before)

    async def purge_expired(self, now: float) -> int:
        purged = 0
        aors = [str(a) for a in await self.client.zrangebyscore(self._idx, "-inf", now)]
        for aor in aors:
            before, after, _ = await self._mutate(
                aor, lambda stored, _v: {c: b for c, b in stored.items() if b.alive(now)}
            )
            purged += len(before) - len(after)
        return purged

    async def _everything(self) -> list[Binding]:
        aors = [str(a) for a in await self.client.zrange(self._idx, 0, -1)]
        async with self.client.pipeline(transaction=False) as pipe:
            for aor in aors:
                pipe.hvals(self._keys(aor)[0])
            groups = await pipe.execute()
        return [binding_from_json(v) for group in groups for v in group]

    async def all(self, now: float) -> list[Binding]:
        alive = [b for b in await self._everything() if b.alive(now)]
        return sorted(alive, key=lambda b: (b.aor, binding_order(b)))

    async def count(self, now: float | None = None) -> int:
        if now is not None:
            return sum(1 for b in await self._everything() if b.alive(now))
        aors = [str(a) for a in await self.client.zrange(self._idx, 0, -1)]
        async with self.client.pipeline(transaction=False) as pipe:
            for aor in aors:
                pipe.hlen(self._keys(aor)[0])
            return sum(int(n) for n in await pipe.execute())


class RedisSubscriberStore:
    def __init__(self, client: aioredis.Redis, prefix: str = "sipline:") -> None:
        self.client = client
        self._subs = f"{prefix}sub"
        self._realms = f"{prefix}sub:realm"

    @staticmethod
    def _field(a: str, b: str) -> str:
        # JSON keeps the pair unambiguous whatever characters the names contain.
        return json.dumps([a, b])

    async def _change(
        self,
        username: str,
        domain: str,
        change: Callable[[Subscriber | None], Subscriber | None],
    ) -> tuple[Subscriber | None, Subscriber | None]:
        """Atomically replace a subscriber (None = absent) keeping the realm index true."""
        field = self._field(username, domain)

        async def body(pipe: Any) -> tuple[Subscriber | None, Subscriber | None]:
            raw = await pipe.hget(self._subs, field)
            old = None if raw is None else subscriber_from_dict(json.loads(raw))
            new = change(old)
            if new is not None:
                owner = await pipe.hget(self._realms, self._field(new.username, new.realm))
                if owner is not None and owner != field:
                    raise SubscriberExists(f"{new.username} already exists in realm {new.realm}")
            pipe.multi()
            if old is not None:
                pipe.hdel(self._realms, self._field(old.username, old.realm))
            if new is None:
                pipe.hdel(self._subs, field)
            else:
                pipe.hset(self._subs, field, json.dumps(subscriber_to_dict(new)))
                pipe.hset(self._realms, self._field(new.username, new.realm), field)
            return old, new

        return await _optimistic(self.client, (self._subs, self._realms), body)

    async def add(self, subscriber: Subscriber) -> None:
        def change(old: Subscriber | None) -> Subscriber:
            if old is not None:
                raise SubscriberExists(f"{subscriber.username}@{subscriber.domain} already exists")
            return subscriber

        await self._change(subscriber.username, subscriber.domain, change)

    async def get(self, username: str, domain: str) -> Subscriber | None:
        raw = await self.client.hget(self._subs, self._field(username, domain))
        return None if raw is None else subscriber_from_dict(json.loads(raw))

    async def list(self, domain: str | None = None) -> Sequence[Subscriber]:
        subs = [subscriber_from_dict(json.loads(v)) for v in await self.client.hvals(self._subs)]
        return sorted(
            (s for s in subs if domain is None or s.domain == domain),
            key=lambda s: (s.domain, s.username),
        )

    async def remove(self, username: str, domain: str) -> bool:
        old, _ = await self._change(username, domain, lambda old: None)
        return old is not None

    async def _update(
        self, username: str, domain: str, change: Callable[[Subscriber], Subscriber]
    ) -> Subscriber:
        def checked(old: Subscriber | None) -> Subscriber:
            if old is None:
                raise SubscriberNotFound(f"no subscriber {username}@{domain}")
            return change(old)

        _, new = await self._change(username, domain, checked)
        assert new is not None
        return new

    async def set_password(
        self, username: str, domain: str, password: str, realm: str | None = None
    ) -> Subscriber:
        def change(old: Subscriber) -> Subscriber:
            return make_subscriber(
                username,
                domain,
                password,
                realm or old.realm,
                display_name=old.display_name,
                enabled=old.enabled,
                created_at=old.created_at,
            )

        return await self._update(username, domain, change)

    async def set_enabled(self, username: str, domain: str, enabled: bool) -> Subscriber:
        return await self._update(username, domain, lambda old: replace(old, enabled=enabled))

    async def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        owner = await self.client.hget(self._realms, self._field(username, realm))
        sub = None
        if owner is not None:
            raw = await self.client.hget(self._subs, owner)
            sub = None if raw is None else subscriber_from_dict(json.loads(raw))
        return ha1_of(sub, algorithm)


# Scripts run atomically inside Redis: no other command interleaves with them.
_ACQUIRE = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
return 1
"""

_RELEASE = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0') - 1
if v <= 0 then redis.call('DEL', KEYS[1]) return 0 end
redis.call('SET', KEYS[1], v)
return v
"""

# Same arithmetic as _logic.refill(); %.17g keeps doubles exact across the round trip.
_TAKE = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens, updated = tonumber(b[1]), tonumber(b[2])
if tokens == nil or updated == nil then tokens, updated = burst, now end
local elapsed = now - updated
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
if now > updated then updated = now end
local allowed = 0
if tokens >= 1 then tokens = tokens - 1 allowed = 1 end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'u', string.format('%.17g', updated))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return allowed
"""


class RedisCounterStore:
    def __init__(self, client: aioredis.Redis, prefix: str = "sipline:") -> None:
        self.client = client
        self.prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._take = client.register_script(_TAKE)

    async def acquire(self, key: str, limit: int) -> bool:
        return bool(await self._acquire(keys=[f"{self.prefix}cnt:{key}"], args=[limit]))

    async def release(self, key: str) -> int:
        return int(await self._release(keys=[f"{self.prefix}cnt:{key}"]))

    async def value(self, key: str) -> int:
        return int(await self.client.get(f"{self.prefix}cnt:{key}") or 0)

    async def take(self, key: str, rate: float, burst: float, now: float) -> bool:
        if rate <= 0 or burst <= 0:
            raise UsageError("token bucket needs a positive rate and burst")
        # Idle long enough to refill completely == absent, so let Redis drop it then.
        idle_ms = math.ceil(burst / rate * 1000) + 1000
        args: list[str | int] = [repr(float(rate)), repr(float(burst)), repr(float(now)), idle_ms]
        return bool(await self._take(keys=[f"{self.prefix}bkt:{key}"], args=args))

    async def reset(self) -> None:
        for pattern in (f"{self.prefix}cnt:*", f"{self.prefix}bkt:*"):
            keys = [k async for k in self.client.scan_iter(match=pattern, count=500)]
            if keys:
                await self.client.delete(*keys)
