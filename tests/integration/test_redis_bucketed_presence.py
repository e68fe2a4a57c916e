"""BucketedPresenceStore (a RedisPresenceStore per user bucket, what the container gives a
cluster) with several gateways on the local Redis Cluster: what spreading presence over the
buckets could break that the contract suite (tests/contract/test_presence.py) does not
show - a gateway's leases in every bucket it wrote in, and the sweep of a dead gateway's
users by a gateway that never served their buckets."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from adapters.redis.bucketed_presence import BucketedPresenceStore
from adapters.redis.buckets import Buckets

pytestmark = pytest.mark.redis

GRACE, LEASE = 0.3, 0.6
BUCKETS = Buckets()  # the default count, as deployed


def ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


def gateway(target, name: str) -> BucketedPresenceStore:
    return BucketedPresenceStore(target.client, GRACE, BUCKETS, gateway_id=name, lease=LEASE)


async def offline(stores, count: int, timeout: float = 15.0) -> list:
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


@pytest.mark.gen_test(timeout=30)
async def test_a_dead_gateways_users_go_offline_through_one_that_never_served_their_buckets(
        redis_cluster_target):
    """As after kill -9: no close(), no more renewals. The other gateway wrote in none of
    those buckets, yet its expire() sweeps every one."""
    dead, alive = gateway(redis_cluster_target, "dead"), gateway(redis_cluster_target, "alive")
    users = ids(40)
    await dead.arrived(users)
    assert len({BUCKETS.of(user) for user in users}) > 20
    renewing = asyncio.ensure_future(alive.keep_alive())
    started = time.monotonic()
    try:
        changes = await offline([alive], len(users))
    finally:
        renewing.cancel()
    assert time.monotonic() - started >= LEASE  # not before the leases ran out
    assert sorted(s.user_id for s in changes) == sorted(users)
    assert all(not s.online and s.version == 2 and s.last_seen is not None for s in changes)
    assert not alive._written  # it never wrote in any bucket


@pytest.mark.gen_test(timeout=30)
async def test_a_gateway_that_renews_keeps_its_users_in_every_bucket(redis_cluster_target):
    one, other = gateway(redis_cluster_target, "one"), gateway(redis_cluster_target, "other")
    users = ids(30)
    await one.arrived(users)
    renewing = asyncio.ensure_future(one.keep_alive())
    try:
        deadline = time.monotonic() + 3 * LEASE + GRACE
        while time.monotonic() < deadline:
            assert await other.expire() == []
            await asyncio.sleep(0.05)
    finally:
        renewing.cancel()
    assert all(s.online for s in await other.statuses(users))


@pytest.mark.gen_test(timeout=30)
async def test_a_user_on_two_gateways_stays_online_until_it_left_both(redis_cluster_target):
    one, two = gateway(redis_cluster_target, "one"), gateway(redis_cluster_target, "two")
    users = ids(10)
    assert len(await one.arrived(users)) == 10
    assert await two.arrived(users) == []  # online already
    await one.left(users)
    await asyncio.sleep(GRACE + 0.2)
    assert await one.expire() == [] and await two.expire() == []
    assert all(s.online for s in await one.statuses(users))
    await two.left(users)
    changes = await offline([one, two], 10)
    assert sorted((s.user_id, s.online, s.version) for s in changes) == sorted((u, False, 2) for u in users)


@pytest.mark.gen_test(timeout=30)
async def test_a_swept_gateway_says_again_who_is_here_in_each_bucket_when_it_renews(redis_cluster_target):
    back, sweeper = gateway(redis_cluster_target, "back"), gateway(redis_cluster_target, "sweeper")
    users = ids(12)
    await back.arrived(users)
    assert len(await offline([sweeper], len(users))) == len(users)
    renewing = asyncio.ensure_future(back.keep_alive())
    await asyncio.sleep(0.2)
    renewing.cancel()
    changes = await back.expire()
    assert sorted((s.user_id, s.online, s.version) for s in changes) == sorted((u, True, 3) for u in users)
    assert all(s.online for s in await sweeper.statuses(users))


@pytest.mark.gen_test(timeout=30)
async def test_arrivals_and_departures_land_in_the_order_made(redis_cluster_target):
    one = gateway(redis_cluster_target, "one")
    users = ids(20)
    calls = []
    for user in users:
        calls += [one.arrived([user]), one.left([user]), one.arrived([user])]
    calls += [one.left(users[:10])]
    await asyncio.gather(*calls)
    changes = await offline([one], 10)
    assert sorted(s.user_id for s in changes) == sorted(users[:10])
    assert [s.online for s in await one.statuses(users[10:])] == [True] * 10


@pytest.mark.gen_test(timeout=30)
async def test_closing_takes_the_gateways_users_off_in_every_bucket_it_wrote_in(redis_cluster_target):
    one, other = gateway(redis_cluster_target, "one"), gateway(redis_cluster_target, "other")
    users = ids(25)
    await one.arrived(users)
    await one.close()
    for bucket in one._written:  # no lease left behind
        store = one.store(bucket)
        assert await redis_cluster_target.client.zscore(store.keys.gateways, store.name) is None
    assert len(await offline([other], len(users))) == len(users)
    assert await one.arrived(ids(1)) == []  # closed: nothing more is written
