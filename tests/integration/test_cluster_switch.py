"""A group crossing the large-group threshold on a Redis Cluster while two gateways send to
it (adapters/redis/cluster_switch.py): each gateway has its own cluster client, its own
RedisClusterInbox (the small path: commit and appends) and RedisGroupStreams (the large
path), and sends as SendGroupMessage does - the small path until it answers LARGE, then the
stream, back to the small path while the stream is not there yet. The switch runs in the
middle. Every member then reads, through the timeline (its own log merged with the
group's stream), every accepted message once, in seq order, and the seqs are 1..n."""
from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from adapters.redis.buckets import Buckets
from adapters.redis.checkpoints import RedisCursorCheckpoints
from adapters.redis.cluster_inbox import RedisClusterInbox
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.group_streams import RedisGroupStreams
from adapters.redis.idempotency import RedisIdempotencyKeys
from application.ports import APPLIED, GroupSwitch
from application.timeline import Timeline
from domain import errors
from domain.model import GROUP, Message

pytestmark = pytest.mark.redis

SENDS = 40  # per gateway


def new_id() -> str:
    return str(uuid.uuid4())


async def no_messages_stored(conversation: str) -> int:
    return 0  # a new group: the database holds none of its messages


class Gateway:
    def __init__(self, client: AsyncRedisCluster, keys: ClusterKeys):
        self.inbox = RedisClusterInbox(client, keys.buckets, RedisIdempotencyKeys(client), exact_trim=True,
                                       last_seq=no_messages_stored)
        self.streams = RedisGroupStreams(client, exact_trim=True, keys=keys, last_seq=no_messages_stored)

    async def send(self, message: Message, members: list[str]) -> Message:
        """SendGroupMessage's paths: small until LARGE, then the stream (small again when
        its switch is not applied there yet: dispatch_to_stream)."""
        for _ in range(3):
            try:
                return (await self.inbox.deliver(message, members)).message
            except errors.GroupIsLarge:
                pass
            try:
                return (await self.streams.deliver(message)).message
            except errors.NoGroupStream:
                continue
        raise AssertionError("neither path took the message")


@pytest.mark.gen_test(timeout=90)
async def test_no_message_lost_doubled_or_out_of_seq_across_a_switch_under_concurrent_sends(redis_cluster):
    keys = ClusterKeys(Buckets())
    clients = [AsyncRedisCluster.from_url(redis_cluster.url, socket_connect_timeout=2) for _ in range(3)]
    for client in clients:
        await client.initialize()  # before any concurrent use (tests/services/redis_cluster.py)
    try:
        gateways = [Gateway(clients[0], keys), Gateway(clients[1], keys)]
        group_id = new_id()
        members = [new_id() for _ in range(8)]  # in as many buckets, on every master
        accepted: list[Message] = []

        async def sends(gateway: Gateway, rng: random.Random) -> None:
            for i in range(SENDS):
                sender = rng.choice(members)
                message = Message(type=GROUP, id=new_id(), from_user_id=sender, content=f"m{i}",
                                  created_at=1_700_000_000, group_id=group_id)
                accepted.append(await gateway.send(message, members))
                await asyncio.sleep(rng.random() * 0.004)

        async def switch() -> None:
            while len(accepted) < SENDS // 2:
                await asyncio.sleep(0.001)
            streams = RedisGroupStreams(clients[2], keys=keys, last_seq=no_messages_stored)
            applied = await streams.apply(GroupSwitch(group_id, new_id(), 9, random.randrange(1, 2**40), members[0],
                                                      False, tuple(members)))
            assert applied.status == APPLIED

        await asyncio.gather(sends(gateways[0], random.Random(1)), sends(gateways[1], random.Random(2)), switch())

        assert sorted(m.seq for m in accepted) == list(range(1, 2 * SENDS + 1))  # no seq lost or doubled
        small = [m.seq for m in accepted if m.seq is not None and m.seq <= await switched_at(clients[2], group_id)]
        assert 0 < len(small) < 2 * SENDS  # the switch fell among the sends
        timeline = Timeline(gateways[0].inbox, gateways[0].streams, RedisCursorCheckpoints(clients[0]))
        by_seq = sorted(accepted, key=lambda m: m.seq or 0)
        for member in members:
            read = [d.event for d in await read_all(timeline, member) if isinstance(d.event, Message)]
            assert [m.seq for m in read] == [m.seq for m in by_seq], member  # each once, in seq order
            assert [m.id for m in read] == [m.id for m in by_seq]
    finally:
        for client in clients:
            await client.aclose()


async def switched_at(client: AsyncRedisCluster, group_id: str) -> int:
    """The last seq of the small era: the group's first stream entry is the next."""
    return int(await client.get(ClusterKeys(Buckets()).seq_closed(f"g:{group_id}")))


async def read_all(timeline: Timeline, user_id: str) -> list:
    deliveries, cursor = [], None
    while True:
        page = await timeline.read(user_id, cursor, 25)
        deliveries += page.deliveries
        cursor = page.next_cursor
        if not page.has_more:
            return deliveries


@pytest.mark.gen_test(timeout=30)
async def test_a_switch_that_fails_leaves_lgm_and_lg_streams_harmless(redis_cluster_client):
    """lgm:<U> and lg:streams are written before the switch's steps (a resume after it
    always knows the group); a switch refused after them (here LOST: the small counter at
    'L' without its last seq) leaves them behind, and memberships passes over the group."""
    from redis.exceptions import ResponseError

    from adapters.redis.large_group_keys import LargeGroupKeys

    keys = ClusterKeys(Buckets())
    names = LargeGroupKeys(keys)  # in their buckets on a cluster
    group_id, members = new_id(), (new_id(), new_id())
    sno = random.randrange(1, 2**40)
    await redis_cluster_client.set(keys.seq(f"g:{group_id}"), "L")
    streams = RedisGroupStreams(redis_cluster_client, keys=keys, last_seq=no_messages_stored)
    with pytest.raises(ResponseError, match="LOST"):
        await streams.apply(GroupSwitch(group_id, new_id(), 9, sno, members[0], False, members))
    assert await redis_cluster_client.hget(names.streams(sno), str(sno)) == group_id.encode()
    assert await redis_cluster_client.sismember(names.groups_of(members[1]), group_id)
    assert await streams.memberships(members[1], [sno]) == []
    assert await streams.is_member(group_id, members[1]) is None
    # The restore (the worker's, after a loss) drops such a counter and switches from the database's seq.
    assert (await streams.restore(GroupSwitch(group_id, new_id(), 9, sno, members[0], False, members), 5)).status \
        == APPLIED
    (membership,) = await streams.memberships(members[1], [sno])
    assert (membership.group_id, membership.stream) == (group_id, sno)
    assert await redis_cluster_client.hget(f"lg:{{{group_id}}}", "seq") == b"5"
