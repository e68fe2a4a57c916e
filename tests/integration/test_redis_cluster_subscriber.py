"""The gateway's end of the bus on the local Redis Cluster (adapters/redis/cluster_subscriber.py,
docs/design/redis-cluster.md section 5): a gateway hears the notifications of the users it
serves and no others, even of users in the same bucket served elsewhere; what loses
notifications resyncs the users of the buckets concerned and nobody else."""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Collection

import pytest

from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.cluster_subscriber import RedisClusterNotificationSubscriber
from domain.model import Message
from tests.integration.test_redis_cluster_inbox import everything, group_message, new_id, private
from tests.services.cluster_gateways import BUCKETS

pytestmark = pytest.mark.redis

KEYS = ClusterKeys(BUCKETS)


class Listening:
    """A subscriber running, with what it handed over and the resyncs it asked for."""

    def __init__(self, subscriber: RedisClusterNotificationSubscriber):
        self.subscriber = subscriber
        self.heard: list = []
        self.resyncs: list[set[str] | None] = []  # None: everyone's
        self._running: asyncio.Future | None = None

    async def on_resync(self, user_ids: Collection[str] | None = None) -> None:
        self.resyncs.append(None if user_ids is None else set(user_ids))

    async def __aenter__(self) -> Listening:
        self._running = asyncio.ensure_future(self.subscriber.run(self.heard.append, self.on_resync))
        while not self.resyncs:  # the first placement's resync
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc_info) -> None:
        assert self._running is not None
        self._running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._running

    def users_heard(self, sent: Message) -> set[str]:
        return {user for n in self.heard if n.event.id == sent.id for user in n.cursors}

    async def hears(self, sent: Message, users: set[str]) -> None:
        """Hears `sent` for these users, in the notifications of their buckets and no other
        (each lists its bucket's recipients: the gateway picks its own). Waits for them, then
        a moment for any other."""
        for _ in range(300):
            if self.users_heard(sent) >= users:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert {BUCKETS.of(user) for user in self.users_heard(sent)} == {BUCKETS.of(user) for user in users}


def users_in_distinct_buckets(count: int) -> list[str]:
    found: dict[int, str] = {}
    while len(found) < count:
        user = new_id()
        found.setdefault(BUCKETS.of(user), user)
    return list(found.values())


def user_in_bucket(bucket: int) -> str:
    while True:
        user = new_id()
        if BUCKETS.of(user) == bucket:
            return user


def kill_bucket_connections(redis_cluster, ports: Collection[int] | None = None) -> None:
    for master in redis_cluster.masters():
        if ports is not None and master.port not in ports:
            continue
        with redis_cluster.client(master.port) as node:
            for client in node.client_list():
                if client["name"] == "courier-buckets":
                    node.client_kill_filter(_id=client["id"])


@pytest.mark.gen_test(timeout=60)
async def test_a_subscriber_of_every_bucket_hears_every_recipient_and_resyncs_everyone_after_a_loss(
        gateways, redis_cluster):
    gateway = gateways[0]
    subscriber = RedisClusterNotificationSubscriber(gateways[1].client, KEYS, ping_interval=1.0, every_bucket=True)
    async with Listening(subscriber) as listening:
        people = [new_id() for _ in range(8)]
        sent = await gateway.send(group_message(new_id(), people[0], "to all"), people)
        await listening.hears(sent, set(people))
        cursors = {user: cursor for n in listening.heard for user, cursor in n.cursors.items()}
        for user in people:
            assert (await everything(gateway.inbox, user))[-1].cursor == cursors[user]
        kill_bucket_connections(redis_cluster)
        while subscriber.resubscriptions < 1 or len(listening.resyncs) < 2:
            await asyncio.sleep(0.05)
        assert listening.resyncs[1] is None  # it hears everyone: everyone reads the gap
        again = await gateway.send(private(people[1], people[2], "after the loss"), [people[2], people[1]])
        await listening.hears(again, {people[1], people[2]})


@pytest.mark.gen_test(timeout=60)
async def test_a_gateway_hears_only_the_users_it_serves_even_in_a_bucket_it_shares(gateways, redis_cluster):
    """Two gateways, users of one bucket on each: a notification reaches only the gateways
    of its recipients (per-gateway channels), and an excluded user's no longer comes."""
    gateway = gateways[0]
    here = RedisClusterNotificationSubscriber(gateways[1].client, KEYS, ping_interval=1.0, unsubscribe_after=0.05)
    there = RedisClusterNotificationSubscriber(gateways[1].client, KEYS, ping_interval=1.0, unsubscribe_after=0.05)
    served, other, elsewhere = users_in_distinct_buckets(3)
    neighbour = user_in_bucket(BUCKETS.of(served))  # served's bucket, on the other gateway
    async with Listening(here) as listening, Listening(there) as listening_there:
        await here.include(served)
        await here.include(other)
        await there.include(neighbour)
        first = await gateway.send(group_message(new_id(), served, "to four"), [served, other, elsewhere, neighbour])
        await listening.hears(first, {served, other})
        await listening_there.hears(first, {neighbour})
        only_neighbour = await gateway.send(private(elsewhere, neighbour, "just you"), [neighbour, elsewhere])
        await listening_there.hears(only_neighbour, {neighbour})
        await listening.hears(only_neighbour, set())  # its bucket's notification, not for here
        here.exclude(other)
        await asyncio.sleep(0.3)  # its bucket is unsubscribed a moment later
        second = await gateway.send(group_message(new_id(), served, "again"), [served, other, elsewhere])
        await listening.hears(second, {served})
        await here.include(other)  # back: registered again before include returns
        third = await gateway.send(group_message(new_id(), served, "after"), [served, other, elsewhere])
        await listening.hears(third, {served, other})
        assert len(listening.resyncs) == 1  # nothing was lost, nobody read a gap


@pytest.mark.gen_test(timeout=60)
async def test_a_lost_node_connection_resyncs_the_users_of_that_nodes_buckets_only(gateways, redis_cluster):
    gateway = gateways[0]
    subscriber = RedisClusterNotificationSubscriber(gateways[1].client, KEYS, ping_interval=1.0)
    people = users_in_distinct_buckets(BUCKETS.count)  # every bucket: every master
    port_of = {user: gateway.client.get_node_from_key(KEYS.channel(BUCKETS.of(user), subscriber.gateway_id)).port
               for user in people}
    lost_port = port_of[people[0]]
    async with Listening(subscriber) as listening:
        for user in people:
            await subscriber.include(user)
        kill_bucket_connections(redis_cluster, ports=[lost_port])
        while subscriber.resubscriptions < 1 or len(listening.resyncs) < 2:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # and no other resync
        assert listening.resyncs[1:] == [{user for user in people if port_of[user] == lost_port}]
        assert {port_of[user] for user in people} != {lost_port}  # others were spared
        sent = await gateway.send(group_message(new_id(), people[0], "after"), people)
        await listening.hears(sent, set(people))


@pytest.mark.gen_test(timeout=60)
async def test_a_lease_that_ran_out_registers_the_bucket_again_and_resyncs_its_users(gateways, redis_cluster):
    """A gateway stalled past its lease is skipped by the publishers (and may be swept): its
    next renewal finds out, registers its users again and reads their gap."""
    gateway = gateways[0]
    subscriber = RedisClusterNotificationSubscriber(gateways[1].client, KEYS, ping_interval=1.0, lease=0.6)
    stalled, fine = users_in_distinct_buckets(2)
    async with Listening(subscriber) as listening:
        await subscriber.include(stalled)
        await subscriber.include(fine)
        # As a stall past the lease and a sweep by another gateway would leave it:
        bucket = BUCKETS.of(stalled)
        await gateway.client.hdel(KEYS.leases(bucket), subscriber.gateway_id)
        await gateway.client.hdel(KEYS.audience(bucket), stalled)
        missed = await gateway.send(private(fine, stalled, "while stalled"), [stalled, fine])
        await listening.hears(missed, {fine})  # published to nobody here for stalled
        while len(listening.resyncs) < 2:
            await asyncio.sleep(0.05)
        assert listening.resyncs[1] == {stalled}  # whose gap holds `missed`
        after = await gateway.send(private(fine, stalled, "after"), [stalled, fine])
        await listening.hears(after, {stalled, fine})


@pytest.mark.gen_test(timeout=60)
async def test_a_renewal_sweeps_the_registrations_of_a_gateway_long_gone(gateways, redis_cluster):
    gateway = gateways[0]
    subscriber = RedisClusterNotificationSubscriber(gateways[1].client, KEYS, ping_interval=1.0, lease=0.6,
                                                    sweep_after=0.1)
    user, left_behind = users_in_distinct_buckets(1)[0], new_id()
    bucket = BUCKETS.of(user)
    gone = uuid.uuid4().hex  # a gateway killed: its lease ended long ago, its users never excluded
    await gateway.client.hset(KEYS.leases(bucket), gone, 1)
    await gateway.client.hset(KEYS.audience(bucket), mapping={left_behind: gone, user: gone})
    async with Listening(subscriber):
        await subscriber.include(user)
        assert await gateway.client.hget(KEYS.leases(bucket), gone) is None
        assert await gateway.client.hget(KEYS.audience(bucket), left_behind) is None
        assert await gateway.client.hget(KEYS.audience(bucket), user) == subscriber.gateway_id.encode()


@pytest.mark.gen_test(timeout=60)
async def test_a_user_included_excluded_and_included_again_at_once_stays_registered(gateways, redis_cluster):
    """A socket that closes while the user's include is under way, and a new one at once: the
    registration of the second is not lost to the deregistration of the first."""
    gateway = gateways[0]
    subscriber = RedisClusterNotificationSubscriber(gateways[1].client, KEYS, ping_interval=1.0)
    async with Listening(subscriber) as listening:
        user, sender = users_in_distinct_buckets(2)
        first = asyncio.ensure_future(subscriber.include(user))
        await asyncio.sleep(0)
        subscriber.exclude(user)
        await subscriber.include(user)
        await first
        await asyncio.sleep(0.2)  # the deregistration, if it were to come after all
        sent = await gateway.send(private(sender, user, "still here"), [user, sender])
        await listening.hears(sent, {user})


@pytest.mark.gen_test(timeout=60)
async def test_a_subscription_answered_moved_loses_that_bucket_only(gateways, redis_cluster):
    """A slot map read in the middle of a migration sends a SSUBSCRIBE to a node that does not
    serve its slot: Redis answers MOVED, and only that bucket is placed again and resynced -
    the connection and the other buckets on it go on."""
    gateway = gateways[0]
    subscriber = RedisClusterNotificationSubscriber(gateways[1].client, KEYS, ping_interval=1.0)
    client = gateways[1].client
    node_of = {user: client.get_node_from_key(KEYS.channel(BUCKETS.of(user), subscriber.gateway_id))
               for user in users_in_distinct_buckets(BUCKETS.count)}
    settled = next(user for user in node_of)
    misplaced = next(user for user, node in node_of.items() if node.name != node_of[settled].name)
    wrong_node = node_of[settled]
    async with Listening(subscriber) as listening:
        await subscriber.include(settled)
        misplaced_channel = KEYS.channel(BUCKETS.of(misplaced), subscriber.gateway_id).encode()
        original = client.get_node_from_key

        def stale_map(key, *args, **kwargs):  # once, as a map read before the slot moved
            if key == misplaced_channel:
                client.get_node_from_key = original
                return wrong_node
            return original(key, *args, **kwargs)

        client.get_node_from_key = stale_map
        try:
            await subscriber.include(misplaced)
        finally:
            client.get_node_from_key = original
        while len(listening.resyncs) < 2:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert listening.resyncs[1:] == [{misplaced}]  # not `settled`, on the same connection
        assert subscriber.resubscriptions == 0  # no connection was lost
        sent = await gateway.send(private(settled, misplaced, "both live"), [misplaced, settled])
        await listening.hears(sent, {settled, misplaced})
