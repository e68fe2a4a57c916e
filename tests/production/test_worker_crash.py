"""`courier worker` killed -9 in the middle of a batch, and another started: the
entries the dead worker had taken (pending in the consumer group, not acked) are
claimed by the new one once idle long enough (COURIER_WORKER_CLAIM_IDLE, 30 s by
default; CLAIM_IDLE here, so the test waits that long instead), and every accepted
message ends up in MySQL exactly once. Events flow meanwhile (issue 14): own sends
(in stream:persist like any message) and group changes reach the event-view sockets
exactly once, with seqs the history agrees with."""
from __future__ import annotations

import asyncio
import time

import pytest
import redis

from tests.production.support import (
    Collector,
    GroupChanges,
    Sender,
    assert_history_agrees,
    assert_stored_exactly_once,
    check_event_view,
    check_original_view,
    count_stored,
    production_settings,
    stored_ids,
    until_stored,
)

pytestmark = [pytest.mark.redis, pytest.mark.mysql]

# Enough that the test sees the first worker part-way even when its polls are slow (a
# busy machine: a fresh-clone run once saw a worker through 600 before the first poll).
MESSAGES = 1500
BATCH = 10  # many small batches: the kill surely lands inside one
CLAIM_IDLE = 1.0  # seconds before the second worker claims what the dead one left pending


def persist_stream_length(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url, socket_connect_timeout=2) as client:
        return client.xlen("stream:persist")  # acked entries are deleted


def pending_entries(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url, socket_connect_timeout=2) as client:
        try:
            return client.xpending("stream:persist", "persisters")["pending"]
        except redis.ResponseError:  # no group yet
            return 0


@pytest.mark.gen_test(timeout=150)
async def test_a_worker_killed_mid_batch_and_another_started_store_each_message_once(
        redis_url, mysql_url, secret, commands, gateways, api):
    settings = production_settings(redis_url, mysql_url, secret, group_changes=0)
    gateway = await gateways(settings).start()
    client = api(gateway)
    a, b, c = await client.register(), await client.register(), await client.register()
    # Events are in the stream too (issue 14): a and b each have a socket in the event
    # view and one in the original view, open before anything happens to them.
    sockets = {name: Collector(await client.connect(who, events=events), name)
               for name, who, events in (("a events", a, True), ("a", a, False),
                                         ("b events", b, True), ("b", b, False))}
    changes = GroupChanges(client, a)
    group = await changes.create("crash", [b])
    gid = group["group_id"]
    a_sends, b_sends = Sender(client, a), Sender(client, b)

    # A backlog accepted while no worker runs: it waits in stream:persist. a and b write
    # to each other and to the group while a changes the group (c added, renamed, removed).
    async def send(start):
        for i in range(start, MESSAGES, 8):
            if start < 4:
                await a_sends.send(f"m{i}", to=b)
            elif start < 6:
                await b_sends.send(f"m{i}", to=a)
            else:
                await (a_sends if start == 6 else b_sends).send(f"m{i}", group_id=gid)

    await asyncio.gather(*(send(k) for k in range(8)), changes.churn(gid, c, 3))
    ids = a_sends.ids | b_sends.ids
    assert len(ids) == MESSAGES
    with redis.Redis.from_url(redis_url) as r:
        assert r.xlen("stream:persist") == MESSAGES  # messages, own sends among them; group changes are not

    loop = asyncio.get_running_loop()
    for attempt in range(1, 6):
        # Kill a worker part-way through the backlog, with a batch taken and not acked.
        # Should the kill land just between an ack and the next take (nothing pending),
        # the next attempt tries again with another worker.
        first = commands("worker", settings, name=f"worker-1-{attempt}", COURIER_WORKER_BATCH=BATCH).start()
        await first.ready()
        deadline = time.monotonic() + 30
        while True:
            stored = await loop.run_in_executor(None, count_stored, mysql_url, ids)
            pending = await loop.run_in_executor(None, pending_entries, redis_url)
            if 0 < stored < MESSAGES - 4 * BATCH and pending > 0:
                break
            assert stored < MESSAGES - 4 * BATCH, "the worker was through the backlog before it could be killed"
            assert time.monotonic() < deadline, f"the worker stored {stored} in 30 s"
            await asyncio.sleep(0.005)
        assert await first.kill() == -9
        pending_at_kill = await loop.run_in_executor(None, pending_entries, redis_url)
        if pending_at_kill > 0:
            break
    assert pending_at_kill > 0
    assert await loop.run_in_executor(None, count_stored, mysql_url, ids) < MESSAGES

    # While no worker runs, more own sends and group changes join the stream.
    more = [a_sends.send(f"after {i}", to=b) for i in range(10)] + \
           [b_sends.send(f"after g{i}", group_id=gid) for i in range(10)]
    await asyncio.gather(*more, changes.churn(gid, c, 1))
    ids = a_sends.ids | b_sends.ids
    assert len(ids) == MESSAGES + 20

    second = commands("worker", settings, name="worker-2", COURIER_WORKER_BATCH=BATCH,
                      COURIER_WORKER_CLAIM_IDLE=CLAIM_IDLE).start()
    await second.ready()
    stored = await until_stored(mysql_url, ids, timeout=80)
    # The rows may all be there already (the dead worker's last batch may have been
    # committed, just not acked): the queue is done only when its entries are acked,
    # and the dead worker's are acked only by the one that claims them.
    deadline = time.monotonic() + 80
    while (backlog := await loop.run_in_executor(None, persist_stream_length, redis_url)) > 0:
        assert time.monotonic() < deadline, f"{backlog} entries still in stream:persist"
        await asyncio.sleep(0.2)
    assert "claimed" in second.output(), second.output()  # it took over the dead worker's entries
    assert await loop.run_in_executor(None, pending_entries, redis_url) == 0
    with redis.Redis.from_url(redis_url) as r:
        assert r.xlen("stream:persist:dead") == 0  # nothing was moved aside
    stored = await loop.run_in_executor(None, stored_ids, mysql_url)
    assert_stored_exactly_once(stored, ids)
    history = await client.history_all(b, f"/conversations/{a.user_id}") + \
        await client.history_all(b, f"/groups/{gid}")
    assert sorted(m["id"] for m in history) == sorted(ids)

    # Every event reached the event-view sockets once, in cursor order, with gapless
    # seqs that the history (written by the workers) agrees with; the original view got
    # the messages from others, as before.
    for name, who, sender in (("a", a, a_sends), ("b", b, b_sends)):
        log = await check_event_view(client, who, sockets[f"{name} events"], ids, changes.made, sender.accepted)
        await check_original_view(sockets[name], who, log)
        await assert_history_agrees(client, who, log)
    assert second.running
