"""RedisRateLimiter and RedisFailureThrottle against a real Redis (one, and the cluster:
each script touches its one key, so the key names are the same), on its clock
(so these tests use short windows and real time)."""
from __future__ import annotations

import asyncio

import pytest

from adapters.redis.limits import RedisFailureThrottle, RedisRateLimiter

pytestmark = pytest.mark.redis


@pytest.mark.gen_test
async def test_bucket_allows_a_burst_then_asks_to_wait(redis_target):
    limiter = RedisRateLimiter(redis_target.client, rate=2, burst=4)
    assert [await limiter.take("send:u") for _ in range(4)] == [0.0] * 4
    wait = await limiter.take("send:u")
    assert 0 < wait <= 0.5  # one token comes back every 1/rate seconds
    assert await limiter.take("send:other") == 0.0  # buckets are per key
    await asyncio.sleep(wait + 0.05)
    assert await limiter.take("send:u") == 0.0
    assert await limiter.take("send:u") > 0


@pytest.mark.gen_test
async def test_a_refused_take_costs_nothing_and_the_bucket_expires(redis_target):
    limiter = RedisRateLimiter(redis_target.client, rate=10, burst=1)
    assert await limiter.take("k") == 0.0
    first = await limiter.take("k")
    second = await limiter.take("k")
    assert 0 < second <= first <= 0.1  # waiting does not dig the hole deeper
    ttl_ms = await redis_target.client.pttl("rate:k")
    assert 0 < ttl_ms <= 1200  # gone once it would be full again (plus a margin)


@pytest.mark.gen_test
async def test_rate_zero_is_off(redis_target):
    limiter = RedisRateLimiter(redis_target.client, rate=0, burst=0)
    assert [await limiter.take("k") for _ in range(100)] == [0.0] * 100
    # Redis was never asked: nothing but the fixture's claim on one Redis, nothing on the cluster.
    assert await redis_target.client.dbsize() == (0 if redis_target.cluster else 1)


@pytest.mark.gen_test
async def test_failure_throttle_blocks_after_limit_failures_in_the_window(redis_target):
    throttle = RedisFailureThrottle(redis_target.client, limit=3, window=1.0)
    for _ in range(2):
        await throttle.record_failure("login:alice")
    assert await throttle.blocked_for("login:alice") == 0.0
    await throttle.record_failure("login:alice")
    blocked = await throttle.blocked_for("login:alice")
    assert 0.5 < blocked <= 1.0
    assert await throttle.blocked_for("login:bob") == 0.0
    await asyncio.sleep(blocked + 0.05)
    assert await throttle.blocked_for("login:alice") == 0.0  # the window slid past the failures


@pytest.mark.gen_test
async def test_failure_throttle_counts_only_the_newest_failures(redis_target):
    throttle = RedisFailureThrottle(redis_target.client, limit=2, window=1.0)
    await throttle.record_failure("k")
    await asyncio.sleep(0.5)
    await throttle.record_failure("k")
    await throttle.record_failure("k")  # same microsecond or not, each failure counts
    # Blocked until the older of the newest two leaves the window: about 1 s from now.
    assert 0.8 < await throttle.blocked_for("k") <= 1.0
    assert await redis_target.client.zcard("failures:k") == 2  # never more than `limit` kept
    assert 0 < await redis_target.client.pttl("failures:k") <= 2000


@pytest.mark.gen_test
async def test_failure_throttle_limit_zero_is_off(redis_target):
    throttle = RedisFailureThrottle(redis_target.client, limit=0)
    for _ in range(5):
        await throttle.record_failure("k")
    assert await throttle.blocked_for("k") == 0.0
