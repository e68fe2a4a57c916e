"""The CursorCheckpoints port (application/ports.py), over its adapters: memory (the
tests' fake), SQLite (the embedded mode's, adapters/sql/checkpoints.py) and Redis
(production, adapters/redis/checkpoints.py: one Redis and a cluster). A checkpoint keeps a
user's positions under an id of that user's; it is gone (CursorExpired: 410) once its
time ran out or a later checkpoint took its slot in the ring, and an id never handed out
is no checkpoint (docs/design/large-groups.md, section 3.4)."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from adapters.redis.checkpoints import RedisCursorCheckpoints
from adapters.sql.checkpoints import SqliteCursorCheckpoints
from adapters.sql.tables import cursor_checkpoints
from domain import errors
from tests.fakes.checkpoints import MemoryCursorCheckpoints

RING = 4
TTL = 3600


class Expiring:
    """An adapter, and a way to let one checkpoint's time run out."""

    def __init__(self, kind: str, request):
        self.client = None
        self.database = None
        if kind == "memory":
            self.checkpoints = MemoryCursorCheckpoints(ring=RING)
        elif kind == "sqlite":
            self.database = request.getfixturevalue("sql_database")("sqlite")
            self.checkpoints = SqliteCursorCheckpoints(self.database, ring=RING, ttl=TTL)
        elif kind == "redis":
            self.client = request.getfixturevalue("redis_client")
            self.checkpoints = RedisCursorCheckpoints(self.client, ring=RING, ttl=TTL)
        else:  # the local cluster, with the layout the container gives it
            target = request.getfixturevalue("redis_cluster_target")
            self.client = target.client
            self.checkpoints = RedisCursorCheckpoints(self.client, ring=RING, ttl=TTL, layout=target.layout)

    async def expire(self, user_id: str, checkpoint: int) -> None:
        if self.database is not None:  # saved longer ago than the TTL
            await self.database.write(_saved_long_ago, user_id, checkpoint)
        elif self.client is None:
            self.checkpoints.expire(user_id, checkpoint)
        else:
            await self.client.delete(self.checkpoints.slot_key(user_id, checkpoint))


    async def age(self, user_id: str, checkpoint: int, fraction: float) -> None:
        """Let `fraction` of the TTL pass for one checkpoint (memory: its time never runs
        out, except past the whole TTL, which expires it)."""
        if self.database is not None:
            await self.database.write(_older, user_id, checkpoint, int(fraction * TTL))
        elif self.client is None:
            if fraction >= 1:
                self.checkpoints.expire(user_id, checkpoint)
        else:
            slot = self.checkpoints.slot_key(user_id, checkpoint)
            left = await self.client.ttl(slot)
            if left - fraction * TTL <= 0:
                await self.client.delete(slot)
            else:
                await self.client.expire(slot, int(left - fraction * TTL))


def _older(conn, user_id: str, checkpoint: int, seconds: int) -> None:
    row = cursor_checkpoints.c
    with conn.begin():
        conn.execute(update(cursor_checkpoints).where(row.user_id == user_id, row.id == checkpoint)
                     .values(created_at=row.created_at - seconds))


def _saved_long_ago(conn, user_id: str, checkpoint: int) -> None:
    row = cursor_checkpoints.c
    with conn.begin():
        conn.execute(update(cursor_checkpoints).where(row.user_id == user_id, row.id == checkpoint)
                     .values(created_at=row.created_at - TTL - 1))


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("redis-cluster", marks=pytest.mark.redis)])
def store(request) -> Expiring:
    return Expiring(request.param, request)


def new_user() -> str:
    return str(uuid.uuid4())


@pytest.mark.gen_test
async def test_a_checkpoint_loads_the_positions_it_kept(store):
    user = new_user()
    kept = {1: (1_700_000_000_000, 0), 7: (1_700_000_000_123, 4), 2**40: (2**64 - 1, 2**64 - 1)}
    checkpoint = await store.checkpoints.save(user, kept)
    assert await store.checkpoints.load(user, checkpoint) == kept
    empty = await store.checkpoints.save(user, {})
    assert await store.checkpoints.load(user, empty) == {}
    assert empty > checkpoint >= 0
    with pytest.raises(errors.CursorExpired):
        await store.checkpoints.load(new_user(), checkpoint)  # ids are the user's own


@pytest.mark.gen_test
async def test_a_later_checkpoint_takes_the_slot_of_one_ring_before_it(store):
    user = new_user()
    saved = [await store.checkpoints.save(user, {1: (i, 0)}) for i in range(RING + 1)]
    assert saved == sorted(set(saved))
    with pytest.raises(errors.CursorExpired):
        await store.checkpoints.load(user, saved[0])
    for i, checkpoint in enumerate(saved[1:], 1):
        assert await store.checkpoints.load(user, checkpoint) == {1: (i, 0)}


@pytest.mark.gen_test
async def test_an_expired_or_made_up_checkpoint_answers_410(store):
    user = new_user()
    first = await store.checkpoints.save(user, {3: (5, 5)})
    second = await store.checkpoints.save(user, {3: (6, 0)})
    await store.expire(user, first)
    with pytest.raises(errors.CursorExpired):
        await store.checkpoints.load(user, first)
    assert await store.checkpoints.load(user, second) == {3: (6, 0)}
    for made_up in (second + 1, second + RING, 2**64 - 1):
        with pytest.raises(errors.CursorExpired):
            await store.checkpoints.load(user, made_up)


@pytest.mark.gen_test
async def test_the_same_positions_saved_again_answer_the_checkpoint_that_keeps_them(store):
    user = new_user()
    first = await store.checkpoints.save(user, {1: (5, 0), 2: (6, 1)})
    other = await store.checkpoints.save(user, {1: (5, 0)})
    # A resume repeated cuts the same vector: it takes no new slot of the ring.
    for _ in range(2 * RING):
        assert await store.checkpoints.save(user, {2: (6, 1), 1: (5, 0)}) == first
    assert await store.checkpoints.load(user, first) == {1: (5, 0), 2: (6, 1)}
    assert await store.checkpoints.load(user, other) == {1: (5, 0)}
    # Once it is no longer kept, the same positions make a new checkpoint.
    await store.expire(user, first)
    again = await store.checkpoints.save(user, {1: (5, 0), 2: (6, 1)})
    assert again > other
    assert await store.checkpoints.load(user, again) == {1: (5, 0), 2: (6, 1)}


@pytest.mark.gen_test
async def test_a_checkpoint_read_with_more_than_half_of_its_time_gone_is_kept_another_ttl(store):
    user = new_user()
    checkpoint = await store.checkpoints.save(user, {4: (9, 0)})
    for _ in range(3):  # 3 x 0.6 TTL: long gone, had reads not kept it
        await store.age(user, checkpoint, 0.6)
        assert await store.checkpoints.load(user, checkpoint) == {4: (9, 0)}
    await store.age(user, checkpoint, 1.1)  # not read for longer than the TTL
    with pytest.raises(errors.CursorExpired):
        await store.checkpoints.load(user, checkpoint)
