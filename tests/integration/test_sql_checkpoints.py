"""SqliteCursorCheckpoints' clock (the contract suite has the rest): once every checkpoint
of a user expired, the next one still gets an id above theirs, so an old cursor never
loads a newer checkpoint under its number; expired rows are deleted."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from adapters.sql.checkpoints import SqliteCursorCheckpoints
from adapters.sql.tables import cursor_checkpoints
from domain import errors

TTL = 3600


@pytest.mark.gen_test
async def test_ids_grow_past_checkpoints_that_all_expired(db):
    now = [1_800_000_000.0]
    checkpoints = SqliteCursorCheckpoints(db, ttl=TTL, ring=4, clock=lambda: now[0])
    user = str(uuid.uuid4())
    old = [await checkpoints.save(user, {1: (i, 0)}) for i in range(3)]
    assert old == [old[0], old[0] + 1, old[0] + 2]
    now[0] += TTL + 1  # every one of them expires
    with pytest.raises(errors.CursorExpired):
        await checkpoints.load(user, old[-1])
    new = await checkpoints.save(user, {1: (9, 0)})
    assert new > old[-1]
    assert await checkpoints.load(user, new) == {1: (9, 0)}
    for checkpoint in old:
        with pytest.raises(errors.CursorExpired):
            await checkpoints.load(user, checkpoint)

    def rows(conn):
        return conn.execute(select(func.count()).select_from(cursor_checkpoints)
                            .where(cursor_checkpoints.c.user_id == user)).scalar()

    assert await db.run(rows) == 1  # the expired ones are gone
