"""The bucket count a deployment's Redis data was written with (docs/design/redis-cluster.md,
section 2): key names carry a user's bucket, so a gateway or worker counting buckets
differently would read and write other keys than the rest, and lose messages silently.

The first process to start stores its count; every later one compares its own with it and
refuses to start when they differ. The key is harmless on one Redis, where it is kept too,
so a deployment moved to a cluster later keeps its count."""
from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from adapters.redis.support import text, unavailable

BUCKETS_KEY = "courier:buckets"


class BucketCountChanged(Exception):
    """The stored bucket count is not this process's COURIER_REDIS_BUCKETS."""


class BucketCount:
    def __init__(self, client: Redis | RedisCluster, count: int):
        self._client = client
        self.count = count

    async def record(self) -> int:
        """Store the count if none is (SET NX), then read what is stored: the count of
        whichever process stored first, when several start at once. BucketCountChanged
        when it is not this one's; ServiceUnavailable when Redis does not answer."""
        with unavailable("recording the bucket count"):
            await self._client.set(BUCKETS_KEY, self.count, nx=True)
            stored = await self._client.get(BUCKETS_KEY)
        if stored is None:  # deleted between the two commands: someone is changing it by hand
            raise BucketCountChanged(f"{BUCKETS_KEY} vanished from Redis while this process recorded it; "
                                     "start again once nobody is changing it")
        if text(stored) != str(self.count):
            raise BucketCountChanged(
                f"COURIER_REDIS_BUCKETS is {self.count}, but this deployment's Redis data was written with "
                f"{text(stored)} buckets ({BUCKETS_KEY}); set COURIER_REDIS_BUCKETS={text(stored)}: the count is "
                "fixed once data exists (changing it is a migration of every user's keys)")
        return self.count
