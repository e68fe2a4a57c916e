"""The gateway's end of the bus on a Redis Cluster (docs/design/redis-cluster.md, section 5):
the buckets' notification channels by sharded pub/sub (SSUBSCRIBE n:{t} on the node that
serves the bucket's slot: bucket_append.lua SPUBLISHes there, and Redis copies a sharded
message to no other node), and the large groups' channels as on one Redis (classic pub/sub,
which a cluster carries to every node: a Subscription on any of them).

Only the buckets of the users the gateway serves: the gateway includes a user before it
reads the user's log for a new socket (include() returns once the bucket's channel is
confirmed, so what the read misses comes live) and excludes the user when the user's last
socket here closed; a bucket without users here is unsubscribed a little later (a user who
reconnects at once keeps it). With N gateways each hears about 1/N of the notifications.

One connection per master, each subscribed to the channels of that master's wanted buckets.
A lost connection, a node that no longer serves a bucket (a SSUBSCRIBE answered MOVED, or a
`sunsubscribe` Redis pushes when the slot migrates or fails over) all count as the bus lost:
every connection is closed, the slots are read again, each wanted channel is subscribed where
it is now, and on_resync reads the gap from the logs, as RedisNotificationSubscriber does after
any loss. Notifications per recipient stay in cursor order: a recipient's log is in one
bucket, whose notifications come on one channel of one connection."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from redis.asyncio.cluster import RedisCluster

from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.pubsub import Resyncs, SilentConnection, own_node_client, read_replies
from adapters.redis.subscriber import dispatch as _dispatch
from adapters.redis.subscriber import group_channel as _group_channel
from adapters.redis.subscription import Subscription
from application.ports import AnyNotification, NotificationSubscriber

log = logging.getLogger("courier.redis.cluster_subscriber")

UNSUBSCRIBE_AFTER = 5.0  # seconds a bucket stays subscribed after its last user here left


class ShardMoved(ConnectionError):
    """Redis no longer sends us a channel we asked for (its slot is served elsewhere now)."""


class RedisClusterNotificationSubscriber(NotificationSubscriber):
    """`every_bucket`: subscribe every bucket whoever is served (a gateway that is told of no
    user: the tests' and tools' subscribers)."""

    def __init__(self, client: RedisCluster, keys: ClusterKeys, *, ping_interval: float = 5.0,
                 min_backoff: float = 0.1, max_backoff: float = 1.0, every_bucket: bool = False,
                 unsubscribe_after: float = UNSUBSCRIBE_AFTER):
        self._client = client  # for the cluster's slots, and the nodes' settings
        self._keys = keys
        self._ping_interval = ping_interval
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._every_bucket = every_bucket
        self._unsubscribe_after = unsubscribe_after
        self.resubscriptions = 0  # subscriptions made after a loss, for tests and metrics
        self._resyncs = Resyncs()
        self.groups = Subscription(client, "courier-groups", ping_interval=ping_interval,
                                   min_backoff=min_backoff, max_backoff=max_backoff)
        self._users: set[str] = set()
        self._users_in: dict[int, int] = {}  # bucket -> users included here
        self._shards: dict[str, _Shard] = {}  # node name -> its connection, while the bus is up
        self._leaving: set[asyncio.Future] = set()

    # -- the large groups (NotificationSubscriber) -----------------------------------------

    async def follow(self, group_ids: Collection[str]) -> None:
        await self.groups.add([_group_channel(group_id) for group_id in group_ids])

    async def unfollow(self, group_ids: Collection[str]) -> None:
        await self.groups.remove([_group_channel(group_id) for group_id in group_ids])

    # -- the users served (NotificationAudience) -------------------------------------------

    async def include(self, user_id: str) -> None:
        bucket = self._keys.bucket_of(user_id)
        if user_id not in self._users:
            self._users.add(user_id)
            self._users_in[bucket] = self._users_in.get(bucket, 0) + 1
        if not self._every_bucket:
            await self._subscribed(bucket)

    def exclude(self, user_id: str) -> None:
        if user_id not in self._users:
            return
        self._users.discard(user_id)
        bucket = self._keys.bucket_of(user_id)
        self._users_in[bucket] -= 1
        if not self._users_in[bucket]:
            del self._users_in[bucket]
            if not self._every_bucket:
                task = asyncio.ensure_future(self._unsubscribe_later(bucket))
                self._leaving.add(task)
                task.add_done_callback(self._leaving.discard)

    async def _subscribed(self, bucket: int) -> None:
        """Returns once the bucket's channel is subscribed for sure, or at once while the bus
        is lost (the resubscription takes every wanted bucket, and on_resync follows)."""
        channel = self._keys.channel(bucket).encode()
        shard = self._shard_of(channel)
        if shard is not None:
            await shard.add(channel)

    async def _unsubscribe_later(self, bucket: int) -> None:
        await asyncio.sleep(self._unsubscribe_after)
        if bucket in self._users_in:  # a user of the bucket came (back) meanwhile
            return
        channel = self._keys.channel(bucket).encode()
        shard = self._shard_of(channel)
        if shard is not None:
            await shard.remove(channel)

    def _shard_of(self, channel: bytes) -> _Shard | None:
        if not self._shards:
            return None
        try:
            return self._shards.get(self._client.get_node_from_key(channel).name)
        except Exception:  # noqa: BLE001 - no node for it now: the next resubscription places it
            return None

    def _wanted(self) -> list[int]:
        return list(range(self._keys.buckets.count)) if self._every_bucket else list(self._users_in)

    # -- the reading -------------------------------------------------------------------------

    async def run(self, on_notification: Callable[[AnyNotification], None],
                  on_resync: Callable[[], Awaitable[None]]) -> None:
        groups = self.groups

        async def on_groups_resync() -> None:
            if groups.channels:
                await on_resync()

        followed = asyncio.ensure_future(groups.run(
            lambda channel, data: _dispatch(data, on_notification), on_groups_resync))
        try:
            await self._subscribe_forever(on_notification, on_resync)
        finally:
            followed.cancel()
            with contextlib.suppress(BaseException):
                await followed
            for task in list(self._leaving):
                task.cancel()
            self._resyncs.cancel()

    async def _subscribe_forever(self, on_notification, on_resync) -> None:
        loop = asyncio.get_running_loop()
        backoff, lost_at = self._min_backoff, None
        while True:
            shards: dict[str, _Shard] = {}
            try:
                await self._client.nodes_manager.initialize()  # where each slot is now
                for node in self._client.get_primaries():
                    shards[node.name] = _Shard(node, on_notification, self._ping_interval)
                await asyncio.gather(*(shard.connect() for shard in shards.values()))
                self._shards = shards
                # Every bucket wanted now; a user included meanwhile subscribes its own.
                by_shard: dict[str, list[bytes]] = {}
                for bucket in self._wanted():
                    channel = self._keys.channel(bucket).encode()
                    by_shard.setdefault(self._client.get_node_from_key(channel).name, []).append(channel)
                await asyncio.gather(*(shards[name].add_all(channels) for name, channels in by_shard.items()))
                if lost_at is not None:
                    self.resubscriptions += 1
                    log.warning("resubscribed to the buckets' channels after %.1f s; resyncing open connections",
                                loop.time() - lost_at)
                lost_at, backoff = None, self._min_backoff
                self._resyncs.launch(on_resync)  # as RedisNotificationSubscriber: at the first one too
                readers = [shard.reader for shard in shards.values() if shard.reader is not None]
                done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
                for reader in done:
                    reader.result()  # raises why it ended
                raise ConnectionError("a subscription ended")
            except Exception as error:  # noqa: BLE001 - any failure means: subscribe again, never crash
                if lost_at is None:
                    lost_at = loop.time()
                    log.warning("lost the buckets' channels (%s: %s); subscribing again", type(error).__name__, error)
                else:
                    log.debug("still cannot subscribe to the buckets' channels: %r", error)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self._max_backoff)
            finally:
                self._shards = {}
                await asyncio.gather(*(shard.close() for shard in shards.values()), return_exceptions=True)


class _Shard:
    """One master's wanted bucket channels, on a connection of their own. Commands go out on
    the connection the reader reads: Redis answers them in order, so each SSUBSCRIBE's
    confirmation is matched to its sender."""

    def __init__(self, node: Any, on_notification, ping_interval: float):
        self._client = own_node_client(node, "courier-buckets")
        self._on_notification = on_notification
        self._ping_interval = ping_interval
        self._connection: Any = None
        self._channels: set[bytes] = set()
        self._unconfirmed: dict[bytes, deque[asyncio.Future]] = {}
        self._leaving: set[bytes] = set()  # SUNSUBSCRIBEs sent and not answered yet
        self.reader: asyncio.Future | None = None

    async def connect(self) -> None:
        self._connection = await self._client.connection_pool.get_connection()
        self.reader = asyncio.ensure_future(read_replies(self._connection, self._on_reply, self._ping_interval))

    async def add_all(self, channels: list[bytes]) -> None:
        """Subscribe these and wait for every confirmation (a resubscription's)."""
        waits = await self._send_subscribe(channels)
        if not waits:
            return
        assert self.reader is not None
        done, _ = await asyncio.wait([asyncio.gather(*waits), self.reader], timeout=2 * self._ping_interval,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self.reader in done:
            self.reader.result()
            raise ConnectionError("the subscription ended")
        if not done:
            raise SilentConnection("no confirmation of SSUBSCRIBE")

    async def add(self, channel: bytes) -> None:
        """Returns once the channel is confirmed (or its connection is lost meanwhile)."""
        if channel in self._channels and not self._unconfirmed.get(channel):
            return
        waits = await self._send_subscribe([channel]) or [self._unconfirmed[channel][-1]]
        # asyncio.wait: a caller cancelled meanwhile must not cancel a confirmation others wait for.
        await asyncio.wait(waits)

    async def remove(self, channel: bytes) -> None:
        if channel not in self._channels or self._connection is None:
            return
        self._channels.discard(channel)
        self._leaving.add(channel)
        with contextlib.suppress(Exception):  # lost: the resubscription leaves it out anyway
            await self._connection.send_command("SUNSUBSCRIBE", channel, check_health=False)

    async def _send_subscribe(self, channels: list[bytes]) -> list[asyncio.Future]:
        new = [channel for channel in channels if channel not in self._channels]
        if not new or self._connection is None:
            return []
        loop = asyncio.get_running_loop()
        waits = []
        for channel in new:
            self._channels.add(channel)
            future = loop.create_future()
            self._unconfirmed.setdefault(channel, deque()).append(future)
            waits.append(future)
        # One channel a command: a SSUBSCRIBE's channels must all be in one slot.
        commands = [b"".join(self._connection.pack_command("SSUBSCRIBE", channel)) for channel in new]
        try:
            await self._connection.send_packed_command(commands, check_health=False)
        except Exception as error:  # noqa: BLE001 - the reader sees the loss, the resubscription follows
            log.debug("could not SSUBSCRIBE (%r); the resubscription will", error)
        return waits

    def _on_reply(self, reply) -> None:
        if isinstance(reply, Exception):  # an error reply: a SSUBSCRIBE answered MOVED
            raise ShardMoved(str(reply))
        if not isinstance(reply, list) or len(reply) != 3:
            return
        kind, channel = reply[0], reply[1]
        if kind == b"smessage":
            if channel in self._channels:  # not one unsubscribed while its message was on the way
                _dispatch(reply[2], self._on_notification)
        elif kind == b"ssubscribe":
            pending = self._unconfirmed.get(channel)
            if pending:
                future = pending.popleft()
                if not pending:
                    del self._unconfirmed[channel]
                if not future.done():
                    future.set_result(None)
        elif kind == b"sunsubscribe":
            if channel in self._leaving:
                self._leaving.discard(channel)  # ours
            else:
                raise ShardMoved(f"unsubscribed from {channel!r} by the server")  # the slot moved

    async def close(self) -> None:
        for pending in self._unconfirmed.values():  # whoever waits returns: on_resync covers it
            for future in pending:
                if not future.done():
                    future.set_result(None)
        self._unconfirmed.clear()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        if self._connection is not None:
            await self._connection.disconnect()
            await self._client.connection_pool.release(self._connection)
        await self._client.aclose()
