"""RedisPersistQueue against a real Redis: the consumer group on stream:persist."""
from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from adapters.redis.inbox import RedisInbox
from adapters.redis.persist_queue import RedisPersistQueue
from domain.model import PRIVATE, Message

pytestmark = pytest.mark.redis


def message(content: str = "hello") -> Message:
    return Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id="a", to_user_id="b", content=content,
                   created_at=1_700_000_000, client_msg_id="c-" + uuid.uuid4().hex)


async def deliver(client, count: int) -> list[Message]:
    inbox = RedisInbox(client, channel="courier-test:unused")
    return [(await inbox.deliver(message(f"m{i}"), ["b"])).message for i in range(count)]  # with their seqs


@pytest.mark.gen_test
async def test_take_ack_and_backlog(redis_client):
    sent = await deliver(redis_client, 5)  # appended before any group exists: still taken
    queue = RedisPersistQueue(redis_client)
    assert await queue.backlog() == 5
    batch = await queue.take("p1", 3, 100)
    assert [m for _, m in batch] == sent[:3]  # full records, client_msg_id included
    assert await queue.backlog() == 5  # 3 pending + 2 not delivered
    await queue.ack([entry_id for entry_id, _ in batch])
    assert await queue.backlog() == 2
    assert await redis_client.xlen("stream:persist") == 2  # acked entries are deleted
    rest = await queue.take("p1", 10, 100)
    assert [m for _, m in rest] == sent[3:]
    await queue.ack([entry_id for entry_id, _ in rest])
    assert await queue.take("p1", 10, 50) == []  # waited 50 ms, nothing new
    assert await queue.backlog() == 0
    await queue.ack([])


@pytest.mark.gen_test
async def test_group_creation_is_idempotent(redis_client):
    await RedisPersistQueue(redis_client).backlog()
    await RedisPersistQueue(redis_client).backlog()  # BUSYGROUP is fine
    assert [g["name"] for g in await redis_client.xinfo_groups("stream:persist")] == [b"persisters"]


@pytest.mark.gen_test
async def test_entries_a_dead_consumer_left_pending_are_claimed_by_another(redis_client):
    sent = await deliver(redis_client, 4)
    dead = RedisPersistQueue(redis_client, claim_idle_ms=100)
    taken = await dead.take("dead", 10, 100)
    assert len(taken) == 4  # ... and the process dies without acking

    alive = RedisPersistQueue(redis_client, claim_idle_ms=100)  # another process
    assert await alive.take("alive", 10, 10) == []  # not idle long enough yet
    await asyncio.sleep(0.15)
    claimed = await alive.take("alive", 10, 10)
    assert [m for _, m in claimed] == sent
    await alive.ack([entry_id for entry_id, _ in claimed])
    assert await alive.backlog() == 0


@pytest.mark.gen_test
async def test_a_restarted_consumer_first_takes_its_own_pending_entries(redis_client):
    sent = await deliver(redis_client, 3)
    before = RedisPersistQueue(redis_client)
    await before.take("worker-1", 2, 100)  # then the process restarts, same consumer name
    after = RedisPersistQueue(redis_client)
    again = await after.take("worker-1", 10, 100)
    assert [m for _, m in again] == sent[:2]
    await after.ack([entry_id for entry_id, _ in again])
    assert [m for _, m in await after.take("worker-1", 10, 100)] == sent[2:]


@pytest.mark.gen_test
async def test_undecodable_entries_are_moved_aside(redis_client):
    good = await deliver(redis_client, 1)
    await redis_client.xadd("stream:persist", {"m": b"{not json"})
    await redis_client.xadd("stream:persist", {"other": "field"})
    await redis_client.xadd("stream:persist", {"m": b'{"type": "private"}'})  # JSON, but no message
    later = await deliver(redis_client, 1)
    queue = RedisPersistQueue(redis_client)
    batch = await queue.take("p", 10, 100)
    assert [m for _, m in batch] == good + later
    dead = await redis_client.xrange("stream:persist:dead")
    assert len(dead) == 3
    assert dead[0][1][b"m"] == b"{not json" and b"undecodable" in dead[0][1][b"reason"]
    assert await queue.backlog() == 2  # only the two good ones, pending


@pytest.mark.gen_test
async def test_reject_moves_entries_aside_with_the_reason(redis_client):
    sent = await deliver(redis_client, 2)
    queue = RedisPersistQueue(redis_client)
    (first, _), (second, _) = await queue.take("p", 10, 100)
    await queue.reject([first], "refused by the store")
    (dead,) = await redis_client.xrange("stream:persist:dead")
    assert dead[1][b"entry_id"].decode() == first and dead[1][b"reason"] == b"refused by the store"
    assert Message.from_record(orjson.loads(dead[1][b"m"])) == sent[0]
    assert await queue.backlog() == 1


@pytest.mark.gen_test
async def test_the_group_is_made_again_when_redis_lost_it(redis_client):
    queue = RedisPersistQueue(redis_client)
    await queue.backlog()
    await redis_client.delete("stream:persist")  # as after a restart without persistence
    sent = await deliver(redis_client, 1)
    assert await queue.take("p", 10, 10) == []  # NOGROUP noticed
    assert [m for _, m in await queue.take("p", 10, 10)] == sent


async def consumers(client) -> set[str]:
    return {info["name"] if isinstance(info["name"], str) else info["name"].decode()
            for info in await client.xinfo_consumers("stream:persist", "persisters")}


@pytest.mark.gen_test
async def test_a_consumer_that_leaves_is_forgotten_unless_it_holds_entries(redis_client):
    await deliver(redis_client, 3)
    queue = RedisPersistQueue(redis_client)
    done = await queue.take("done", 2, 10)
    await queue.ack([entry_id for entry_id, _ in done])
    assert len(await queue.take("holding", 1, 10)) == 1  # taken, never acked
    assert await consumers(redis_client) == {"done", "holding"}
    assert await queue.leave("done") is True
    assert await queue.leave("holding") is False  # another consumer must be able to claim it
    assert await queue.leave("never-seen") is True
    assert await consumers(redis_client) == {"holding"}
    assert await queue.backlog() == 1


@pytest.mark.gen_test
async def test_a_persister_that_stops_leaves_the_group(redis_client):
    from application.persister import Persister
    from tests.fakes.repositories import MemoryMessageStore

    sent = await deliver(redis_client, 3)
    store = MemoryMessageStore()
    persister = Persister(RedisPersistQueue(redis_client), store, "worker-1", block_ms=10)
    stop = asyncio.Event()
    task = asyncio.ensure_future(persister.run(stop))
    while len(store.rows) < 3:
        await asyncio.sleep(0.01)
    assert "worker-1" in await consumers(redis_client)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert store.rows == sent and await consumers(redis_client) == set()
