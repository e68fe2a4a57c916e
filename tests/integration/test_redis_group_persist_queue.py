"""RedisGroupPersistQueue against a real Redis, under the real Persister: the large
groups' lg:{G}:persist streams reach the store exactly once, in each group's seq order
(docs/design/large-groups.md, sections 7.2 and 20)."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from adapters.redis.group_persist_queue import RedisGroupPersistQueue, split
from adapters.redis.group_streams import PERSIST, RedisGroupStreams
from application.persister import Persister
from application.ports import GroupSwitch
from domain.errors import ServiceUnavailable
from domain.model import GROUP, Message
from tests.fakes.repositories import MemoryMessageStore
from tests.integration.test_persister import FlakyStore

pytestmark = pytest.mark.redis


def new_id() -> str:
    return str(uuid.uuid4())


async def large_group(client, sno: int) -> tuple[str, str]:
    """A group switched to its own stream (lg:streams names it), and one member."""
    await client.set("seq:complete", "1")
    group_id, member = new_id(), new_id()
    await RedisGroupStreams(client).apply(GroupSwitch(group_id, new_id(), 3, sno, member, False, (member,)))
    return group_id, member


async def post(client, group_id: str, sender: str, count: int) -> list[Message]:
    streams = RedisGroupStreams(client)
    sent = []
    for i in range(count):
        draft = Message(type=GROUP, id=new_id(), from_user_id=sender, content=f"m{i}",
                        created_at=1_700_000_000, group_id=group_id)
        sent.append((await streams.deliver(draft)).message)  # with its seq
    return sent


def of_group(store: MemoryMessageStore, group_id: str) -> list[Message]:
    return [m for m in store.rows if m.group_id == group_id]


async def drain(persister: Persister, rounds: int = 20) -> None:
    for _ in range(rounds):
        await persister.run_once()


class AckFails(RedisGroupPersistQueue):
    """The process dies between the commit and the ack: the ack never reaches Redis."""

    async def ack(self, entry_ids):
        raise ServiceUnavailable("redis went away")


@pytest.mark.gen_test
async def test_two_groups_reach_the_store_exactly_once_in_seq_order(redis_client):
    (g1, a), (g2, b) = await large_group(redis_client, 1), await large_group(redis_client, 2)
    sent1, sent2 = await post(redis_client, g1, a, 7), await post(redis_client, g2, b, 5)
    queue, store = RedisGroupPersistQueue(redis_client), MemoryMessageStore()
    persister = Persister(queue, store, "p1", batch_size=4, block_ms=10)
    await drain(persister)
    assert of_group(store, g1) == sent1 and of_group(store, g2) == sent2
    assert len(store.rows) == 12 and persister.saved == 12
    assert await redis_client.xlen(PERSIST.format(g1)) == 0  # acked entries are deleted
    assert await queue.backlog() == 0
    # Posted after the first sweep: the stream is still active, taken without waiting for a sweep.
    more = await post(redis_client, g1, a, 2)
    await drain(persister, 3)
    assert of_group(store, g1) == sent1 + more


@pytest.mark.gen_test
async def test_entry_ids_name_their_stream(redis_client):
    g1, a = await large_group(redis_client, 1)
    await post(redis_client, g1, a, 1)
    queue = RedisGroupPersistQueue(redis_client)
    [(entry_id, _)] = await queue.take("p1", 10, 10)
    group_id, stream_id = split(entry_id)
    assert group_id == g1 and await redis_client.xrange(PERSIST.format(g1), stream_id, stream_id)
    ms, n = map(int, stream_id.split("-"))
    assert queue.acceptance_order(entry_id) == (ms << 20) | n


@pytest.mark.gen_test
async def test_a_worker_killed_between_save_and_ack_stores_the_rows_once_after_a_claim(redis_client):
    (g1, a), (g2, b) = await large_group(redis_client, 1), await large_group(redis_client, 2)
    sent = await post(redis_client, g1, a, 3) + await post(redis_client, g2, b, 3)
    store = MemoryMessageStore()
    dying = Persister(AckFails(redis_client, claim_idle_ms=100), store, "dead", batch_size=10, block_ms=10)
    with pytest.raises(ServiceUnavailable):
        await dying.run_once()
    assert sorted(m.id for m in store.rows) == sorted(m.id for m in sent)  # saved, never acked

    await asyncio.sleep(0.15)  # the entries go idle; another worker's sweep finds them pending
    alive = Persister(RedisGroupPersistQueue(redis_client, claim_idle_ms=100), store, "alive", block_ms=10)
    await drain(alive, 5)
    assert alive.saved == 6  # claimed and saved again: the idempotent save keeps one row each
    assert len(store.rows) == 6
    assert of_group(store, g1) == sent[:3] and of_group(store, g2) == sent[3:]
    for group_id in (g1, g2):
        assert await redis_client.xlen(PERSIST.format(group_id)) == 0


@pytest.mark.gen_test
async def test_a_refused_message_goes_to_the_groups_dead_stream(redis_client):
    g1, a = await large_group(redis_client, 1)
    sent = await post(redis_client, g1, a, 3)
    store = FlakyStore(refuse={sent[1].id})
    persister = Persister(RedisGroupPersistQueue(redis_client), store, "p1", block_ms=10, max_attempts=2,
                          min_backoff=0)
    for _ in range(4):
        try:
            await persister.run_once()
        except Exception:  # noqa: BLE001 - StoreRefused until it gives up
            pass
    assert [m.id for m in store.rows] == [sent[0].id, sent[2].id]
    dead = await redis_client.xrange(PERSIST.format(g1) + ":dead")
    assert len(dead) == 1 and b"refused" in dead[0][1][b"reason"]
    assert await redis_client.xlen(PERSIST.format(g1)) == 0


class Counting:
    """Counts the commands a client sends, pipelines included."""

    def __init__(self, client):
        self.commands: list[str] = []
        execute = client.execute_command

        async def counted(*args, **kwargs):
            self.commands.append(str(args[0]))
            return await execute(*args, **kwargs)

        client.execute_command = counted
        pipeline = client.pipeline

        def counted_pipeline(*args, **kwargs):
            self.commands.append("PIPELINE")
            return pipeline(*args, **kwargs)

        client.pipeline = counted_pipeline


@pytest.mark.gen_test
async def test_an_empty_deployment_costs_one_sweep_and_nothing_else(redis_client):
    counting = Counting(redis_client)
    queue = RedisGroupPersistQueue(redis_client, sweep_every=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(3):
        assert await queue.take("p1", 100, 50) == []
    assert loop.time() - started >= 0.15  # each empty take waited as a blocking read would
    assert counting.commands == ["HGETALL"]
    await asyncio.sleep(0.2)
    assert await queue.take("p1", 100, 0) == []
    assert counting.commands == ["HGETALL", "HGETALL"]  # the next sweep, nothing else


@pytest.mark.gen_test
async def test_large_groups_with_nothing_to_persist_cost_the_sweep_only(redis_client):
    g1, a = await large_group(redis_client, 1)
    await post(redis_client, g1, a, 1)
    queue = RedisGroupPersistQueue(redis_client, keep_idle=0.05)
    [(entry_id, _)] = await queue.take("p1", 10, 0)
    await queue.ack([entry_id])
    await large_group(redis_client, 2)  # large, never posted to
    await asyncio.sleep(0.06)
    assert await queue.take("p1", 10, 0) == []  # g1 brought nothing for keep_idle: it leaves the set
    counting = Counting(redis_client)
    queue._next_sweep = 0  # sweep now
    for _ in range(3):
        assert await queue.take("p1", 10, 0) == []
    assert counting.commands == ["HGETALL", "PIPELINE"]  # the XLENs, pipelined; no read of any stream


@pytest.mark.gen_test
async def test_a_group_that_becomes_large_later_is_found_by_the_next_sweep(redis_client):
    queue = RedisGroupPersistQueue(redis_client, sweep_every=0.1)
    assert await queue.take("p1", 10, 0) == []
    g1, a = await large_group(redis_client, 1)
    sent = await post(redis_client, g1, a, 2)
    assert await queue.take("p1", 10, 0) == []  # not swept yet
    await asyncio.sleep(0.12)
    assert [m for _, m in await queue.take("p1", 10, 0)] == sent


@pytest.mark.gen_test
async def test_a_busy_group_does_not_starve_a_quiet_one(redis_client):
    (busy, a), (quiet, b) = await large_group(redis_client, 1), await large_group(redis_client, 2)
    await post(redis_client, busy, a, 60)
    queue = RedisGroupPersistQueue(redis_client)
    for _ in range(2):  # the streams take turns going first: both orders are tried
        quiet_sent = await post(redis_client, quiet, b, 3)
        batch = await queue.take("p1", 10, 0)
        # One batch holds the quiet group's messages whichever stream went first ...
        assert [m for _, m in batch if m.group_id == quiet] == quiet_sent
        assert len(batch) == 10  # ... and the busy group fills the rest of it
        await queue.ack([entry_id for entry_id, _ in batch])
    alone = await queue.take("p1", 10, 0)
    assert len(alone) == 10 and all(m.group_id == busy for _, m in alone)  # a lone busy group fills batches
