"""Rate limits kept in process memory: right for one embedded process and for tests.
Production shares them between gateways through Redis (adapters/redis/limits.py)."""
from __future__ import annotations

from collections import deque

from application.ports import Clock, FailureThrottle, RateLimiter


class MemoryRateLimiter(RateLimiter):
    """A token bucket per key: `rate` tokens a second, holding at most `burst`.
    A rate of 0 turns the limit off."""

    def __init__(self, clock: Clock, rate: float, burst: float):
        self._clock = clock
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    async def take(self, key: str) -> float:
        if self._rate <= 0:
            return 0.0
        now = self._clock.now()
        tokens, at = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self._rate
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 100_000:
            self._forget_full(now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: drop those.
        full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * self._rate >= self._burst]
        for key in full:
            del self._buckets[key]


class MemoryFailureThrottle(FailureThrottle):
    """At most `limit` failures per key in a sliding `window` of seconds."""

    def __init__(self, clock: Clock, limit: int, window: float = 60.0):
        self._clock = clock
        self._limit = limit
        self._window = window
        self._failures: dict[str, deque[float]] = {}

    async def blocked_for(self, key: str) -> float:
        if self._limit <= 0:
            return 0.0
        times = self._recent(key)
        if len(times) < self._limit:
            return 0.0
        return max(0.001, times[-self._limit] + self._window - self._clock.now())

    async def record_failure(self, key: str) -> None:
        if self._limit <= 0:
            return
        times = self._recent(key)
        times.append(self._clock.now())
        while len(times) > self._limit:
            times.popleft()
        self._failures[key] = times

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        horizon = self._clock.now() - self._window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
        return times
