"""The relay of a Redis Cluster's sends (docs/design/redis-cluster.md, section 3): in `courier
worker`, every few seconds, each bucket's outbox is read for sends committed long enough ago
whose gateway has not finished their appends (it died between its commit and its last append,
in a conversation nobody sent to since: the next send would have made them).
RedisClusterInbox.finish_stale makes the missing appends, each once, and removes the promise."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from adapters.redis.cluster_inbox import STALE_AFTER_MS, RedisClusterInbox
from domain.errors import ServiceUnavailable

log = logging.getLogger("courier.redis.cluster_relay")


class ClusterSendRelay:
    def __init__(self, inbox: RedisClusterInbox, buckets: int, every: float = 2.0,
                 older_than_ms: int = STALE_AFTER_MS):
        self._inbox = inbox
        self._buckets = buckets
        self._every = every
        self._older_than_ms = older_than_ms
        self.finished = 0  # sends this relay finished, for the tests and the logs

    async def run_once(self) -> int:
        """One pass over every bucket; how many sends it finished."""
        finished = 0
        for bucket in range(self._buckets):
            try:
                finished += await self._inbox.finish_stale(bucket, self._older_than_ms)
            except ServiceUnavailable as error:  # that bucket's node: the next pass tries again
                log.warning("relay: bucket %d unavailable (%s)", bucket, error)
        if finished:
            log.warning("relay: finished %d sends whose gateway stopped after their commit", finished)
        self.finished += finished
        return finished

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.run_once()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self._every)
