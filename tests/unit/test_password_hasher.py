"""The argon2 hasher's bounded work: `threads` hashing, at most `queue` waiting, and
one more refused at once (Overloaded: a 503 with Retry-After) instead of queueing."""
from __future__ import annotations

import asyncio
import threading

import pytest

from adapters.security import Argon2PasswordHasher
from domain import errors


class BlockingArgon2:
    """Stands in for argon2: every hash waits until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = 0

    def hash(self, password: str) -> str:
        self.started += 1
        self.gate.wait(10)
        return "hash-of-" + password


@pytest.mark.gen_test(timeout=20)
async def test_past_threads_plus_queue_a_hash_is_refused_at_once():
    hasher = Argon2PasswordHasher(1, 8, 1, threads=2, queue=3)
    blocking = hasher._argon2 = BlockingArgon2()
    try:
        running = [asyncio.ensure_future(hasher.hash(f"p{index}")) for index in range(5)]
        await asyncio.sleep(0.05)
        with pytest.raises(errors.Overloaded) as refused:
            await hasher.hash("one too many")
        assert refused.value.retry_after >= 1
        assert isinstance(refused.value, errors.ServiceUnavailable)  # a 503
        assert blocking.started == 2  # two threads: the other three wait
        blocking.gate.set()
        assert await asyncio.gather(*running) == [f"hash-of-p{index}" for index in range(5)]
        assert await hasher.hash("room again") == "hash-of-room again"
    finally:
        blocking.gate.set()
        hasher.close()


@pytest.mark.gen_test(timeout=20)
async def test_a_failed_hash_gives_its_place_back():
    hasher = Argon2PasswordHasher(1, 8, 1, threads=1, queue=0)
    try:
        assert await hasher.verify("not an argon2 hash", "password") is False
        assert await hasher.verify("still not", "password") is False  # the place was given back
    finally:
        hasher.close()


@pytest.mark.gen_test(timeout=20)
async def test_real_hashing_still_works():
    hasher = Argon2PasswordHasher(1, 8192, 1, threads=1, queue=1)
    try:
        stored = await hasher.hash("correct horse")
        assert await hasher.verify(stored, "correct horse")
        assert not await hasher.verify(stored, "wrong horse")
    finally:
        hasher.close()
