"""Helpers of the presence tests with several gateways (tests/contract/test_presence_gateways.py,
tests/integration/test_redis_presence_store.py, test_redis_bucketed_presence.py): the one copy."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest


def ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


async def offline(stores, count: int, timeout: float = 15.0) -> list:
    """What the stores' expire() answer until `count` changes came, and once more after."""
    deadline = time.monotonic() + timeout
    changes: list = []
    while len(changes) < count:
        assert time.monotonic() < deadline, f"only {len(changes)} of {count} changes in time"
        for store in stores:
            changes += await store.expire()
        await asyncio.sleep(0.05)
    for store in stores:
        changes += await store.expire()
    return changes


async def run_for(coroutine_function, seconds: float) -> None:
    """Run a store's loop (keep_alive) for a while, then cancel it."""
    task = asyncio.ensure_future(coroutine_function())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
