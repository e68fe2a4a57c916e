"""`courier worker` killed -9 with large-group entries taken and not acked, and another
started: the second worker's RedisGroupPersistQueue finds the streams by its first sweep
(lg:streams), claims the dead worker's entries once idle (CLAIM_IDLE), and every message
of every group ends up in MySQL exactly once (docs/design/large-groups.md, 7.2 and 20).

The groups are made with the API (their rows and members in MySQL, on a deployment with
large groups off) and switched and posted to with RedisGroupStreams directly, as the
gateway's large send path does (tests/production/test_large_groups.py goes through the
gateways), so that the backlog is thousands of entries over several streams at once."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis

from adapters.redis.group_streams import PERSIST, RedisGroupStreams
from application.ports import GroupSwitch
from domain.model import GROUP, Message
from tests.production.support import (
    GroupChanges,
    assert_stored_exactly_once,
    count_stored,
    production_settings,
    stored_ids,
    until_stored,
)
from tests.services.redis import make_client

pytestmark = [pytest.mark.redis, pytest.mark.mysql]

PER_GROUP = 600
BATCH = 10  # many small batches: the kill surely lands inside one
CLAIM_IDLE = 1.0


def persist_state(redis_url: str, group_ids: list[str]) -> tuple[int, int, int]:
    """(entries not yet acked, entries pending with a consumer, dead letters) over the groups."""
    length = pending = dead = 0
    with redis.Redis.from_url(redis_url, socket_connect_timeout=2) as client:
        for group_id in group_ids:
            stream = PERSIST.format(group_id)
            length += client.xlen(stream)
            dead += client.xlen(stream + ":dead")
            try:
                pending += client.xpending(stream, "persisters")["pending"]
            except redis.ResponseError:  # no group yet
                pass
    return length, pending, dead


async def post_to_large_groups(redis_url: str, groups: list[tuple[str, list[str]]]) -> set[str]:
    async def no_messages_yet(conversation: str) -> int:
        return 0

    client = make_client(redis_url)
    try:
        streams = RedisGroupStreams(client, last_seq=no_messages_yet)
        for sno, (group_id, members) in enumerate(groups, start=1000):
            await streams.apply(GroupSwitch(group_id, str(uuid.uuid4()), 1, sno, members[0], False, tuple(members)))
        ids = set()
        for i in range(PER_GROUP):
            for group_id, members in groups:
                draft = Message(type=GROUP, id=str(uuid.uuid4()), from_user_id=members[i % 2], content=f"m{i}",
                                created_at=int(time.time()), group_id=group_id)
                ids.add((await streams.deliver(draft)).message.id)
        return ids
    finally:
        await client.aclose()


@pytest.mark.gen_test(timeout=150)
async def test_a_worker_killed_with_large_group_entries_pending_and_another_started_store_each_once(
        redis_url, mysql_url, secret, commands, gateways, api):
    settings = production_settings(redis_url, mysql_url, secret, group_changes=0)
    gateway = await gateways(settings).start()
    client = api(gateway)
    a, b = await client.register(), await client.register()
    changes = GroupChanges(client, a)
    groups = [((await changes.create(name, [b]))["group_id"], [a.user_id, b.user_id]) for name in ("one", "two")]
    group_ids = [group_id for group_id, _ in groups]
    ids = await post_to_large_groups(redis_url, groups)
    assert len(ids) == 2 * PER_GROUP

    loop = asyncio.get_running_loop()
    for attempt in range(1, 6):
        # Kill a worker part-way, with a batch taken and not acked (else try again).
        first = commands("worker", settings, name=f"worker-1-{attempt}", COURIER_WORKER_BATCH=BATCH).start()
        await first.ready()
        deadline = time.monotonic() + 30
        while True:
            stored = await loop.run_in_executor(None, count_stored, mysql_url, ids)
            _, pending, _ = await loop.run_in_executor(None, persist_state, redis_url, group_ids)
            if 0 < stored < len(ids) - 4 * BATCH and pending > 0:
                break
            assert stored < len(ids) - 4 * BATCH, "the worker was through the backlog before it could be killed"
            assert time.monotonic() < deadline, f"the worker stored {stored} in 30 s"
            await asyncio.sleep(0.005)
        assert await first.kill() == -9
        _, pending_at_kill, _ = await loop.run_in_executor(None, persist_state, redis_url, group_ids)
        if pending_at_kill > 0:
            break
    assert pending_at_kill > 0

    second = commands("worker", settings, name="worker-2", COURIER_WORKER_BATCH=BATCH,
                      COURIER_WORKER_CLAIM_IDLE=CLAIM_IDLE).start()
    await second.ready()
    try:
        await until_stored(mysql_url, ids, timeout=60)
    except AssertionError:  # what the worker said, and where the entries are
        print(second.output()[-6000:], await loop.run_in_executor(None, persist_state, redis_url, group_ids))
        raise
    # Done only when the dead worker's entries are acked too, by the worker that claims them.
    deadline = time.monotonic() + 60
    while (state := await loop.run_in_executor(None, persist_state, redis_url, group_ids))[:2] != (0, 0):
        assert time.monotonic() < deadline, f"still (length, pending, dead) = {state}"
        await asyncio.sleep(0.2)
    assert state[2] == 0  # nothing was moved aside
    assert "claimed" in second.output(), second.output()  # it took over the dead worker's entries
    assert_stored_exactly_once(await loop.run_in_executor(None, stored_ids, mysql_url), ids)
    for group_id in group_ids:
        history = await client.history_all(b, f"/groups/{group_id}")
        assert sorted(m["seq"] for m in history) == list(range(1, PER_GROUP + 1))  # each group's seqs, once
    assert second.running
