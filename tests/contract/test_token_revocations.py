"""The TokenRevocations port (application/ports.py), over every adapter: memory (the
unit tests' fake), SQL (the embedded mode's, SQLite and MariaDB), Redis (production: one Redis and a cluster),
and the per-gateway memory of answers in front of any of them."""
from __future__ import annotations

import asyncio
import time

import pytest

from adapters.memory.checked_tokens import RecentlyCheckedRevocations
from adapters.redis.revocations import RedisTokenRevocations
from adapters.sql.revocations import SqlTokenRevocations
from application.ports import TokenClaims
from tests.fakes.clock import FakeClock
from tests.fakes.revocations import MemoryTokenRevocations

ALICE, BOB = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"


class SystemClock:
    def now(self) -> float:
        return time.time()


@pytest.fixture(params=["memory", "sqlite", pytest.param("mysql", marks=pytest.mark.mysql),
                        pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("redis-cluster", marks=pytest.mark.redis), "checked"])
def revocations(request, sql_database):
    kind = request.param
    if kind == "memory":
        return MemoryTokenRevocations(SystemClock())
    if kind in ("sqlite", "mysql"):
        return SqlTokenRevocations(sql_database(kind), SystemClock())
    if kind == "redis":
        # A channel of this test's own: pub/sub channels are shared by every database of a server.
        client, channel = request.getfixturevalue("redis_client"), request.getfixturevalue("channel")
        return RedisTokenRevocations(client, channel=channel)
    if kind == "redis-cluster":
        client = request.getfixturevalue("redis_cluster_target").client
        return RedisTokenRevocations(client, channel=request.getfixturevalue("channel"))
    return RecentlyCheckedRevocations(MemoryTokenRevocations(SystemClock()), recheck=60.0)


def token(user_id: str, issued_at: float, token_id: str, lives: int = 3600) -> TokenClaims:
    return TokenClaims(user_id=user_id, expires_at=int(time.time()) + lives, token_id=token_id,
                       issued_at=round(issued_at, 3))


@pytest.mark.gen_test
async def test_nothing_is_revoked_at_first(revocations):
    now = time.time()
    assert await revocations.revoked([token(ALICE, now, "t1"), token(BOB, now, "t2")]) == [False, False]
    assert await revocations.revoked([]) == []


@pytest.mark.gen_test
async def test_revoking_a_token_refuses_that_token_only(revocations):
    now = time.time()
    one, other, bobs = token(ALICE, now, "t1"), token(ALICE, now, "t2"), token(BOB, now, "t3")
    await revocations.revoke(one)
    assert await revocations.revoked([one, other, bobs]) == [True, False, False]
    await revocations.revoke(one)  # again: no error, still revoked
    assert await revocations.revoked([one]) == [True]


@pytest.mark.gen_test
async def test_revoking_all_refuses_the_tokens_issued_before_and_not_after(revocations):
    now = time.time()
    before, after = token(ALICE, now - 10, "old"), token(ALICE, now + 0.5, "new")
    bobs = token(BOB, now - 10, "bobs")
    await revocations.revoke_all(ALICE, issued_before=now, until=now + 3600)
    assert await revocations.revoked([before, after, bobs]) == [True, False, False]


@pytest.mark.gen_test
async def test_revoking_all_is_to_the_millisecond(revocations):
    now = int(time.time()) + 0.5
    await revocations.revoke_all(ALICE, issued_before=now, until=now + 3600)
    just_before, at = token(ALICE, now - 0.001, "a"), token(ALICE, now, "b")
    assert await revocations.revoked([just_before, at]) == [True, False]


@pytest.mark.gen_test
async def test_an_earlier_revoke_all_never_narrows_a_later_one(revocations):
    now = time.time()
    await revocations.revoke_all(ALICE, issued_before=now, until=now + 3600)
    await revocations.revoke_all(ALICE, issued_before=now - 100, until=now + 3600)
    assert await revocations.revoked([token(ALICE, now - 50, "x")]) == [True]


@pytest.mark.gen_test
async def test_answers_follow_the_order_asked_with_repeats(revocations):
    now = time.time()
    one, two = token(ALICE, now, "t1"), token(BOB, now, "t2")
    await revocations.revoke(two)
    assert await revocations.revoked([two, one, two, one]) == [True, False, True, False]


@pytest.mark.gen_test
async def test_many_tokens_in_one_question(revocations):
    now = time.time()
    claims = [token(f"00000000-0000-4000-8000-{index:012d}", now, f"t{index}") for index in range(1200)]
    await revocations.revoke(claims[700])
    answers = await revocations.revoked(claims)
    assert answers.count(True) == 1 and answers[700]


@pytest.mark.gen_test
async def test_the_memory_of_answers_asks_again_when_stale_or_told():
    clock = FakeClock()
    inner = MemoryTokenRevocations(clock)
    checked = RecentlyCheckedRevocations(inner, recheck=3.0, now=clock.now)
    claims = TokenClaims(ALICE, int(clock.now()) + 3600, "t1", clock.now() - 1)
    assert checked.known(claims) is None  # never asked: not known without asking
    assert await checked.revoked([claims]) == [False]
    assert checked.known(claims) is False
    await inner.revoke(claims)  # through another gateway
    assert await checked.revoked([claims]) == [False]  # remembered for up to 3 s
    assert checked.known(claims) is False
    clock.advance(3)
    assert checked.known(claims) is None  # stale: ask again
    assert await checked.revoked([claims]) == [True]
    assert checked.known(claims) is True
    other = TokenClaims(BOB, int(clock.now()) + 3600, "t2", clock.now() - 1)
    assert await checked.revoked([other]) == [False]
    await checked.revoke(other)  # through this gateway: at once
    assert await checked.revoked([other]) == [True]
    late = TokenClaims(BOB, int(clock.now()) + 3600, "t3", clock.now() - 1)
    assert await checked.revoked([late]) == [False]
    await checked.revoke_all(BOB, clock.now(), clock.now() + 3600)
    assert checked.known(late) is True  # by the floor revoke_all left here
    assert await checked.revoked([late]) == [True]
    # An announcement (a revocation through another gateway) drops what is known of the user.
    heard: list = []
    following = asyncio.ensure_future(checked.follow(heard.append))
    await asyncio.sleep(0)
    fresh = TokenClaims(ALICE, int(clock.now()) + 3600, "t4", clock.now() - 1)
    assert await checked.revoked([fresh]) == [False]
    await inner.revoke(fresh)
    assert heard == [None, ALICE]
    assert checked.known(fresh) is None  # the announcement dropped what was known
    assert await checked.revoked([fresh]) == [True]  # asked again at once, not after 3 s
    following.cancel()


@pytest.mark.gen_test(timeout=10)
async def test_every_revocation_is_announced_to_the_followers(revocations):
    heard: list = []
    following = asyncio.ensure_future(revocations.follow(heard.append))
    try:
        await eventually(lambda: heard == [None])  # following from now on: anything before, maybe missed
        now = time.time()
        await revocations.revoke(token(ALICE, now, "t1"))
        await revocations.revoke_all(BOB, issued_before=now, until=now + 3600)
        await eventually(lambda: heard == [None, ALICE, BOB])
    finally:
        following.cancel()


async def eventually(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.01)


@pytest.mark.gen_test
async def test_the_memory_of_answers_takes_the_same_token_asked_again_and_again():
    # One token asked by many requests at once, in one loop turn and in the next ones
    # (a client's concurrent sends): each gets its answer (the lookups of one turn go out
    # together, and a later turn's while the first is on its way).
    inner = MemoryTokenRevocations(SystemClock())
    checked = RecentlyCheckedRevocations(inner, recheck=60.0)
    claims = token(ALICE, time.time(), "t1")

    async def ask_after(turns: int) -> list[bool]:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await checked.revoked([claims])

    answers = await asyncio.gather(*(ask_after(turns) for turns in (0, 0, 1, 1, 2, 3)))
    assert answers == [[False]] * 6
