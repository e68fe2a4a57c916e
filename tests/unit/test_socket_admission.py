"""AdmitSocket: a socket counts against its user and its address, or against neither."""
from __future__ import annotations

import asyncio

import pytest

from adapters.memory.connection_counter import MemoryConnectionCounter
from application.sockets import AdmitSocket
from domain import errors


@pytest.mark.gen_test
async def test_a_user_at_its_cap_is_refused_and_its_address_not_counted():
    per_user, per_address = MemoryConnectionCounter(2), MemoryConnectionCounter(100)
    admit = AdmitSocket(per_user, per_address)
    admissions = [await admit("alice", "192.0.2.1") for _ in range(2)]
    with pytest.raises(errors.RateLimited) as refused:
        await admit("alice", "192.0.2.1")
    assert refused.value.retry_after > 0
    assert per_address.open_for("192.0.2.1") == 2
    await admit.release(admissions[0])
    assert per_user.open_for("alice") == 1 and per_address.open_for("192.0.2.1") == 1
    await admit("alice", "192.0.2.2")


@pytest.mark.gen_test
async def test_an_address_at_its_cap_is_refused_for_everyone():
    per_user, per_address = MemoryConnectionCounter(20), MemoryConnectionCounter(2)
    admit = AdmitSocket(per_user, per_address)
    await admit("alice", "192.0.2.1")
    await admit("bob", "192.0.2.1")
    with pytest.raises(errors.RateLimited):
        await admit("carol", "192.0.2.1")
    assert per_user.open_for("carol") == 0
    await admit("carol", "192.0.2.9")


@pytest.mark.gen_test
async def test_a_failing_user_count_gives_the_address_its_place_back():
    class Down(MemoryConnectionCounter):
        async def acquire(self, key):
            raise errors.ServiceUnavailable("redis is unavailable")

    per_address = MemoryConnectionCounter(5)
    admit = AdmitSocket(Down(5), per_address)
    with pytest.raises(errors.ServiceUnavailable):
        await admit("alice", "192.0.2.1")
    assert per_address.open_for("192.0.2.1") == 0


@pytest.mark.gen_test
async def test_a_cap_of_zero_counts_nothing():
    counter = MemoryConnectionCounter(0)
    for _ in range(100):
        assert await counter.acquire("alice")
    assert counter.open_for("alice") == 0


@pytest.mark.gen_test
async def test_settle_waits_for_the_releases_under_way():
    """A server's stop waits for the counts its closing sockets release before it closes the
    counters' Redis client: a release still running then would reconnect it, for good."""
    class Slow(MemoryConnectionCounter):
        async def release(self, key):
            await asyncio.sleep(0.05)
            await super().release(key)

    per_user, per_address = Slow(5), MemoryConnectionCounter(5)
    admit = AdmitSocket(per_user, per_address)
    admissions = [await admit("alice", "192.0.2.1") for _ in range(3)]
    for admission in admissions:
        admit.release_soon(admission)
    await admit.settle(5)
    assert per_user.open_for("alice") == 0 and per_address.open_for("192.0.2.1") == 0
    await admit.settle(5)  # nothing under way: at once


@pytest.mark.gen_test
async def test_settle_gives_up_after_its_timeout():
    class Stuck(MemoryConnectionCounter):
        async def release(self, key):
            await asyncio.Event().wait()

    admit = AdmitSocket(Stuck(5), MemoryConnectionCounter(5))
    admit.release_soon(await admit("alice", "192.0.2.1"))
    await asyncio.wait_for(admit.settle(0.05), 1)
    stuck = list(admit._releasing)
    assert len(stuck) == 1
    stuck[0].cancel()
    await asyncio.gather(*stuck, return_exceptions=True)
