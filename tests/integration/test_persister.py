"""The Persister with the real RedisPersistQueue and an in-memory MessageStore:
batches saved then acked, outages retried without acking, nothing lost or doubled."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.redis.inbox import RedisInbox
from adapters.redis.persist_queue import RedisPersistQueue
from application import persister as persister_module
from application.persister import Persister, StoreRefused
from domain.errors import ServiceUnavailable
from domain.model import PRIVATE, Message
from tests.fakes.repositories import MemoryMessageStore
from tests.services.redis import make_client
from tests.services.reply_dropper import ReplyDropper

pytestmark = pytest.mark.redis


class FlakyStore(MemoryMessageStore):
    """Down for the next `down` calls; refuses (as a bad row) the messages in `refuse`."""

    def __init__(self, down: int = 0, refuse: set[str] | None = None):
        super().__init__()
        self.down = down
        self.refuse = refuse or set()
        self.calls = 0

    async def save(self, messages, order=None):
        self.calls += 1
        if self.down > 0:
            self.down -= 1
            raise ServiceUnavailable("database down")
        if any(m.id in self.refuse for m in messages):
            raise ValueError("Incorrect string value")
        await super().save(messages, order)


class AckFails(RedisPersistQueue):
    """The process dies between the commit and the ack: the ack never reaches Redis."""

    async def ack(self, entry_ids):
        raise ServiceUnavailable("redis went away")


def message(content: str) -> Message:
    return Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id="a", to_user_id="b", content=content,
                   created_at=1_700_000_000)


async def deliver(client, count: int) -> list[Message]:
    inbox = RedisInbox(client, channel="courier-test:unused")
    return [(await inbox.deliver(message(f"m{i}"), ["b"])).message for i in range(count)]  # with their seqs


@pytest.mark.gen_test
async def test_run_once_saves_a_batch_then_acks_it(redis_client):
    sent = await deliver(redis_client, 7)
    queue, store = RedisPersistQueue(redis_client), MemoryMessageStore()
    persister = Persister(queue, store, "p1", batch_size=5, block_ms=10)
    assert await persister.run_once() == 5
    assert store.rows == sent[:5] and await queue.backlog() == 2
    assert await persister.run_once() == 2
    assert await persister.run_once() == 0
    assert store.rows == sent and await queue.backlog() == 0 and persister.saved == 7


@pytest.mark.gen_test
async def test_an_outage_acks_nothing_and_the_batch_is_saved_exactly_once_later(redis_client):
    sent = await deliver(redis_client, 3)
    queue, store = RedisPersistQueue(redis_client), FlakyStore(down=2)
    persister = Persister(queue, store, "p1", block_ms=10)
    for _ in range(2):
        with pytest.raises(ServiceUnavailable):
            await persister.run_once()
        assert store.rows == []
        assert await queue.backlog() == 3  # all still pending: nothing acked
    await deliver(redis_client, 2)  # newer messages wait their turn
    assert await persister.run_once() == 3  # the same batch again, not a new one
    assert store.rows == sent and await queue.backlog() == 2


@pytest.mark.gen_test
async def test_a_crash_between_commit_and_ack_neither_loses_nor_doubles(redis_client):
    sent = await deliver(redis_client, 4)
    store = MemoryMessageStore()
    dying = Persister(AckFails(redis_client, claim_idle_ms=100), store, "dying", block_ms=10)
    with pytest.raises(ServiceUnavailable):
        await dying.run_once()
    assert store.rows == sent  # committed, never acked

    await asyncio.sleep(0.15)  # another worker claims what the dead one left pending
    survivor = Persister(RedisPersistQueue(redis_client, claim_idle_ms=100), store, "survivor", block_ms=10)
    assert await survivor.run_once() == 4
    assert store.rows == sent  # saved again idempotently: still once each
    assert await survivor._queue.backlog() == 0


@pytest.mark.gen_test
async def test_a_message_the_store_keeps_refusing_is_moved_aside(redis_client):
    sent = await deliver(redis_client, 4)
    store = FlakyStore(refuse={sent[1].id})
    queue = RedisPersistQueue(redis_client)
    persister = Persister(queue, store, "p", block_ms=10, max_attempts=3)
    with pytest.raises(StoreRefused):
        await persister.run_once()
    assert store.rows == [sent[0], sent[2], sent[3]]  # the others are not held back
    assert await queue.backlog() == 1
    with pytest.raises(StoreRefused):
        await persister.run_once()  # second refusal
    assert await persister.run_once() == 0  # third: given up, moved aside
    (dead,) = await redis_client.xrange("stream:persist:dead")
    assert b"refused by the store" in dead[1][b"reason"]
    assert await queue.backlog() == 0 and store.rows == [sent[0], sent[2], sent[3]]


@pytest.mark.gen_test(timeout=15)
async def test_run_rides_out_an_outage_and_stops_on_the_event(redis_client):
    sent = await deliver(redis_client, 20)
    store = FlakyStore(down=3)
    persister = Persister(RedisPersistQueue(redis_client), store, "p", batch_size=8, block_ms=20,
                          min_backoff=0.01, max_backoff=0.05)
    stop = asyncio.Event()
    task = asyncio.ensure_future(persister.run(stop))
    for _ in range(300):
        if len(store.rows) == 20:
            break
        await asyncio.sleep(0.01)
    more = await deliver(redis_client, 3)  # live traffic keeps flowing
    for _ in range(300):
        if len(store.rows) == 23:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert store.rows == sent + more
    assert store.calls >= 3 + 3  # the outage was retried, with backoff rather than a busy loop
    assert store.calls < 50


@pytest.mark.gen_test
async def test_run_survives_redis_being_unreachable(down_client):
    queue = RedisPersistQueue(down_client)
    persister = Persister(queue, MemoryMessageStore(), "p", block_ms=10, min_backoff=0.01, max_backoff=0.02)
    with pytest.raises(ServiceUnavailable):
        await persister.run_once()
    stop = asyncio.Event()
    task = asyncio.ensure_future(persister.run(stop))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 2)


@pytest.mark.gen_test(timeout=30)
async def test_with_the_sql_store_a_redelivered_batch_is_stored_once(redis_client, db):
    sent, store = await deliver_between_real_users(redis_client, db, 10)
    with pytest.raises(ServiceUnavailable):
        await Persister(AckFails(redis_client, claim_idle_ms=50), store, "dying", block_ms=10).run_once()
    await asyncio.sleep(0.1)
    survivor = Persister(RedisPersistQueue(redis_client, claim_idle_ms=50), store, "survivor", block_ms=10)
    assert await survivor.run_once() == 10
    page = await store.private_history(sent[0].from_user_id, sent[0].to_user_id, None, 50)
    assert [m.id for m in reversed(page.messages)] == [m.id for m in sent]


@pytest.mark.gen_test(timeout=30)
async def test_with_the_sql_store_a_message_it_refuses_is_moved_aside_at_once(redis_client, db):
    good, store = await deliver_between_real_users(redis_client, db, 3)
    unknown_sender = message("from nobody")
    await RedisInbox(redis_client, channel="courier-test:unused").deliver(unknown_sender, ["b"])
    queue = RedisPersistQueue(redis_client)
    assert await Persister(queue, store, "p", block_ms=10).run_once() == 3  # no retry rounds
    (dead,) = await redis_client.xrange("stream:persist:dead")
    assert unknown_sender.id.encode() in dead[1][b"m"] and await queue.backlog() == 0
    page = await store.private_history(good[0].from_user_id, good[0].to_user_id, None, 50)
    assert len(page.messages) == 3


async def deliver_between_real_users(client, db, count: int):
    from adapters.sql.messages import SqlMessageStore
    from adapters.sql.users import SqlUserRepository
    from domain.model import User

    users = SqlUserRepository(db)
    alice, bob = (User(str(uuid.uuid4()), name + uuid.uuid4().hex[:6], "hash") for name in ("alice", "bob"))
    await users.add(alice)
    await users.add(bob)
    inbox = RedisInbox(client, channel="courier-test:unused")
    sent = [replace(message(f"m{i} 😀"), from_user_id=alice.id, to_user_id=bob.id) for i in range(count)]
    sent = [(await inbox.deliver(m, [bob.id])).message for m in sent]
    return sent, SqlMessageStore(db)


@pytest.mark.gen_test
async def test_linger_fills_a_batch_with_what_arrives_meanwhile(redis_client, monkeypatch):
    """A take that brings less than a full batch looks again a step later and takes what
    came in the meantime, so a steady trickle is stored in few batches; the first look
    that finds nothing stores the batch. Nothing is lost or doubled."""
    monkeypatch.setattr(persister_module, "LINGER_STEP", 0.3)
    first = await deliver(redis_client, 2)
    queue, store = RedisPersistQueue(redis_client), MemoryMessageStore()
    persister = Persister(queue, store, "p1", batch_size=10, block_ms=10, linger=1.0)
    saving = asyncio.ensure_future(persister.run_once())
    await asyncio.sleep(0.05)
    later = await deliver(redis_client, 3)  # arrives before the first look
    assert await saving == 5
    assert store.rows == first + later and await queue.backlog() == 0
    assert await persister.run_once() == 0


@pytest.mark.gen_test(timeout=15)
async def test_entries_whose_take_reply_was_lost_are_taken_again_at_once(private_redis):
    """Redis moved the entries to this persister's pending list, but the reply never
    came: the next take must hand them over, not leave them to the claim of an idle
    persister (claim_idle_ms, 30 s by default)."""
    inbox_client = make_client(private_redis.url)
    proxy = ReplyDropper(private_redis.port, command=b"XREADGROUP")
    client = make_client(await proxy.start(), retry=Retry(NoBackoff(), 3))
    try:
        queue = RedisPersistQueue(client)
        assert await queue.take("p1", 10, 0) == []  # the group exists, the first recovery is done
        sent = [(await RedisInbox(inbox_client).deliver(message(f"m{i}"), ["b"])).message for i in range(3)]
        proxy.armed = True
        with pytest.raises(ServiceUnavailable):
            await queue.take("p1", 10, 0)
        assert private_redis.command("XPENDING", "stream:persist", "persisters")["pending"] == 3  # they did move
        taken = await queue.take("p1", 10, 0)
        assert [message for _, message in taken] == sent
    finally:
        await client.aclose()
        await inbox_client.aclose()
        await proxy.close()


@pytest.mark.gen_test(timeout=30)
async def test_with_the_sql_store_history_keeps_the_order_of_acceptance_not_of_storing(redis_client, db):
    """A batch a dead persister left pending is stored after later messages: the history
    (newest first) still lists them in the order they were accepted."""
    early, store = await deliver_between_real_users(redis_client, db, 3)
    taken = await RedisPersistQueue(redis_client, claim_idle_ms=50).take("dying", 3, 10)  # then it dies
    assert [m.id for _, m in taken] == [m.id for m in early]
    late = [replace(m, id=str(uuid.uuid4()), content=f"late {i}", seq=None) for i, m in enumerate(early)]
    inbox = RedisInbox(redis_client, channel="courier-test:unused")
    late = [(await inbox.deliver(m, [m.to_user_id])).message for m in late]
    survivor = Persister(RedisPersistQueue(redis_client, claim_idle_ms=50), store, "survivor", block_ms=10)
    assert await survivor.run_once() == 3  # the late ones: the early ones are not idle long enough yet
    await asyncio.sleep(0.1)
    assert await survivor.run_once() == 3  # the early ones, claimed from the dead persister
    accepted = [m.id for m in early + late]
    page = await store.private_history(early[0].from_user_id, early[0].to_user_id, None, 50)
    assert [m.id for m in page.messages] == accepted[::-1]
    # Paging follows the same order.
    seen, before = [], None
    while True:
        page = await store.private_history(early[0].from_user_id, early[0].to_user_id, before, 2)
        seen += [m.id for m in page.messages]
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == accepted[::-1]
