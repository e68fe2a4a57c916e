"""Rate limits shared by every gateway through Redis; the same rules as
adapters/memory/limits.py, on Redis' clock so all gateways agree on time."""
from __future__ import annotations

import os

import redis.asyncio as aioredis

from adapters.redis.support import lua, unavailable
from application.ports import FailureThrottle, RateLimiter


class RedisRateLimiter(RateLimiter):
    """A token bucket per key: `rate` tokens a second, holding at most `burst`.
    A rate of 0 turns the limit off (and Redis is never asked)."""

    def __init__(self, client: aioredis.Redis, rate: float, burst: float, prefix: str = "rate:"):
        self._rate = float(rate)
        self._burst = float(burst)
        self._prefix = prefix
        self._script = client.register_script(lua("rate_limit.lua"))

    async def take(self, key: str) -> float:
        if self._rate <= 0:
            return 0.0
        with unavailable("rate limit"):
            wait = await self._script(keys=[self._prefix + key], args=[repr(self._rate), repr(self._burst)])
        return float(wait)


class RedisFailureThrottle(FailureThrottle):
    """At most `limit` failures per key in a sliding `window` of seconds; a limit
    of 0 turns the throttle off."""

    def __init__(self, client: aioredis.Redis, limit: int, window: float = 60.0, prefix: str = "failures:"):
        self._limit = int(limit)
        self._window = float(window)
        self._prefix = prefix
        self._script = client.register_script(lua("failures.lua"))

    async def blocked_for(self, key: str) -> float:
        if self._limit <= 0:
            return 0.0
        return await self._call("check", key)

    async def record_failure(self, key: str) -> None:
        if self._limit <= 0:
            return
        await self._call("record", key)

    async def _call(self, action: str, key: str) -> float:
        # Members must be unique, or two failures in the same microsecond would count once.
        member = os.urandom(8).hex()
        with unavailable("failure throttle"):
            result = await self._script(
                keys=[self._prefix + key], args=[action, self._limit, repr(self._window), member]
            )
        return float(result)
