"""Waiting, bounded, for something another task or process does: the tests' one copy."""
from __future__ import annotations

import asyncio
import time

import pytest


async def eventually(check, timeout: float = 5.0, interval: float = 0.02):
    """Await `check()` until it returns a truthy value (returned), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: last result {result!r}")
        await asyncio.sleep(interval)


async def until(condition, timeout: float = 5.0, interval: float = 0.01) -> None:
    """Wait until `condition()` (not awaited) is truthy, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def stop(task: asyncio.Task) -> None:
    """Cancel a task that runs until cancelled, and check that it ended so."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
