"""BucketedPresenceStore (adapters/redis/bucketed_presence.py) with no server: a fake client
that runs a small model of presence_apply.lua and records every call. What the contract
suite on the cluster cannot show: a user's arrivals and departures reach its bucket's
store in the order made, whatever else is under way; a failure in one bucket loses no
change taken in the others; statuses come in the order asked; no more than CONCURRENCY
calls are in flight."""
from __future__ import annotations

import asyncio
import random
import uuid
import zlib

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.redis import bucketed_presence
from adapters.redis.bucketed_presence import BucketedPresenceStore
from adapters.redis.buckets import Buckets
from adapters.redis.support import lua
from domain.errors import ServiceUnavailable
from domain.presence import PresenceStatus

BUCKETS = Buckets(16)


def version_of(user: str) -> int:
    return zlib.crc32(user.encode()) % 1000 + 1


class _Pipeline:
    def __init__(self, client: _Client):
        self._client = client
        self._keys: list[str] = []

    async def __aenter__(self) -> _Pipeline:
        return self

    async def __aexit__(self, *exc) -> None:
        return None

    def hmget(self, key: str, *fields) -> None:
        self._keys.append(key)

    async def execute(self) -> list:
        await self._client.enter(self._keys[0])
        try:
            return [[b"1", None, str(version_of(key.rsplit(":", 1)[1])).encode()] for key in self._keys]
        finally:
            self._client.leave()


class _Client:
    """presence_apply.lua as a model (a user is online once any incarnation holds it),
    expire as a recorder; `failing`: the bucket tags whose calls fail as a lost connection."""

    def __init__(self):
        self.applied: list[tuple[str, str]] = []  # (kind, user), in the order the scripts ran
        self.failing: set[str] = set()
        self.expiries: dict[str, list] = {}  # tag -> the reply of the bucket's next expire
        self.in_flight = self.most_in_flight = 0
        self._online: set[str] = set()

    def register_script(self, script: str):
        return self._apply if script == lua("presence_apply.lua") else self._expire

    def pipeline(self, transaction: bool = True) -> _Pipeline:
        return _Pipeline(self)

    async def enter(self, key: str) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.001)
        if key.split(":", 1)[0] in self.failing:
            self.leave()
            raise RedisConnectionError("lost")

    def leave(self) -> None:
        self.in_flight -= 1

    async def _apply(self, keys, args):
        await self.enter(keys[0])
        try:
            answer: list = [b"ok"]
            i, index = 5, 0
            while i < len(args):
                kind, count = args[i], int(args[i + 1])
                for user in args[i + 2:i + 2 + count]:
                    self.applied.append((kind, user))
                    if kind == "a" and user not in self._online:
                        self._online.add(user)
                        answer += [index, user.encode(), 1, b""]
                    elif kind == "l":
                        self._online.discard(user)
                i, index = i + 2 + count, index + 1
            return answer
        finally:
            self.leave()

    async def _expire(self, keys, args):
        await self.enter(keys[0])
        try:
            return self.expiries.pop(keys[0].split(":", 1)[0], [0])
        finally:
            self.leave()


def users_in(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def store_on(client: _Client) -> BucketedPresenceStore:
    return BucketedPresenceStore(client, 1.0, BUCKETS, gateway_id="gw")  # type: ignore[arg-type]


@pytest.mark.gen_test
async def test_a_users_arrivals_and_departures_reach_its_bucket_in_the_order_made():
    client = _Client()
    store = store_on(client)
    users = users_in(40)
    calls = []
    for user in users:  # fired without waiting, interleaved with batches over every bucket
        calls += [store.arrived([user]), store.left([user]), store.arrived(users[:20]), store.arrived([user])]
    calls.append(store.left(users[:10]))
    await asyncio.gather(*calls)
    for user in users:
        said = [kind for kind, whom in client.applied if whom == user]
        made = []
        for other in users:
            made += ["a", "l"] if other == user else []
            made += ["a"] if user in users[:20] else []
            made += ["a"] if other == user else []
        made += ["l"] if user in users[:10] else []
        assert said == made, user


@pytest.mark.gen_test
async def test_an_arrival_that_failed_in_one_bucket_loses_no_change_taken_in_the_others():
    client = _Client()
    store = store_on(client)
    users = users_in(30, seed=1)
    lost = BUCKETS.of(users[0])
    client.failing.add(BUCKETS.tag(lost))
    with pytest.raises(ServiceUnavailable):
        await store.arrived(users)
    taken = sorted(user for user in users if BUCKETS.of(user) != lost)
    assert sorted(s.user_id for s in await store.expire()) == taken  # answered once, by the next expire
    assert await store.expire() == []
    client.failing.clear()
    changed = await store.arrived(users)  # told again, as PresenceTracker does
    assert sorted(s.user_id for s in changed) == sorted(user for user in users if BUCKETS.of(user) == lost)


@pytest.mark.gen_test
async def test_expire_answers_the_buckets_that_answered_and_fails_only_when_none_did():
    client = _Client()
    store = store_on(client)
    down, up = BUCKETS.tag(0), BUCKETS.tag(1)
    client.failing.add(down)
    client.expiries[up] = [0, b"someone", 4, b"1700000000"]
    assert await store.expire() == [PresenceStatus("someone", False, 1700000000, 4)]
    client.failing = {BUCKETS.tag(bucket) for bucket in range(BUCKETS.count)}
    with pytest.raises(ServiceUnavailable):
        await store.expire()


@pytest.mark.gen_test
async def test_expire_looks_in_every_bucket_and_statuses_come_in_the_order_asked():
    client = _Client()
    store = store_on(client)
    await store.expire()
    assert sorted(store._stores) == list(range(BUCKETS.count))  # never written in: none renewed
    assert store._written == set()
    users = users_in(50, seed=2)
    asked = users + users[:5]
    assert [(s.user_id, s.version) for s in await store.statuses(asked)] == [(u, version_of(u)) for u in asked]
    assert await store.statuses([]) == []


@pytest.mark.gen_test
async def test_no_more_than_its_bound_of_calls_are_in_flight(monkeypatch):
    monkeypatch.setattr(bucketed_presence, "CONCURRENCY", 4)
    client = _Client()
    store = BucketedPresenceStore(client, 1.0, Buckets(256), gateway_id="gw")  # type: ignore[arg-type]
    users = users_in(300, seed=3)
    await asyncio.gather(store.arrived(users), store.expire(), store.statuses(users))
    assert 1 < client.most_in_flight <= 4
    await store.close()
    assert client.most_in_flight <= 4 and client.in_flight == 0
