"""RedisPresenceStore with several gateways sharing one Redis (and the cluster): a user on two gateways,
a gateway that stops renewing its lease (as when killed with kill -9), expire() called by
several gateways at once, a gateway that comes back after it was swept, a big sweep."""
from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace

import pytest

from adapters.redis import presence_store
from adapters.redis.layout import SINGLE
from adapters.redis.presence_store import RedisPresenceStore
from domain.errors import ServiceUnavailable
from tests.services.redis import make_client

pytestmark = pytest.mark.redis

GRACE, LEASE = 0.3, 0.6


def ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


def gateway(target, name: str, lease: float = LEASE, grace: float = GRACE) -> RedisPresenceStore:
    """A gateway's store on `target` (redis_target: one Redis or the cluster, with its layout)."""
    return RedisPresenceStore(target.client, grace, gateway_id=name, lease=lease, layout=target.layout)


async def offline(stores, count: int, timeout: float = 10.0) -> list:
    """What the stores' expire() answer until `count` changes came, and once more after."""
    deadline = time.monotonic() + timeout
    changes: list = []
    while len(changes) < count:
        assert time.monotonic() < deadline, f"only {len(changes)} of {count} changes in time"
        for store in stores:
            changes += await store.expire()
        await asyncio.sleep(0.05)
    for store in stores:
        changes += await store.expire()
    return changes


async def run_for(coroutine_function, seconds: float) -> None:
    task = asyncio.ensure_future(coroutine_function())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.gen_test(timeout=20)
async def test_a_user_on_two_gateways_stays_online_until_it_left_both(redis_target):
    one, two = gateway(redis_target, "one"), gateway(redis_target, "two")
    (a,) = ids(1)
    assert [s.version for s in await one.arrived([a])] == [1]
    assert await two.arrived([a]) == []  # online already
    await one.left([a])
    await asyncio.sleep(GRACE + 0.2)
    assert await one.expire() == [] and await two.expire() == []
    assert [(s.online, s.version) for s in await one.statuses([a])] == [(True, 1)]
    await two.left([a])
    changes = await offline([one, two], 1)
    assert [(s.user_id, s.online, s.version) for s in changes] == [(a, False, 2)]


@pytest.mark.gen_test(timeout=20)
async def test_the_users_of_a_gateway_that_stops_renewing_go_offline_through_another(redis_target):
    """As after kill -9: no close(), no more renewals; the lease runs out, another gateway's
    expire() takes its users off, and after the grace they are offline."""
    dead, alive = gateway(redis_target, "dead"), gateway(redis_target, "alive")
    users, elsewhere = ids(3), ids(1)
    await dead.arrived(users + elsewhere)
    await alive.arrived(elsewhere)  # also has a socket on the live gateway
    renewing = asyncio.ensure_future(alive.keep_alive())
    started = time.monotonic()
    try:
        changes = await offline([alive], 3)
    finally:
        renewing.cancel()
    took = time.monotonic() - started
    assert sorted(s.user_id for s in changes) == sorted(users)
    assert all(not s.online and s.version == 2 and s.last_seen is not None for s in changes)
    assert took >= LEASE  # not before the lease ran out
    assert [s.online for s in await alive.statuses(elsewhere)] == [True]
    assert await redis_target.client.zscore(dead.keys.gateways, dead.name) is None
    assert await redis_target.client.exists(dead.keys.gateway_sets + dead.name) == 0  # nothing left behind


@pytest.mark.gen_test(timeout=20)
async def test_a_gateway_that_renews_its_lease_keeps_its_users(redis_target):
    one, other = gateway(redis_target, "one"), gateway(redis_target, "other")
    users = ids(2)
    await one.arrived(users)
    renewing = asyncio.ensure_future(one.keep_alive())
    try:
        deadline = time.monotonic() + 3 * LEASE + GRACE
        while time.monotonic() < deadline:
            assert await other.expire() == []
            await asyncio.sleep(0.05)
    finally:
        renewing.cancel()
    assert [s.online for s in await other.statuses(users)] == [True, True]


@pytest.mark.gen_test(timeout=30)
async def test_each_change_is_answered_to_one_of_the_gateways_expiring_at_once(redis_target):
    stores = [gateway(redis_target, f"gw{i}") for i in range(3)]
    users = ids(60)
    for index, user in enumerate(users):
        await stores[index % 3].arrived([user])
    for index, store in enumerate(stores):
        await store.left(users[index::3])
    deadline = time.monotonic() + 10
    changes: list = []
    while len(changes) < len(users):
        assert time.monotonic() < deadline
        for answered in await asyncio.gather(*(store.expire() for store in stores for _ in range(3))):
            changes += answered
    await asyncio.sleep(0.05)
    for answered in await asyncio.gather(*(store.expire() for store in stores)):
        changes += answered
    assert sorted(s.user_id for s in changes) == sorted(users)  # each once
    assert all(not s.online and s.version == 2 for s in changes)


@pytest.mark.gen_test(timeout=30)
async def test_a_swept_gateway_says_again_who_is_here_when_it_renews(redis_target):
    """A gateway cut off (or stopped) for longer than its lease was taken for dead; when it
    renews again, its users come back online under a new version, answered by its expire()."""
    back, sweeper = gateway(redis_target, "back"), gateway(redis_target, "sweeper")
    users = ids(2)
    await back.arrived(users)
    first_name = back.name
    assert len(await offline([sweeper], 2)) == 2
    await run_for(back.keep_alive, 0.1)
    assert back.name != first_name  # a new name: the old one's sweep never races with it
    changes = await back.expire()
    assert sorted((s.user_id, s.online, s.version) for s in changes) == sorted((u, True, 3) for u in users)
    assert [s.online for s in await sweeper.statuses(users)] == [True, True]
    assert await back.expire() == []


@pytest.mark.gen_test(timeout=30)
async def test_a_swept_gateway_finds_out_at_its_next_arrival_and_loses_no_one(redis_target):
    back, sweeper = gateway(redis_target, "back"), gateway(redis_target, "sweeper")
    earlier, later = ids(1), ids(1)
    await back.arrived(earlier)
    assert len(await offline([sweeper], 1)) == 1
    (came,) = await back.arrived(later)
    assert (came.user_id, came.online, came.version) == (later[0], True, 1)
    assert [(s.user_id, s.online) for s in await back.expire()] == [(earlier[0], True)]
    assert [s.online for s in await sweeper.statuses(earlier + later)] == [True, True]
    # and its users stay online while it renews
    renewing = asyncio.ensure_future(back.keep_alive())
    try:
        await asyncio.sleep(LEASE + GRACE + 0.2)
        assert await sweeper.expire() == []
    finally:
        renewing.cancel()


@pytest.mark.gen_test(timeout=30)
async def test_a_big_dead_gateway_is_swept_in_short_steps_by_one_expire(redis_target, monkeypatch):
    monkeypatch.setattr(presence_store, "EXPIRE_LIMIT", 100)
    dead, alive = gateway(redis_target, "dead", grace=0.0), gateway(redis_target, "alive", grace=0.0)
    users = ids(450)
    await dead.arrived(users)
    await asyncio.sleep(LEASE + 0.1)
    changes = await alive.expire()  # five steps of at most 100, in one call
    assert sorted(s.user_id for s in changes) == sorted(users)
    assert await alive.expire() == []


@pytest.mark.gen_test(timeout=20)
async def test_arrivals_and_departures_of_one_gateway_land_in_the_order_made(redis_target):
    """Sent together, a close may not overtake its own open: fired without waiting, the
    last word about each user wins."""
    one = gateway(redis_target, "one")
    users = ids(20)
    calls = []
    for user in users:
        calls += [one.arrived([user]), one.left([user]), one.arrived([user])]
    calls += [one.left(users[:10])]
    await asyncio.gather(*calls)
    changes = await offline([one], 10)
    assert sorted(s.user_id for s in changes) == sorted(users[:10])
    assert [s.online for s in await one.statuses(users[10:])] == [True] * 10


@pytest.mark.gen_test(timeout=20)
async def test_a_closed_gateway_leaves_nothing_behind(redis_target):
    one, other = gateway(redis_target, "one"), gateway(redis_target, "other")
    users = ids(2)
    await one.arrived(users)
    await one.close()
    assert await redis_target.client.zscore(one.keys.gateways, one.name) is None
    assert len(await offline([other], 2)) == 2
    assert await one.arrived(ids(1)) == []  # closed: nothing more is written


@pytest.mark.gen_test(timeout=30)
async def test_writes_that_failed_are_made_good_at_the_next_renewal(private_redis):
    client = make_client(private_redis.url)
    try:
        one = gateway(SimpleNamespace(client=client, layout=SINGLE), "one", lease=2.0)
        stays, goes, comes = ids(3)
        await one.arrived([stays, goes])
        private_redis.stop()
        with pytest.raises(ServiceUnavailable):
            await one.left([goes])
        with pytest.raises(ServiceUnavailable):
            await one.arrived([comes])
        private_redis.start()  # its data kept (append-only file)
        await run_for(one.keep_alive, 0.2)
        (came,) = await one.expire()  # the arrival nobody could answer, answered now
        assert (came.user_id, came.online) == (comes, True)
        changes = await offline([one], 1)
        assert [(s.user_id, s.online) for s in changes] == [(goes, False)]
        assert [s.online for s in await one.statuses([stays, goes, comes])] == [True, False, True]
    finally:
        await client.aclose()
