"""RedisConnectionCounter against a real Redis (one, and the cluster: one counter, or one per user
bucket as BucketedConnectionCounter makes them): a user's sockets counted over every
gateway, the counts of a gateway whose lease ran out (killed) no longer counting, and
a release that met an outage tried again later."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.redis.bucketed_sockets import BucketedConnectionCounter
from adapters.redis.buckets import Buckets
from adapters.redis.connection_counter import RedisConnectionCounter
from adapters.redis.layout import SINGLE
from tests.services.redis import make_client

pytestmark = pytest.mark.redis


@dataclass
class Counters:
    """Gateways' counters on one Redis, or on the cluster: one counter in one slot (`{ws}`),
    or the counter per user bucket that the container gives a cluster."""

    client: Any
    make: Callable[..., RedisConnectionCounter | BucketedConnectionCounter]


@pytest.fixture(params=["single", "cluster", "cluster-bucketed"])
def counters(request) -> Counters:
    if request.param == "cluster-bucketed":
        client = request.getfixturevalue("redis_cluster_target").client
        buckets = Buckets()
        return Counters(client, lambda limit, **kwargs: BucketedConnectionCounter(client, limit, buckets, **kwargs))
    if request.param == "single":
        client, layout = request.getfixturevalue("redis_client"), SINGLE
    else:
        target = request.getfixturevalue("redis_cluster_target")
        client, layout = target.client, target.layout
    return Counters(client, lambda limit, **kwargs: RedisConnectionCounter(client, limit, layout=layout, **kwargs))


@pytest.mark.gen_test
async def test_the_cap_counts_every_gateway(counters):
    one = counters.make(limit=3)
    two = counters.make(limit=3)
    assert await one.acquire("alice") and await one.acquire("alice") and await two.acquire("alice")
    assert not await two.acquire("alice")
    assert not await one.acquire("alice")
    assert await two.acquire("bob")
    await one.release("alice")
    assert await two.acquire("alice")
    assert not await one.acquire("alice")


@pytest.mark.gen_test
async def test_the_counts_go_when_the_last_socket_closes(counters):
    counter = counters.make(limit=3)
    await counter.acquire("alice")
    await counter.release("alice")
    assert await counters.client.hgetall(counter.counts_key("alice")) == {}


@pytest.mark.gen_test(timeout=20)
async def test_a_gateway_whose_lease_ran_out_counts_no_more(counters):
    dead = counters.make(limit=2, lease=0.3)
    assert await dead.acquire("alice") and await dead.acquire("alice")
    alive = counters.make(limit=2, lease=30)
    assert not await alive.acquire("alice")
    await asyncio.sleep(0.5)  # the dead one was killed: it renews nothing
    assert await alive.acquire("alice")
    assert list(await counters.client.hgetall(alive.counts_key("alice"))) == [alive.gateway_id.encode()]


@pytest.mark.gen_test(timeout=20)
async def test_a_running_gateway_keeps_its_lease(counters):
    kept = counters.make(limit=1, lease=0.3)
    assert await kept.acquire("alice")
    renewing = asyncio.ensure_future(kept.keep_alive())
    try:
        await asyncio.sleep(0.8)
        other = counters.make(limit=1)
        assert not await other.acquire("alice")
    finally:
        renewing.cancel()


@pytest.mark.gen_test(timeout=20)
async def test_a_closed_gateway_counts_no_more_at_once(counters):
    stopping = counters.make(limit=1)
    assert await stopping.acquire("alice")
    await stopping.close()
    assert await counters.make(limit=1).acquire("alice")


@pytest.mark.gen_test(timeout=30)
async def test_a_release_that_met_an_outage_is_made_with_the_next_renewal(private_redis):
    client = make_client(private_redis.url)
    try:
        counter = RedisConnectionCounter(client, limit=1)
        assert await counter.acquire("alice")
        private_redis.stop()
        await counter.release("alice")  # logged, kept for later: no error to the socket closing
        private_redis.start()
        await counter._renew()
        assert await counter.acquire("alice")
    finally:
        await client.aclose()


@pytest.mark.gen_test
async def test_a_cap_of_zero_asks_nothing_of_redis(down_client):
    counter = RedisConnectionCounter(down_client, limit=0)
    assert await counter.acquire("alice")
    await counter.release("alice")
