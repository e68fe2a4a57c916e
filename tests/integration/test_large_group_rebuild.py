"""A large group after Redis lost its data (docs/design/large-groups.md, section 7.3): the
worker's rebuild (SeqCounters) restores lg:{G}, its members at a new floor, lgm:<U>,
lg:streams and the poisoned small counter from SQL before it sets seq:complete; until
then a send answers 503. Real Redis, SQLite and MariaDB."""
from __future__ import annotations

import uuid

import pytest

from adapters.redis.checkpoints import RedisCursorCheckpoints
from adapters.redis.group_persist_queue import RedisGroupPersistQueue
from adapters.redis.group_streams import LOG, MEMBERS, STATE, RedisGroupStreams
from adapters.redis.inbox import SEQ_COMPLETE, RedisInbox
from adapters.redis.large_group_keys import LARGE_GROUPS_OF, STREAMS
from adapters.redis.seq_counters import SeqCounters
from adapters.sql.groups import SqlGroupRepository
from adapters.sql.messages import SqlMessageStore
from adapters.sql.users import SqlUserRepository
from application.persister import Persister
from application.ports import GroupSwitch
from application.timeline import Timeline
from domain import errors
from domain.model import GROUP, KIND_CHANNEL, Group, Message, User

pytestmark = pytest.mark.redis


def new_id() -> str:
    return str(uuid.uuid4())


def post(sender: str, group_id: str, content: str) -> Message:
    return Message(type=GROUP, id=new_id(), from_user_id=sender, group_id=group_id, content=content,
                   created_at=1_700_000_000)


async def persist_all(redis_client, store: SqlMessageStore) -> None:
    persister = Persister(RedisGroupPersistQueue(redis_client), store, "rebuild-test", batch_size=50, block_ms=10)
    for _ in range(5):
        await persister.run_once()


async def stored(db, group_id: str) -> list[tuple[str, int]]:
    page = await SqlMessageStore(db).group_history(group_id, None, 100)
    return sorted((m.id, m.seq) for m in page.messages)


@pytest.fixture
def world(db, redis_client, io_loop):
    """Users anna (owner), bob, carol, dave; a group of the four, large past 3 members
    (switched in SQL and applied to Redis as the announcer would)."""
    names = ("anna", "bob", "carol", "dave")
    ids = {name: new_id() for name in names}
    ids["group"] = new_id()

    async def setup() -> GroupSwitch:
        users = SqlUserRepository(db)
        for name in names:
            await users.add(User(id=ids[name], username=name, password_hash="h"))
        switch = await SqlGroupRepository(db, large_group=3).add(
            Group(id=ids["group"], name="big", owner_id=ids["anna"], member_ids=[ids[n] for n in names]))
        assert switch is not None
        await redis_client.set(SEQ_COMPLETE, "1")  # the worker had run
        await streams(db, redis_client).apply(switch)
        return switch

    ids["stream"] = io_loop.run_sync(setup).stream
    return ids


def streams(db, redis_client) -> RedisGroupStreams:
    return RedisGroupStreams(redis_client, last_seq=SqlMessageStore(db).last_seq)


def counters(db, redis_client, page: int = 1000) -> SeqCounters:
    return SeqCounters(redis_client, SqlMessageStore(db).highest_seqs, large_groups=SqlGroupRepository(db).large_groups,
                       streams=streams(db, redis_client), page=page)


@pytest.mark.gen_test
async def test_after_a_loss_the_rebuild_restores_a_large_group_from_sql(db, redis_client, world):
    g, anna, bob, carol, dave = (world[k] for k in ("group", "anna", "bob", "carol", "dave"))
    store = SqlMessageStore(db)
    lg = streams(db, redis_client)
    timeline = Timeline(RedisInbox(redis_client), lg, RedisCursorCheckpoints(redis_client))
    before = [(await lg.deliver(post(anna if i % 2 else bob, g, f"before {i}"))).message for i in range(3)]
    assert [m.seq for m in before] == [1, 2, 3]
    await persist_all(redis_client, store)
    # dave leaves (SQL first; its announcement never reaches Redis: lost with the rest).
    await SqlGroupRepository(db, large_group=3).remove_member(g, dave, None)
    page = await timeline.read(carol, None, 10)
    assert [d.event.id for d in page.deliveries if isinstance(d.event, Message)] == [m.id for m in before]
    old_cursor = page.next_cursor
    assert old_cursor is not None

    await redis_client.flushdb()  # Redis lost its data
    with pytest.raises(errors.ServiceUnavailable):  # no state, no marker: 503, nothing written
        await lg.deliver(post(anna, g, "during the loss"))
    assert await redis_client.exists(STATE.format(g), LOG.format(g)) == 0

    assert await counters(db, redis_client, page=1).rebuild() == 1  # the group's conversation
    assert await redis_client.get(SEQ_COMPLETE) == b"1"
    state = await redis_client.hgetall(STATE.format(g))
    floor = state[b"floor"]
    assert {k: v for k, v in state.items() if k != b"floor"} == {
        b"sno": str(world["stream"]).encode(), b"seq": b"3", b"mv": b"1", b"owner": anna.encode(), b"kind": b"group"}
    assert await redis_client.hgetall(MEMBERS.format(g)) == {
        u.encode(): floor + b",+" for u in (anna, bob, carol)}  # dave left in SQL: not a member
    assert [entry[0] for entry in await redis_client.xrange(LOG.format(g))] == [floor]  # the switched marker
    assert await redis_client.hgetall(STREAMS) == {str(world["stream"]).encode(): g.encode()}
    for user in (anna, bob, carol):
        assert await redis_client.smembers(LARGE_GROUPS_OF.format(user)) == {g.encode()}
    assert await redis_client.get("seq:g:" + g) == b"L"
    with pytest.raises(errors.GroupIsLarge):  # the small path stays off
        await RedisInbox(redis_client).deliver(post(bob, g, "small"), [anna, bob, carol])

    # Sends continue with the next seq; members read them; dave is refused.
    after = [(await lg.deliver(post(bob if i % 2 else anna, g, f"after {i}"))).message for i in range(2)]
    assert [m.seq for m in after] == [4, 5]
    with pytest.raises(errors.NotAMember):
        await lg.deliver(post(dave, g, "gone"))
    for user in (bob, carol):
        page = await timeline.read(user, None, 10)
        assert [d.event.id for d in page.deliveries if isinstance(d.event, Message)] == [m.id for m in after]
    # A cursor from before the loss answers 410, as an inbox cursor does.
    with pytest.raises((errors.CursorExpired, errors.CursorUnknown)):
        await timeline.read(carol, old_cursor, 10)
    # The worker persists the new messages after the old ones: seqs 1..5, each once.
    await persist_all(redis_client, store)
    assert await stored(db, g) == sorted((m.id, m.seq) for m in before + after)

    # A second rebuild (the marker lost again) leaves the restored group as it is.
    await redis_client.delete(SEQ_COMPLETE)
    assert await counters(db, redis_client).rebuild() == 1
    assert (await redis_client.hgetall(STATE.format(g)))[b"seq"] == b"5"
    assert (await lg.deliver(post(carol, g, "again"))).message.seq == 6


@pytest.mark.gen_test
async def test_a_lost_group_state_with_its_counter_left_at_L_is_restored(db, redis_client, world):
    """A partial loss: seq:g:<G> kept 'L', lg:{G} gone (the switch answers LOST)."""
    g, anna = world["group"], world["anna"]
    lg = streams(db, redis_client)
    sent = [(await lg.deliver(post(anna, g, f"m{i}"))).message for i in range(2)]
    await persist_all(redis_client, SqlMessageStore(db))
    await redis_client.delete(STATE.format(g), SEQ_COMPLETE)
    assert await counters(db, redis_client).rebuild() == 1
    assert (await lg.deliver(post(anna, g, "next"))).message.seq == sent[-1].seq + 1


@pytest.mark.gen_test
async def test_the_keeper_restores_large_groups_and_channels_page_by_page(db, redis_client, world):
    anna, bob = world["anna"], world["bob"]
    groups = SqlGroupRepository(db, large_group=3)
    channel = new_id()
    switch = await groups.add(Group(id=channel, name="news", owner_id=anna, member_ids=[anna, bob],
                                    kind=KIND_CHANNEL))
    assert switch is not None
    await redis_client.flushdb()
    keeper = counters(db, redis_client, page=1)
    assert await keeper.check()
    assert (await redis_client.hgetall(STATE.format(channel)))[b"kind"] == b"channel"
    assert set(await redis_client.hgetall(STREAMS)) == {str(world["stream"]).encode(), str(switch.stream).encode()}
    assert (await streams(db, redis_client).deliver(post(anna, channel, "news"))).message.seq == 1
    with pytest.raises(errors.NotAllowed):
        await streams(db, redis_client).deliver(post(bob, channel, "not the owner"))
