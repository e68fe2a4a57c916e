"""seq:complete, the seq counters' marker (adapters/redis/seq_counters.py): with it a
missing counter starts from 0 without asking the database; `courier worker` sets it once
every conversation stored in the database has its counter, never lowering one."""
from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from adapters.redis.inbox import SEQ_COMPLETE, RedisInbox
from adapters.redis.seq_counters import SeqCounters
from adapters.sql.groups import SqlGroupRepository
from adapters.sql.messages import SqlMessageStore
from adapters.sql.users import SqlUserRepository
from domain import errors
from domain.model import GROUP, PRIVATE, Group, Message, User

pytestmark = pytest.mark.redis


def new_id() -> str:
    return str(uuid.uuid4())


def private(sender: str, to: str, content: str = "hi", **kw) -> Message:
    return Message(type=PRIVATE, id=new_id(), from_user_id=sender, to_user_id=to, content=content,
                   created_at=1_700_000_000, **kw)


def group_message(sender: str, group_id: str, content: str = "hi", **kw) -> Message:
    return Message(type=GROUP, id=new_id(), from_user_id=sender, group_id=group_id, content=content,
                   created_at=1_700_000_000, **kw)


async def database_down(conversation: str) -> int:
    raise errors.ServiceUnavailable("database down")


async def counter(client, conversation: str) -> int | None:
    value = await client.get("seq:" + conversation)
    return int(value) if value is not None else None


@pytest.mark.gen_test
async def test_with_the_marker_a_missing_counter_starts_at_1_without_the_database(redis_client):
    inbox = RedisInbox(redis_client, last_seq=database_down)
    await redis_client.set(SEQ_COMPLETE, "1")
    first = (await inbox.deliver(private("a", "b"), ["b"])).message
    assert first.seq == 1
    assert (await inbox.deliver(group_message("a", new_id()), ["b"])).message.seq == 1
    assert (await inbox.deliver(private("b", "a"), ["a"])).message.seq == 2


@pytest.mark.gen_test
async def test_without_the_marker_a_missing_counter_asks_the_database(redis_client):
    asked = []

    async def last_seq(conversation: str) -> int:
        asked.append(conversation)
        return 7

    inbox = RedisInbox(redis_client, last_seq=last_seq)
    first = (await inbox.deliver(private("a", "b"), ["b"])).message
    assert first.seq == 8 and asked == [first.conversation]
    with pytest.raises(errors.ServiceUnavailable):  # and nothing appended
        await RedisInbox(redis_client, last_seq=database_down).deliver(group_message("a", new_id()), ["b"])
    assert len(await redis_client.xrange("stream:private:b")) == 1


@pytest.fixture
def people(db, io_loop) -> dict[str, str]:
    """Users anna, bob, carol and two groups."""
    ids = {name: new_id() for name in ("anna", "bob", "carol", "group", "other")}

    async def setup():
        users = SqlUserRepository(db)
        for name in ("anna", "bob", "carol"):
            await users.add(User(id=ids[name], username=name, password_hash="h"))
        members = [ids["anna"], ids["bob"], ids["carol"]]
        for group in ("group", "other"):
            await SqlGroupRepository(db).add(Group(id=ids[group], name=group, owner_id=ids["anna"],
                                                   member_ids=members))

    io_loop.run_sync(setup)
    return ids


@pytest.mark.gen_test
@pytest.mark.parametrize("page", [1, 2, 1000])
async def test_the_worker_gives_every_stored_conversation_its_counter_then_sets_the_marker(
        db, people, redis_client, page):
    store = SqlMessageStore(db)
    a, b, c, g, other = (people[k] for k in ("anna", "bob", "carol", "group", "other"))
    ab = [private(a, b), private(b, a), private(a, b)]
    ac = [private(c, a)]
    group = [group_message(a, g) for _ in range(4)]
    others = [group_message(b, other) for _ in range(2)]
    await store.save(ab + ac + group + others)
    # A counter ahead of the database (its messages still in stream:persist) stays.
    await redis_client.set("seq:" + group[0].conversation, 40)
    assert sorted(await store.highest_seqs(None, 1000)) == sorted(
        [(ab[0].conversation, 3), (ac[0].conversation, 1), (group[0].conversation, 4),
         (others[0].conversation, 2)])

    counters = SeqCounters(redis_client, store.highest_seqs, page=page)
    assert not await counters.complete()
    assert await counters.rebuild() == 4
    assert await counters.complete()
    assert await counter(redis_client, ab[0].conversation) == 3
    assert await counter(redis_client, ac[0].conversation) == 1
    assert await counter(redis_client, group[0].conversation) == 40
    assert await counter(redis_client, others[0].conversation) == 2
    assert await redis_client.keys("seq:rebuilding:*") == []
    inbox = RedisInbox(redis_client, last_seq=database_down)
    assert (await inbox.deliver(private(b, a), [a])).message.seq == 4
    assert (await inbox.deliver(private(b, c), [c])).message.seq == 1  # a new conversation


@pytest.mark.gen_test
async def test_a_redis_that_loses_its_data_during_the_rebuild_gets_no_marker(redis_client):
    pages = [[("g:1", 5), ("g:2", 6)], [("p:a:b", 7)]]

    async def highest_seqs(after: str | None, limit: int) -> list[tuple[str, int]]:
        if after is not None:
            await redis_client.flushdb()  # between two pages: the first page's counters are gone
        return pages[after is not None]

    counters = SeqCounters(redis_client, highest_seqs, page=2)
    assert await counters.rebuild() is None
    assert not await counters.complete()
    assert await counter(redis_client, "g:1") is None


@pytest.mark.gen_test
async def test_the_keeper_rebuilds_a_lost_marker_and_waits_out_a_database_outage(redis_client, caplog):
    stored = [("g:1", 3)]
    down = True

    async def highest_seqs(after: str | None, limit: int) -> list[tuple[str, int]]:
        if down:
            raise errors.ServiceUnavailable("database down")
        return [entry for entry in stored if after is None or entry[0] > after][:limit]

    counters = SeqCounters(redis_client, highest_seqs, interval=0.05)
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="courier.seq"):
        keeper = asyncio.ensure_future(counters.keep(stop))
        try:
            await asyncio.sleep(0.2)
            assert not await counters.complete()
            down = False
            for _ in range(100):
                if await counters.complete():
                    break
                await asyncio.sleep(0.02)
            assert await counter(redis_client, "g:1") == 3
            await redis_client.flushdb()  # Redis lost its data: repaired without a restart
            for _ in range(100):
                if await counters.complete():
                    break
                await asyncio.sleep(0.02)
            assert await counter(redis_client, "g:1") == 3
        finally:
            stop.set()
            await keeper
    assert "database down" in caplog.text
    assert caplog.text.count("seq counters complete: 1 conversations") == 2
