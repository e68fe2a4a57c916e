"""Open sockets per user on a Redis Cluster, spread over the users' buckets
(ConnectionCounter; docs/design/redis-cluster.md, section 1.1).

RedisConnectionCounter's acquire script weighs a user's counts by the leases of every
gateway that holds some, so its keys must share a slot: one instance of it is a
single-slot service. Here there is one instance per bucket, made the first time one of
the bucket's users opens a socket, with its keys under the bucket's tag
(`{t7}:ws:open:<user>`, `{t7}:ws:gateways`: BucketLayout), so its scripts are unchanged
and each stays within one slot. A user's counts, and the leases they are weighed by, are
all in the user's bucket.

The cost: this gateway holds a lease in each bucket it has counted a socket in (all B of
them once it has served a few thousand users), so its renewal every lease/3 is one short
script per such bucket rather than one (with B = 256 and the 30 s lease, about 26 calls
a second per gateway, spread over the masters). acquire and release are one script each,
as before."""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from adapters.redis.buckets import Buckets
from adapters.redis.connection_counter import LEASE_SECONDS, RedisConnectionCounter
from adapters.redis.layout import BucketLayout
from application.ports import ConnectionCounter

log = logging.getLogger("courier.redis.sockets")

# Calls in flight at once when renewing or closing every bucket (the cluster client refuses
# commands past its pool's size on a node rather than waiting).
CONCURRENCY = 16


class BucketedConnectionCounter(ConnectionCounter):
    """At most `limit` sockets per key (a user id) over all gateways; 0 turns it off.
    One RedisConnectionCounter per bucket in use, all under this gateway's one id."""

    def __init__(self, client: aioredis.Redis | RedisCluster, limit: int, buckets: Buckets,
                 gateway_id: str | None = None, lease: float = LEASE_SECONDS):
        self._client = client
        self._limit = limit
        self._buckets = buckets
        self.gateway_id = gateway_id or uuid.uuid4().hex
        self._lease = lease
        self._counters: dict[int, RedisConnectionCounter] = {}
        self._concurrency = asyncio.Semaphore(CONCURRENCY)

    def counter(self, key: str) -> RedisConnectionCounter:
        """The counter of `key`'s bucket, made the first time it is needed."""
        bucket = self._buckets.of(key)
        counter = self._counters.get(bucket)
        if counter is None:
            counter = self._counters[bucket] = RedisConnectionCounter(
                self._client, self._limit, gateway_id=self.gateway_id, lease=self._lease,
                layout=BucketLayout(self._buckets, bucket),
            )
        return counter

    def counts_key(self, key: str) -> str:
        """Where `key`'s counts are (tests)."""
        return self.counter(key).counts_key(key)

    async def acquire(self, key: str) -> bool:
        if self._limit <= 0:
            return True
        return await self.counter(key).acquire(key)

    async def release(self, key: str) -> None:
        if self._limit <= 0:
            return
        await self.counter(key).release(key)

    async def keep_alive(self) -> None:
        """Renew this gateway's lease in every bucket it counted a socket in, and retry
        the releases each kept, every lease/3, until cancelled."""
        if self._limit <= 0:
            return
        while True:
            await self._each(RedisConnectionCounter.renew)
            await asyncio.sleep(self._lease / 3)

    async def close(self) -> None:
        """This gateway stops: its counts stop counting at once, in every bucket."""
        if self._limit <= 0:
            return
        await self._each(RedisConnectionCounter.close)

    async def _each(self, call: Callable[[RedisConnectionCounter], Awaitable[None]]) -> None:
        """`call` on every bucket's counter made so far, CONCURRENCY at a time (each logs
        its own failures)."""
        async def one(counter: RedisConnectionCounter) -> None:
            async with self._concurrency:
                await call(counter)

        await asyncio.gather(*(one(counter) for counter in list(self._counters.values())))
