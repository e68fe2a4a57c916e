"""The PresenceStore port (application/ports.py), over its adapters: memory (the embedded
mode's) and Redis (production: one Redis; a cluster, with one store in one slot and with
the store per user bucket the container gives it). All run on the real clock (Redis reads
its own) with a short grace, and the tests poll expire() with a deadline rather than
timing anything."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from adapters.clock import SystemClock
from adapters.memory.presence import MemoryPresenceStore
from adapters.redis.bucketed_presence import BucketedPresenceStore
from adapters.redis.buckets import Buckets
from adapters.redis.layout import SINGLE
from adapters.redis.presence_store import RedisPresenceStore

GRACE = 0.4


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("redis-cluster", marks=pytest.mark.redis),
                        pytest.param("redis-cluster-bucketed", marks=pytest.mark.redis)])
def store(request, io_loop):
    if request.param == "memory":
        yield MemoryPresenceStore(SystemClock(), GRACE)
        return
    redis_store: RedisPresenceStore | BucketedPresenceStore
    if request.param == "redis":
        redis_store = RedisPresenceStore(request.getfixturevalue("redis_client"), GRACE, gateway_id="contract",
                                         layout=SINGLE)
    elif request.param == "redis-cluster":  # one store in one slot (`{presence}`)
        target = request.getfixturevalue("redis_cluster_target")
        redis_store = RedisPresenceStore(target.client, GRACE, gateway_id="contract", layout=target.layout)
    else:  # what the container gives a cluster: a store per user bucket
        target = request.getfixturevalue("redis_cluster_target")
        redis_store = BucketedPresenceStore(target.client, GRACE, Buckets(), gateway_id="contract")
    yield redis_store
    # Its writer done before the client closes: no connection left in use behind it.
    io_loop.run_sync(redis_store.close)


def ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


async def expired(store, count: int, timeout: float = 5.0) -> list:
    """What expire() answers until `count` changes came (then once more: nothing else may come)."""
    deadline = time.monotonic() + timeout
    changes: list = []
    while len(changes) < count:
        assert time.monotonic() < deadline, f"only {changes} expired in time"
        changes += await store.expire()
        await asyncio.sleep(0.05)
    changes += await store.expire()
    return changes


@pytest.mark.gen_test(timeout=20)
async def test_a_user_never_seen_is_offline_at_version_0(store):
    a, b = ids(2)
    assert [(s.user_id, s.online, s.last_seen, s.version) for s in await store.statuses([a, b])] == [
        (a, False, None, 0), (b, False, None, 0)]
    assert await store.statuses([]) == []
    assert await store.expire() == []


@pytest.mark.gen_test(timeout=20)
async def test_arriving_makes_a_user_online_under_a_new_version(store):
    a, b = ids(2)
    changed = await store.arrived([a, b])
    assert sorted((s.user_id, s.online, s.last_seen, s.version) for s in changed) == sorted(
        [(a, True, None, 1), (b, True, None, 1)])
    assert [(s.user_id, s.online, s.version) for s in await store.statuses([b, a])] == [(b, True, 1), (a, True, 1)]
    assert await store.arrived([]) == []


@pytest.mark.gen_test(timeout=20)
async def test_leaving_keeps_the_user_online_for_the_grace_then_offline_once(store):
    a, b = ids(2)
    await store.arrived([a, b])
    before = int(time.time())
    await store.left([a])
    (status,) = await store.statuses([a])
    assert status.online and status.version == 1  # within its grace: no change yet
    changes = await expired(store, 1)
    assert [(s.user_id, s.online, s.version) for s in changes] == [(a, False, 2)]
    assert before <= changes[0].last_seen <= int(time.time())
    assert await store.statuses([a, b]) == [changes[0], (await store.statuses([b]))[0]]
    assert (await store.statuses([b]))[0].online
    assert await store.expire() == []  # answered once


@pytest.mark.gen_test(timeout=20)
async def test_a_reload_within_the_grace_is_no_change_at_all(store):
    (a,) = ids(1)
    await store.arrived([a])
    await store.left([a])
    assert await store.arrived([a]) == []
    await asyncio.sleep(GRACE + 0.2)
    assert await store.expire() == []
    (status,) = await store.statuses([a])
    assert (status.online, status.version) == (True, 1)


@pytest.mark.gen_test(timeout=20)
async def test_every_change_takes_a_higher_version(store):
    (a,) = ids(1)
    versions = [s.version for s in await store.arrived([a])]
    await store.left([a])
    versions += [s.version for s in await expired(store, 1)]
    versions += [s.version for s in await store.arrived([a])]
    versions.append((await store.touch(a)).version)
    assert versions == sorted(versions) and len(set(versions)) == 4
    (status,) = await store.statuses([a])
    assert status.online and status.version == versions[-1]


@pytest.mark.gen_test(timeout=20)
async def test_coming_back_after_the_grace_is_a_change_and_keeps_last_seen(store):
    (a,) = ids(1)
    await store.arrived([a])
    await store.left([a])
    (offline,) = await expired(store, 1)
    (online,) = await store.arrived([a])
    assert online.online and online.version == offline.version + 1 and online.last_seen == offline.last_seen


@pytest.mark.gen_test(timeout=20)
async def test_touch_takes_a_new_version_without_changing_the_status(store):
    a, stranger = ids(2)
    await store.arrived([a])
    touched = await store.touch(a)
    assert (touched.user_id, touched.online, touched.last_seen, touched.version) == (a, True, None, 2)
    assert await store.statuses([a]) == [touched]
    never_seen = await store.touch(stranger)
    assert (never_seen.online, never_seen.last_seen, never_seen.version) == (False, None, 1)


@pytest.mark.gen_test(timeout=20)
async def test_closing_makes_every_user_of_the_gateway_leave(store):
    users = ids(3)
    await store.arrived(users)
    await store.close()
    changes = await expired(store, 3)
    assert sorted(s.user_id for s in changes) == sorted(users)
    assert all(not s.online for s in changes)
