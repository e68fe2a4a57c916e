"""The cluster inbox (adapters/redis/cluster_inbox.py) on the local Redis Cluster of
tests/services/redis_cluster.py (3 masters, 3 replicas): the send made of one commit and one
append per bucket keeps every guarantee of the one-Redis script.

- A property test: random groups spread over the buckets, random sends from two gateways at
  once (two clients, two inboxes), some retried through the other gateway: every recipient
  has every message exactly once, in cursor order, each conversation's in seq order, and the
  seqs of a conversation are 1..n.
- A gateway killed between the commit and its appends: the next send into the conversation
  makes them first (seq order kept in every log), the worker's relay makes them in a quiet
  conversation, and a retry with the same client_msg_id gets the original, appended once.
- The notifications: SPUBLISH on each bucket's channel of a gateway, with that bucket's recipients
  only (the gateway's side: test_redis_cluster_subscriber.py)."""
from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections import defaultdict

import orjson
import pytest

from adapters.redis.cluster_inbox import RedisClusterInbox
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.idempotency import idempotency_key
from domain.model import GROUP, PRIVATE, Message, cursor_position
from tests.services.cluster_gateways import BUCKETS, Gateway

pytestmark = pytest.mark.redis

def new_id() -> str:
    return str(uuid.uuid4())


def group_message(group_id: str, sender: str, content: str, **kw) -> Message:
    return Message(type=GROUP, id=new_id(), from_user_id=sender, content=content, created_at=1_700_000_000,
                   group_id=group_id, **kw)


def private(sender: str, to: str, content: str, **kw) -> Message:
    return Message(type=PRIVATE, id=new_id(), from_user_id=sender, to_user_id=to, content=content,
                   created_at=1_700_000_000, **kw)


async def everything(inbox: RedisClusterInbox, user_id: str):
    return await inbox.read(user_id, None, 10_000)


def assert_in_order(deliveries) -> None:
    """Cursors increase, and each conversation's seqs increase, down the log."""
    positions = [cursor_position(d.cursor) for d in deliveries]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    last: dict[str, int] = {}
    for d in deliveries:
        conversation = d.event.conversation
        assert d.event.seq > last.get(conversation, 0), (conversation, d.event.seq, last.get(conversation))
        last[conversation] = d.event.seq


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.gen_test(timeout=120)
async def test_random_sends_from_two_gateways_reach_every_recipient_once_in_order(gateways, seed):
    rng = random.Random(seed)
    people = [new_id() for _ in range(24)]
    assert len({BUCKETS.of(user) for user in people}) > 8  # spread over the buckets
    groups = {new_id(): rng.sample(people, rng.randint(2, 12)) for _ in range(6)}
    expected: dict[str, set[str]] = defaultdict(set)  # user -> message ids it must have
    sends = []
    for n in range(240):
        if rng.random() < 0.5:
            group_id = rng.choice(list(groups))
            members = groups[group_id]
            sender = rng.choice(members)
            message, recipients = group_message(group_id, sender, f"g{n}", client_msg_id=f"c{n}"), members
        else:
            sender, to = rng.sample(people, 2)
            message, recipients = private(sender, to, f"p{n}", client_msg_id=f"c{n}"), [to, sender]
        sends.append((message, recipients))
    accepted: dict[str, Message] = {}

    async def one(message: Message, recipients: list[str]) -> None:
        gateway = rng.choice(gateways)
        got = await gateway.send(message, recipients)
        accepted[message.id] = got
        if rng.random() < 0.2:  # a retry through the other gateway: the original, nothing more
            other = gateways[1 - gateways.index(gateway)]
            retry = dataclasses.replace(message, id=new_id())  # a new attempt, the same client_msg_id
            again = await other.send(retry, recipients)
            assert again.id == got.id

    for start in range(0, len(sends), 40):  # 40 sends at once, racing on the groups' counters
        await asyncio.gather(*(one(m, r) for m, r in sends[start:start + 40]))
    for message, recipients in sends:
        for user in recipients:
            expected[user].add(message.id)

    by_conversation: dict[str, list[int]] = defaultdict(list)
    for message in accepted.values():
        by_conversation[message.conversation].append(message.seq)
    for seqs in by_conversation.values():
        assert sorted(seqs) == list(range(1, len(seqs) + 1))  # no gap, no double
    for user in people:
        log = await everything(gateways[0].inbox, user)
        ids = [d.event.id for d in log]
        assert len(ids) == len(set(ids))  # exactly once
        assert set(ids) == expected[user]
        assert_in_order(log)
        for d in log:
            assert d.event.seq == accepted[d.event.id].seq


class Killed(Exception):
    """The gateway died here."""


async def commit_only(gateway: Gateway, message: Message, recipients: list[str]) -> None:
    """A send whose gateway dies after its commit, before any append."""
    original = gateway.inbox._append_work

    async def die(work, seq):
        raise Killed()

    gateway.inbox._append_work = die  # type: ignore[method-assign]
    try:
        with pytest.raises(Killed):
            await gateway.send(message, recipients)
    finally:
        gateway.inbox._append_work = original  # type: ignore[method-assign]


@pytest.mark.gen_test(timeout=60)
async def test_the_next_send_makes_the_appends_of_a_send_whose_gateway_died_after_its_commit(gateways):
    first, second = gateways
    people = [new_id() for _ in range(10)]
    group_id = new_id()
    await commit_only(first, group_message(group_id, people[0], "orphaned"), people)
    for user in people:
        assert await everything(second.inbox, user) == []  # committed, appended nowhere yet
    later = await second.send(group_message(group_id, people[1], "next"), people)
    assert later.seq == 2
    for user in people:
        log = await everything(second.inbox, user)
        assert [(d.event.content, d.event.seq) for d in log] == [("orphaned", 1), ("next", 2)]
    keys = ClusterKeys(BUCKETS)
    assert await second.client.hlen(keys.pending(f"g:{group_id}")) == 0  # both promises kept
    assert await second.client.zcard(keys.outbox(BUCKETS.of(f"g:{group_id}"))) == 0


@pytest.mark.gen_test(timeout=60)
async def test_the_relay_finishes_a_quiet_conversation_and_a_retry_gets_the_original_once(gateways):
    first, second = gateways
    a, b = new_id(), new_id()
    sent = private(a, b, "before the crash", client_msg_id="k-1")
    await commit_only(first, sent, [b, a])
    assert await everything(second.inbox, b) == []
    bucket = BUCKETS.of(sent.conversation)
    assert await second.inbox.finish_stale(bucket, older_than_ms=60_000) == 0  # not stale yet
    assert await second.inbox.finish_stale(bucket, older_than_ms=0) == 1
    for user in (a, b):
        assert [d.event.id for d in await everything(second.inbox, user)] == [sent.id]
    assert (await everything(second.inbox, a))[0].event.client_msg_id == "k-1"  # the sender's own record
    assert (await everything(second.inbox, b))[0].event.client_msg_id is None
    # The dead gateway's key stayed pending; once it is gone, a retry is a new attempt...
    await first.client.delete(idempotency_key(a, "k-1"))
    retry = private(a, b, "before the crash", client_msg_id="k-1")
    got = await second.send(retry, [b, a])
    # ...answered with the original from the commit's record, and appended nowhere again.
    assert (got.id, got.seq) == (sent.id, 1)
    for user in (a, b):
        assert [d.event.id for d in await everything(second.inbox, user)] == [sent.id]
    answer = await second.keys.remember(a, "k-1", private(a, b, "x", client_msg_id="k-1"))
    assert answer is not None and answer.delivered and answer.message.id == sent.id


@pytest.mark.gen_test(timeout=60)
async def test_a_retry_after_the_crash_makes_the_appends_itself(gateways):
    first, second = gateways
    a, b = new_id(), new_id()
    sent = private(a, b, "half sent", client_msg_id="k-2")
    await commit_only(first, sent, [b, a])
    # The pending answer gives way (as after its TTL) and the client retries elsewhere.
    await first.keys.forget(a, "k-2", sent)
    got = await second.send(private(a, b, "half sent", client_msg_id="k-2"), [b, a])
    assert got.id == sent.id
    for user in (a, b):
        assert [d.event.id for d in await everything(second.inbox, user)] == [sent.id]
    keys = ClusterKeys(BUCKETS)
    assert await second.client.zcard(keys.outbox(BUCKETS.of(sent.conversation))) == 0 or \
        not await second.client.zscore(keys.outbox(BUCKETS.of(sent.conversation)), f"{sent.conversation} 1")


@pytest.mark.gen_test(timeout=60)
async def test_each_bucket_publishes_its_own_recipients_on_its_own_channel(gateways, redis_cluster):
    gateway = gateways[0]
    keys = ClusterKeys(BUCKETS)
    people = [new_id() for _ in range(8)]
    by_bucket: dict[int, list[str]] = defaultdict(list)
    for user in people:
        by_bucket[BUCKETS.of(user)].append(user)
    # A gateway of its own that hears every user of those buckets (bucket_gateways.lua).
    listener = uuid.uuid4().hex
    for bucket in by_bucket:
        await gateway.client.hset(keys.audience(bucket), "*", listener)
        await gateway.client.hset(keys.leases(bucket), listener, 2 * 10**12)  # far on
    pubsub = gateway.client.pubsub()
    for bucket in by_bucket:
        await pubsub.ssubscribe(keys.channel(bucket, listener))
    for _ in by_bucket:  # the subscribe confirmations
        while (await pubsub.get_sharded_message(timeout=1.0)) is None:
            pass
    group_id = new_id()
    sent = await gateway.send(group_message(group_id, people[0], "hello"), people)
    heard: dict[int, dict] = {}
    for _ in range(len(by_bucket) * 20):
        if len(heard) == len(by_bucket):
            break
        reply = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=0.5)
        if reply is not None:
            channel = reply["channel"].decode()
            bucket = next(b for b in by_bucket if keys.channel(b, listener) == channel)
            heard[bucket] = orjson.loads(reply["data"])
    await pubsub.aclose()
    for bucket in by_bucket:
        await gateway.client.hdel(keys.audience(bucket), "*")
        await gateway.client.hdel(keys.leases(bucket), listener)
    assert set(heard) == set(by_bucket)
    for bucket, body in heard.items():
        assert sorted(body["to"]) == sorted(by_bucket[bucket])
        assert body["event"]["id"] == sent.id and body["seq"] == sent.seq
        for user in by_bucket[bucket]:
            log = await everything(gateway.inbox, user)
            assert log[-1].cursor == body.get("own", {}).get(user, body["cursor"])


# -- the worker's side ----------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_the_worker_stores_every_bucket_once_and_its_relay_finishes_a_dead_gateways_send(gateways):
    from adapters.redis.cluster_relay import ClusterSendRelay
    from adapters.redis.group_persist_queue import RedisBucketPersistQueue
    from application.persister import Persister
    from tests.fakes.repositories import MemoryMessageStore

    first, second = gateways
    people = [new_id() for _ in range(12)]
    sent = [await first.send(private(people[i], people[i + 1], f"m{i}"), [people[i + 1], people[i]])
            for i in range(11)]
    orphan = private(people[0], people[5], "orphaned")
    await commit_only(second, orphan, [people[5], people[0]])
    store = MemoryMessageStore()
    queue = RedisBucketPersistQueue(first.client, ClusterKeys(BUCKETS), sweep_every=0.05)
    persister = Persister(queue, store, "cluster-worker", batch_size=50, block_ms=10)
    # The streams are the session's: other tests' messages are stored too.
    ours = {m.id for m in sent} | {orphan.id}
    for _ in range(200):
        await persister.run_once()
        if await queue.backlog() == 0 and ours <= {m.id for m in store.rows}:
            break
    # Every committed message once, the orphan too (its commit wrote its record).
    assert sorted(m.id for m in store.rows if m.id in ours) == sorted(ours)
    assert await queue.backlog() == 0
    relay = ClusterSendRelay(first.inbox, BUCKETS.count, older_than_ms=0)
    assert await relay.run_once() >= 1
    assert await relay.run_once() == 0
    assert [d.event.id for d in await everything(first.inbox, people[5])][-1] == orphan.id


@pytest.mark.gen_test(timeout=60)
async def test_a_retry_of_a_later_send_makes_the_earlier_pending_appends_first(gateways):
    """Found by the failover drill: two sends of a conversation committed, neither appended (their
    nodes were down); the client retries the later one first - its appends must not overtake
    the earlier send's in any log."""
    first, second = gateways
    a, b = new_id(), new_id()
    earlier = private(a, b, "earlier", client_msg_id="e-1")
    later = private(b, a, "later", client_msg_id="e-2")
    await commit_only(first, earlier, [b, a])
    await commit_only(second, later, [a, b])  # its gateway died making the earlier's appends
    await first.keys.forget(b, "e-2", later)  # its pending answer gone: the client retries
    retried = await second.send(private(b, a, "later", client_msg_id="e-2"), [a, b])
    assert (retried.id, retried.seq) == (later.id, 2)
    for user in (a, b):
        log = await everything(second.inbox, user)
        assert [(d.event.content, d.event.seq) for d in log] == [("earlier", 1), ("later", 2)]
