"""BucketedPresenceStore (a RedisPresenceStore per user bucket, what the container gives a
cluster) with several gateways on the local Redis Cluster: what spreading presence over the
buckets could break that the contract suites (tests/contract/test_presence.py, and
test_presence_gateways.py for several gateways: leases in every bucket written in, close,
renewals) do not show - the sweep of a dead gateway's users by a gateway that never served
their buckets."""
from __future__ import annotations

import asyncio
import time

import pytest

from adapters.redis.bucketed_presence import BucketedPresenceStore
from adapters.redis.buckets import Buckets
from tests.services.presence_gateways import ids, offline

pytestmark = pytest.mark.redis

GRACE, LEASE = 0.3, 0.6
BUCKETS = Buckets()  # the default count, as deployed


def gateway(target, name: str) -> BucketedPresenceStore:
    return BucketedPresenceStore(target.client, GRACE, BUCKETS, gateway_id=name, lease=LEASE)


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
