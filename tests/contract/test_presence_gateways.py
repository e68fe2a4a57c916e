"""The PresenceStore port with several gateways sharing one presence, over the Redis
adapters: RedisPresenceStore on one Redis and on a cluster (one slot), and
BucketedPresenceStore (a store per user bucket, what the container gives a cluster).
What a gateway's lease and sweep must keep whatever the layout: a user on two gateways,
a gateway killed (no close, no renewal), one that renews, one that was swept and comes
back, the order of one gateway's writes, a closed gateway. What only one adapter has
stays in its own file (tests/integration/test_redis_presence_store.py,
test_redis_bucketed_presence.py). The single-gateway rules are tests/contract/test_presence.py's."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from adapters.redis.bucketed_presence import BucketedPresenceStore
from adapters.redis.buckets import Buckets
from adapters.redis.presence_store import RedisPresenceStore
from tests.services.presence_gateways import ids, offline, run_for

pytestmark = pytest.mark.redis

GRACE, LEASE = 0.3, 0.6

Store = RedisPresenceStore | BucketedPresenceStore


@pytest.fixture(params=["redis", "redis-cluster", "redis-cluster-bucketed"])
def gateway(request, io_loop) -> Callable[[str], Store]:
    """Makes the store of a gateway called `name`; each one closed after the test (a
    writer left running would hold a connection of the client past its close)."""
    target = request.getfixturevalue("redis_cluster_target" if "cluster" in request.param else "redis_single_target")
    made: list[Store] = []

    def make(name: str) -> Store:
        store: Store
        if request.param == "redis-cluster-bucketed":
            store = BucketedPresenceStore(target.client, GRACE, Buckets(), gateway_id=name, lease=LEASE)
        else:
            store = RedisPresenceStore(target.client, GRACE, gateway_id=name, lease=LEASE, layout=target.layout)
        made.append(store)
        return store

    make.client = target.client  # type: ignore[attr-defined]
    yield make
    for store in made:
        io_loop.run_sync(store.close)


def leases(store: Store) -> list[tuple[RedisPresenceStore, str]]:
    """The gateway's leases: each (the store of one slot's keys, the gateway's name there)."""
    if isinstance(store, BucketedPresenceStore):
        return [lease for bucket in sorted(store._written) for lease in leases(store.store(bucket))]
    return [(store, store.name)]


async def left_behind(client, held: list[tuple[RedisPresenceStore, str]]) -> list[str]:
    """What is left of these leases: a name in the gateways' set, or the gateway's users' set."""
    found = []
    for store, name in held:
        if await client.zscore(store.keys.gateways, name) is not None:
            found.append(f"{name} in {store.keys.gateways}")
        if await client.exists(store.keys.gateway_sets + name):
            found.append(store.keys.gateway_sets + name)
    return found


@pytest.mark.gen_test(timeout=30)
async def test_a_user_on_two_gateways_stays_online_until_it_left_both(gateway):
    one, two = gateway("one"), gateway("two")
    users = ids(10)
    assert sorted((s.user_id, s.version) for s in await one.arrived(users)) == sorted((u, 1) for u in users)
    assert await two.arrived(users) == []  # online already
    await one.left(users)
    await asyncio.sleep(GRACE + 0.2)
    assert await one.expire() == [] and await two.expire() == []
    assert [(s.online, s.version) for s in await one.statuses(users)] == [(True, 1)] * 10
    await two.left(users)
    changes = await offline([one, two], 10)
    assert sorted((s.user_id, s.online, s.version) for s in changes) == sorted((u, False, 2) for u in users)


@pytest.mark.gen_test(timeout=30)
async def test_the_users_of_a_gateway_that_stops_renewing_go_offline_through_another(gateway):
    """As after kill -9: no close(), no more renewals; the lease runs out, another gateway's
    expire() takes its users off, and after the grace they are offline."""
    dead, alive = gateway("dead"), gateway("alive")
    users, elsewhere = ids(30), ids(1)
    await dead.arrived(users + elsewhere)
    await alive.arrived(elsewhere)  # also has a socket on the live gateway
    renewing = asyncio.ensure_future(alive.keep_alive())
    started = time.monotonic()
    try:
        changes = await offline([alive], len(users))
    finally:
        renewing.cancel()
    assert time.monotonic() - started >= LEASE  # not before the lease ran out
    assert sorted(s.user_id for s in changes) == sorted(users)
    assert all(not s.online and s.version == 2 and s.last_seen is not None for s in changes)
    assert [s.online for s in await alive.statuses(elsewhere)] == [True]
    assert await left_behind(gateway.client, leases(dead)) == []  # swept: nothing of it left


@pytest.mark.gen_test(timeout=30)
async def test_a_gateway_that_renews_its_lease_keeps_its_users(gateway):
    one, other = gateway("one"), gateway("other")
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
async def test_a_swept_gateway_says_again_who_is_here_when_it_renews(gateway):
    """A gateway cut off (or stopped) for longer than its lease was taken for dead; when it
    renews again, its users come back online under a new version, answered by its expire(),
    and under a new name (the old one's sweep never races with it)."""
    back, sweeper = gateway("back"), gateway("sweeper")
    users = ids(12)
    await back.arrived(users)
    first = {name for _, name in leases(back)}
    assert len(await offline([sweeper], len(users))) == len(users)
    await run_for(back.keep_alive, 0.2)
    assert not {name for _, name in leases(back)} & first
    changes = await back.expire()
    assert sorted((s.user_id, s.online, s.version) for s in changes) == sorted((u, True, 3) for u in users)
    assert all(s.online for s in await sweeper.statuses(users))
    assert await back.expire() == []


@pytest.mark.gen_test(timeout=30)
async def test_arrivals_and_departures_of_one_gateway_land_in_the_order_made(gateway):
    """Sent together, a close may not overtake its own open: fired without waiting, the
    last word about each user wins."""
    one = gateway("one")
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
async def test_a_closed_gateway_leaves_nothing_behind(gateway):
    one, other = gateway("one"), gateway("other")
    users = ids(25)
    await one.arrived(users)
    held = leases(one)
    await one.close()
    assert held and await left_behind(gateway.client, held) == []
    assert len(await offline([other], len(users))) == len(users)
    assert await one.arrived(ids(1)) == []  # closed: nothing more is written
