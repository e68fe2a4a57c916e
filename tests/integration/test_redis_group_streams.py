"""RedisGroupStreams against a real Redis, beyond the contract (tests/contract/
test_group_streams.py): the switch at a message boundary while two gateways send
(docs/design/large-groups.md, section 4.2), its seeding, its floor, the old counter's
poison, and what the scripts publish."""
from __future__ import annotations

import asyncio
import random
import uuid

import orjson
import pytest
from redis.exceptions import ResponseError

from adapters.redis.checkpoints import NEXT, SLOT, TTL, RedisCursorCheckpoints
from adapters.redis.group_streams import CHANNEL, PERSIST, RedisGroupStreams
from adapters.redis.idempotency import RedisIdempotencyKeys, parse_answer
from adapters.redis.inbox import CURSOR_GENERATOR, PERSIST_STREAM, RedisInbox
from application.ports import APPLIED, GroupSwitch
from domain import errors
from domain.model import GROUP, Message, cursor_position
from tests.services.redis import make_client

pytestmark = pytest.mark.redis


def new_id() -> str:
    return str(uuid.uuid4())


def message(group_id: str, sender: str, content: str, client_msg_id: str | None = None) -> Message:
    return Message(type=GROUP, id=new_id(), from_user_id=sender, content=content, created_at=1_700_000_000,
                   group_id=group_id, client_msg_id=client_msg_id)


def switch(group_id: str, members: list[str], sno: int = 1) -> GroupSwitch:
    return GroupSwitch(group_id, new_id(), 3, sno, members[0], False, tuple(members))


@pytest.mark.gen_test(timeout=60)
async def test_the_switch_under_concurrent_sends_keeps_every_message_once_and_seqs_gapless(redis_url):
    """Two gateways (two clients) send into one group from many tasks while the switch
    runs. Each send takes the small path first, as SendGroupMessage does; a LARGE refusal
    is sent again by the large path. Every message must end up exactly once - in the own
    logs (small era) or in the group's log (large era), never both, never neither - with
    seqs exactly 1..N, every small-era seq below every large-era one, and the floor after
    every small-era entry and before every large-era one."""
    clients = [make_client(redis_url) for _ in range(2)]
    try:
        await clients[0].set("seq:complete", "1")
        group_id = new_id()
        members = [new_id() for _ in range(4)]
        reader = members[-1]
        gateways = [(RedisInbox(client), RedisGroupStreams(client), RedisIdempotencyKeys(client))
                    for client in clients]
        senders, per_sender = 24, 8
        total = senders * per_sender
        accepted: list[tuple[str, Message, str]] = []  # (era, message, cursor or stream id)
        half_done = asyncio.Event()

        async def send(index: int) -> None:
            inbox, streams, keys = gateways[index % 2]
            sender = members[index % 3]
            for i in range(per_sender):
                draft = message(group_id, sender, f"{index}-{i}", client_msg_id=f"{index}-{i}")
                assert await keys.remember(sender, draft.client_msg_id, draft) is None
                try:
                    small = await inbox.deliver(draft, members)
                    accepted.append(("small", small.message, small.cursors[reader]))
                except errors.GroupIsLarge:
                    posted = await streams.deliver(draft)
                    assert not posted.duplicate
                    await keys.confirm(sender, draft.client_msg_id, posted.message)  # the gateway's step
                    accepted.append(("large", posted.message, f"{posted.position[0]}-{posted.position[1]}"))
                if len(accepted) >= total // 2:
                    half_done.set()
                await asyncio.sleep(random.random() / 1000)  # interleave the tasks

        async def switch_midway() -> tuple[int, int]:
            await half_done.wait()
            applied = await gateways[0][1].apply(switch(group_id, members))
            assert applied.status == APPLIED and applied.position is not None
            return applied.position

        *_, floor = await asyncio.gather(*(send(index) for index in range(senders)), switch_midway())

        small = [(m, cursor) for era, m, cursor in accepted if era == "small"]
        large = [(m, cursor) for era, m, cursor in accepted if era == "large"]
        assert small and large, "the switch must fall among the sends"
        assert len(accepted) == total
        # Seqs: 1..N exactly, the small era's all before the large era's.
        assert sorted(m.seq for _, m, _ in accepted) == list(range(1, total + 1))
        assert max(m.seq for m, _ in small) < min(m.seq for m, _ in large)
        # Where each message is: in the own logs or in the group's log, once.
        inbox, streams, keys = gateways[0]
        own_log = [d for d in await inbox.read(reader, None, 10 * total) if d.event.type == GROUP]
        group_log = await streams.read(group_id, reader, floor, 10 * total)
        assert [d.event.id for d in own_log] == [m.id for m, _ in sorted(small, key=lambda x: x[0].seq)]
        assert [e.event.id for e in group_log] == [m.id for m, _ in sorted(large, key=lambda x: x[0].seq)]
        assert [d.event.seq for d in own_log] == [m.seq for m, _ in sorted(small, key=lambda x: x[0].seq)]
        assert [e.event.seq for e in group_log] == [m.seq for m, _ in sorted(large, key=lambda x: x[0].seq)]
        # The floor: after every small-era entry, before every large-era one.
        assert max(cursor_position(d.cursor) for d in own_log) < floor < group_log[0].position
        # Each persisted once, by the stream of its era.
        persisted = [orjson.loads(fields[b"m"])["id"] for _, fields in await clients[0].xrange(PERSIST_STREAM)]
        persisted_large = [orjson.loads(fields[b"m"])["id"]
                           for _, fields in await clients[0].xrange(PERSIST.format(group_id))]
        assert sorted(persisted) == sorted(m.id for m, _ in small)
        assert sorted(persisted_large) == sorted(m.id for m, _ in large)
        # Every idempotency answer is delivered, with the seq its message got.
        for era, m, _ in accepted:
            answer = parse_answer(await clients[1].get(f"idem:{m.from_user_id}:" + _digest(m.client_msg_id)))
            assert answer.delivered and answer.message.seq == m.seq, era
    finally:
        for client in clients:
            await client.aclose()


def _digest(client_msg_id: str | None) -> str:
    from adapters.redis.idempotency import idempotency_key

    return idempotency_key("x", str(client_msg_id)).split(":", 2)[2]


@pytest.mark.gen_test
async def test_the_old_counter_is_poisoned_so_an_old_gateways_incr_fails(redis_client):
    group_id, members = new_id(), [new_id(), new_id()]
    await redis_client.set(f"seq:g:{group_id}", 9)
    await RedisGroupStreams(redis_client).apply(switch(group_id, members))
    assert await redis_client.get(f"seq:g:{group_id}") == b"L"
    with pytest.raises(ResponseError):
        await redis_client.incr(f"seq:g:{group_id}")  # what deliver.lua of the previous version does
    assert (await RedisGroupStreams(redis_client).deliver(message(group_id, members[0], "x"))).message.seq == 10


@pytest.mark.gen_test
async def test_a_switch_without_a_counter_or_seq_complete_is_seeded_from_the_database(redis_client):
    asked = []

    async def last_seq(conversation: str) -> int:
        asked.append(conversation)
        return 17

    group_id, members = new_id(), [new_id()]
    streams = RedisGroupStreams(redis_client, last_seq=last_seq)
    assert (await streams.apply(switch(group_id, members))).status == APPLIED
    assert asked == [f"g:{group_id}"]
    assert (await streams.deliver(message(group_id, members[0], "x"))).message.seq == 18
    # With seq:complete, a missing counter is a group without messages: no question asked.
    await redis_client.set("seq:complete", "1")
    other = new_id()
    await streams.apply(switch(other, members, sno=2))
    assert asked == [f"g:{group_id}"]
    assert (await streams.deliver(message(other, members[0], "y"))).message.seq == 1


@pytest.mark.gen_test
async def test_the_floor_is_after_stream_last_id_even_when_it_is_ahead_of_the_clock(redis_client):
    """A clock that jumped back: stream:last-id is ahead of TIME. The floor goes after it,
    so the group's log still sorts after every own-log entry of its small era."""
    ahead = (2_000_000_000_000, 7)  # 2033
    await redis_client.set(CURSOR_GENERATOR, f"{ahead[0]}-{ahead[1]}")
    group_id, members = new_id(), [new_id()]
    await redis_client.set("seq:complete", "1")
    streams = RedisGroupStreams(redis_client)
    floor = (await streams.apply(switch(group_id, members))).position
    assert floor == (ahead[0], ahead[1] + 1)
    posted = await streams.deliver(message(group_id, members[0], "x"))
    assert posted.position > floor


@pytest.mark.gen_test
async def test_what_the_scripts_publish(redis_client, channel):
    """The switch on the main channel (after the group's small-era notifications), a
    message and a join on the group's own channel, each with its tail from the script."""
    group_id, members, newcomer = new_id(), [new_id(), new_id()], new_id()
    await redis_client.set("seq:complete", "1")
    streams = RedisGroupStreams(redis_client, channel=channel)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(channel, CHANNEL.format(group_id))
    try:
        for _ in range(2):
            assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"
        floor = (await streams.apply(switch(group_id, members, sno=5))).position
        posted = await streams.deliver(message(group_id, members[0], "hello"))
        from application.ports import JOIN, MemberChange

        join = (await streams.apply(MemberChange(JOIN, group_id, new_id(), 4, (newcomer,)))).position
        bodies = [orjson.loads((await pubsub.get_message(timeout=2))["data"]) for _ in range(3)]
    finally:
        await pubsub.aclose()
    assert bodies[0] == {"kind": "switched", "group": group_id, "stream": 5, "members": members,
                         "floor": f"{floor[0]}-{floor[1]}"}
    assert bodies[1]["kind"] == "group" and bodies[1]["group"] == group_id
    assert bodies[1]["event"]["id"] == posted.message.id and bodies[1]["seq"] == 1
    assert bodies[1]["pos"] == f"{posted.position[0]}-{posted.position[1]}"
    assert bodies[2] == {"kind": "member", "group": group_id, "users": [newcomer],
                         "join": f"{join[0]}-{join[1]}"}


@pytest.mark.gen_test
async def test_a_checkpoint_lives_for_its_ttl_and_a_new_counter_never_reuses_an_id(redis_client):
    checkpoints = RedisCursorCheckpoints(redis_client)
    user = new_id()
    first = await checkpoints.save(user, {1: (5, 0)})
    assert 0 < await redis_client.ttl(SLOT.format(user, first % 64)) <= TTL
    assert 0 < await redis_client.ttl(NEXT.format(user)) <= TTL
    # The counter expired with every checkpoint (or Redis lost it): the next id is still
    # new, so the old cursor's id cannot name the new checkpoint.
    await redis_client.delete(NEXT.format(user), SLOT.format(user, first % 64))
    # A new counter starts from the clock in milliseconds: a millisecond later at least (a
    # counter expires with its last checkpoint after the TTL, never a millisecond after it).
    await asyncio.sleep(0.002)
    second = await checkpoints.save(user, {1: (9, 0)})
    assert second > first
    with pytest.raises(errors.CursorExpired):
        await checkpoints.load(user, first)


@pytest.mark.gen_test
async def test_the_switch_names_the_group_in_lg_streams_where_the_worker_finds_it(redis_client):
    """lg:streams (sno -> group id) is the worker's only way to a group's persist stream
    (RedisGroupPersistQueue's sweep): apply writes it at the switch, before the script,
    and applying the switch again keeps it."""
    group_id, members = new_id(), [new_id()]
    streams = RedisGroupStreams(redis_client, last_seq=lambda conversation: asyncio.sleep(0, 0))
    assert (await streams.apply(switch(group_id, members, sno=7))).status == APPLIED
    assert await redis_client.hgetall("lg:streams") == {b"7": group_id.encode()}
    await streams.apply(switch(group_id, members, sno=7))
    assert await redis_client.hgetall("lg:streams") == {b"7": group_id.encode()}


@pytest.mark.gen_test
async def test_a_group_with_no_stream_state_after_redis_lost_its_data_answers_503_not_the_small_path(redis_client):
    # No lg:{G} and no seq:complete: Redis lost its data, and the small path would seed the
    # old counter and fan a large group out. With seq:complete, the switch is only on its way.
    streams, group_id, sender = RedisGroupStreams(redis_client), new_id(), new_id()
    with pytest.raises(errors.ServiceUnavailable) as lost:
        await streams.deliver(message(group_id, sender, "hi"))
    assert not isinstance(lost.value, errors.NoGroupStream)
    await redis_client.set("seq:complete", "1")
    with pytest.raises(errors.NoGroupStream):
        await streams.deliver(message(group_id, sender, "hi"))
