"""The first step of `courier serve` and `courier worker` in production mode: record the
bucket count in Redis, or refuse to start (adapters/redis/deployment.py).

A process started while Redis is down waits for it here, as the rest of Courier waits for
a Redis that went away instead of ending: the guard is retried every RETRY seconds until
Redis answers, or until the process is told to stop."""
from __future__ import annotations

import asyncio
import logging

from adapters.redis.deployment import BucketCount
from domain.errors import ServiceUnavailable

log = logging.getLogger("courier.start")

RETRY = 1.0  # seconds between tries while Redis does not answer
WARN_EVERY = 10  # tries between two warnings in the log


async def record_bucket_count(guard: BucketCount, stop: asyncio.Event | None = None) -> bool:
    """True once the count is recorded (or found equal); False when `stop` was set before
    Redis answered. BucketCountChanged (not retried) when the stored count differs."""
    tries = 0
    while True:
        try:
            await guard.record()
            return True
        except ServiceUnavailable as error:
            if tries % WARN_EVERY == 0:
                log.warning("waiting for Redis to record the bucket count before starting: %s (%s)",
                            error, error.__cause__)
            tries += 1
        if stop is None:
            await asyncio.sleep(RETRY)
            continue
        try:
            await asyncio.wait_for(stop.wait(), RETRY)
            return False
        except TimeoutError:
            pass
