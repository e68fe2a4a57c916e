"""The seq counters' markers on a Redis Cluster (adapters/redis/seq_counters.py given the
cluster's keys): the counters are commit.lua's, {t}:seq:<C> in each conversation's bucket,
and every bucket has its marker, set only when the bucket's own rebuild key survived.
Each test empties the session's cluster (FLUSHALL on the masters, as the e2e fixture does)
first and last: the markers it sets would change how other tests' counters start."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from adapters.redis.buckets import Buckets
from adapters.redis.cluster_inbox import RedisClusterInbox
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.group_streams import STATE, RedisGroupStreams
from adapters.redis.idempotency import RedisIdempotencyKeys
from adapters.redis.seq_counters import SeqCounters
from application.ports import GroupSwitch
from domain import errors
from domain.model import PRIVATE, Message

pytestmark = pytest.mark.redis


def new_id() -> str:
    return str(uuid.uuid4())


def private(sender: str, to: str) -> Message:
    return Message(type=PRIVATE, id=new_id(), from_user_id=sender, to_user_id=to, content="hi",
                   created_at=1_700_000_000)


async def database_down(conversation: str) -> int:
    raise errors.ServiceUnavailable("database down")


def flush_masters(redis_cluster) -> None:
    for master in redis_cluster.masters():
        redis_cluster.command(master.port, "FLUSHALL")


@pytest.fixture
def cluster(io_loop, redis_cluster, redis_cluster_client):
    io_loop.run_sync(redis_cluster_client.initialize)  # before any concurrent use
    flush_masters(redis_cluster)
    yield redis_cluster_client
    flush_masters(redis_cluster)


def conversations(count: int) -> list[tuple[str, int]]:
    """Private conversations (with their highest stored seq) in as many buckets, sorted as
    MessageStore.highest_seqs pages them."""
    return sorted((Message(type=PRIVATE, id="x", from_user_id=new_id(), to_user_id=new_id(), content="",
                           created_at=0).conversation, seq) for seq in range(1, count + 1))


def paged(stored: list[tuple[str, int]], between_pages=None):
    async def highest_seqs(after: str | None, limit: int) -> list[tuple[str, int]]:
        if after is not None and between_pages is not None:
            await between_pages()
        return [entry for entry in stored if after is None or entry[0] > after][:limit]

    return highest_seqs


@pytest.mark.gen_test(timeout=60)
async def test_after_a_flushall_of_the_masters_the_counters_and_every_buckets_marker_are_back(
        cluster, redis_cluster):
    keys = ClusterKeys(Buckets())
    stored = conversations(40)
    counters = SeqCounters(cluster, paged(stored), keys=keys, page=7, interval=0.05)
    assert not await counters.complete()
    assert await counters.rebuild() == 40
    assert await counters.complete()
    assert [int(await cluster.get(keys.seq(c))) for c, _ in stored] == [seq for _, seq in stored]
    for bucket in range(keys.buckets.count):  # no rebuild key left behind
        assert await cluster.keys(keys.buckets.tag(bucket) + ":seq-rebuilding:*") == []
    assert await cluster.exists("seq:complete") == 0  # one Redis's name: not the cluster's

    stop = asyncio.Event()
    keeper = asyncio.ensure_future(counters.keep(stop))
    try:
        flush_masters(redis_cluster)  # the cluster lost its data: repaired without a restart
        for _ in range(200):
            if await counters.complete():
                break
            await asyncio.sleep(0.02)
        assert await counters.complete()
    finally:
        stop.set()
        await keeper
    # A send needs no database: its conversation's counter, or its bucket's marker, is there.
    inbox = RedisClusterInbox(cluster, keys.buckets, RedisIdempotencyKeys(cluster), last_seq=database_down)
    conversation, seq = stored[0]
    low, high = conversation[2:].split(":")
    assert (await inbox.deliver(private(low, high), [high])).message.seq == seq + 1
    assert (await inbox.deliver(private(new_id(), low), [low])).message.seq == 1  # a new conversation


@pytest.mark.gen_test(timeout=60)
async def test_a_master_that_loses_its_data_during_the_rebuild_leaves_its_buckets_without_the_marker(
        cluster, redis_cluster):
    keys = ClusterKeys(Buckets())
    stored = conversations(30)
    lost = redis_cluster.masters()[0]
    flushed = []

    async def lose_one_master() -> None:
        if not flushed:
            redis_cluster.command(lost.port, "FLUSHALL")  # between two pages: its counters are gone
            flushed.append(lost.port)

    counters = SeqCounters(cluster, paged(stored, lose_one_master), keys=keys, page=10)
    assert await counters.rebuild() is None
    assert not await counters.complete()
    markers = [await cluster.exists(keys.seq_complete(bucket)) for bucket in range(keys.buckets.count)]
    on_lost = {bucket for bucket in range(keys.buckets.count)
               if cluster.get_node_from_key(keys.seq_complete(bucket)).port == lost.port}
    assert on_lost and all(not markers[bucket] for bucket in on_lost)
    assert all(markers[bucket] for bucket in set(range(keys.buckets.count)) - on_lost)
    # Called again (the keeper does) the rebuild completes: every counter is back.
    assert await SeqCounters(cluster, paged(stored), keys=keys, page=10).rebuild() == 30
    assert await counters.complete()
    assert [int(await cluster.get(keys.seq(c))) for c, _ in stored] == [seq for _, seq in stored]


@pytest.mark.gen_test(timeout=60)
async def test_the_rebuild_restores_a_large_group_on_the_cluster(cluster):
    keys = ClusterKeys(Buckets())
    group_id, members = new_id(), (new_id(), new_id())
    switch = GroupSwitch(group_id, new_id(), 4, 77, members[0], False, members)

    async def large_groups(after: int | None, limit: int):
        return [] if after is not None else [(switch, 9)]

    streams = RedisGroupStreams(cluster, keys=keys, last_seq=database_down)
    counters = SeqCounters(cluster, paged([(f"g:{group_id}", 9)]), large_groups=large_groups, streams=streams,
                           keys=keys)
    assert await counters.rebuild() == 1
    assert await counters.complete()
    assert await cluster.get(keys.seq(f"g:{group_id}")) == b"L"  # the counters' page left it
    assert await cluster.hget(STATE.format(group_id), "seq") == b"9"
    assert await streams.is_member(group_id, members[1]) is True
    # Its state lost alone (its node, not the counter's): restored from the database's seq
    # again, not from the small counter closed at the switch.
    await cluster.delete(STATE.format(group_id))
    await cluster.set(keys.seq_closed(f"g:{group_id}"), 2)
    await streams.restore(switch, 12)
    assert await cluster.hget(STATE.format(group_id), "seq") == b"12"
