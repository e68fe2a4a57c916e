"""RedisPresenceStore with several gateways sharing one Redis (and the cluster), what only
this adapter shows: expire() called by several gateways at once, a swept gateway that finds
out at its next arrival, a big sweep in short steps, writes that failed made good. What
every Redis adapter must keep with several gateways (two gateways, kill -9, renewals, a
swept gateway renewing, order, close) is tests/contract/test_presence_gateways.py."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from adapters.redis import presence_store
from adapters.redis.layout import SINGLE
from adapters.redis.presence_store import RedisPresenceStore
from domain.errors import ServiceUnavailable
from tests.services.presence_gateways import ids, offline, run_for
from tests.services.redis import make_client

pytestmark = pytest.mark.redis

GRACE, LEASE = 0.3, 0.6


def gateway(target, name: str, lease: float = LEASE, grace: float = GRACE) -> RedisPresenceStore:
    """A gateway's store on `target` (redis_target: one Redis or the cluster, with its layout)."""
    return RedisPresenceStore(target.client, grace, gateway_id=name, lease=lease, layout=target.layout)


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
