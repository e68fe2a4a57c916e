"""The gateway's end of the bus on a Redis Cluster (docs/design/redis-cluster.md, section 5):
the buckets' notification channels by sharded pub/sub (SSUBSCRIBE n:{t} on the node that
serves the bucket's slot: bucket_append.lua SPUBLISHes there, and Redis copies a sharded
message to no other node), and the large groups' channels as on one Redis (classic pub/sub,
which a cluster carries to every node: Subscription on any of them).

One connection per master, each subscribed to the channels of that master's buckets. A lost
connection, a node that no longer serves a bucket (a SSUBSCRIBE answered MOVED, or a
`sunsubscribe` pushed by Redis when the slot migrates or fails over) all count as the bus
lost: every connection is closed, the slots are read again, each channel is subscribed where
it is now, and on_resync reads the gap from the logs, as RedisNotificationSubscriber does
after any loss. Notifications per recipient are in cursor order: a recipient's log is in one
bucket, whose notifications come on one channel of one connection.

Every bucket is subscribed, whatever users the gateway serves (so each gateway still hears
every private notification): subscribing only the buckets of its sockets' users is the next
step of the design (section 5)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from redis.asyncio.cluster import RedisCluster

from adapters.redis import envelope
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.group_streams import CHANNEL as GROUP_CHANNEL
from adapters.redis.pubsub import Resyncs, SilentConnection, own_node_client, read_replies
from adapters.redis.subscription import Subscription
from application.ports import AnyNotification, NotificationSubscriber

log = logging.getLogger("courier.redis.cluster_subscriber")


class ShardMoved(ConnectionError):
    """Redis no longer sends us a channel we asked for (its slot is served elsewhere now)."""


class RedisClusterNotificationSubscriber(NotificationSubscriber):
    def __init__(self, client: RedisCluster, keys: ClusterKeys, *, ping_interval: float = 5.0,
                 min_backoff: float = 0.1, max_backoff: float = 1.0):
        self._client = client  # for the cluster's slots, and the nodes' settings
        self._keys = keys
        self._ping_interval = ping_interval
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self.resubscriptions = 0  # subscriptions made after a loss, for tests and metrics
        self._resyncs = Resyncs()
        self.groups: Subscription | None = None  # made once the cluster's nodes are known

    async def follow(self, group_ids: Collection[str]) -> None:
        await self._groups().add([_group_channel(group_id) for group_id in group_ids])

    async def unfollow(self, group_ids: Collection[str]) -> None:
        await self._groups().remove([_group_channel(group_id) for group_id in group_ids])

    def _groups(self) -> Subscription:
        if self.groups is None:
            self.groups = Subscription(self._client, "courier-groups",
                                       ping_interval=self._ping_interval, min_backoff=self._min_backoff,
                                       max_backoff=self._max_backoff)
        return self.groups

    async def run(self, on_notification: Callable[[AnyNotification], None],
                  on_resync: Callable[[], Awaitable[None]]) -> None:
        groups = self._groups()

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
            self._resyncs.cancel()

    async def _subscribe_forever(self, on_notification, on_resync) -> None:
        loop = asyncio.get_running_loop()
        backoff, lost_at = self._min_backoff, None
        while True:
            shards: list[_Shard] = []
            try:
                await self._client.nodes_manager.initialize()  # where each slot is now
                for node, channels in self._channels_by_node().values():
                    shards.append(_Shard(node, channels, on_notification, self._ping_interval))
                await asyncio.gather(*(shard.subscribe() for shard in shards))
                if lost_at is not None:
                    self.resubscriptions += 1
                    log.warning("resubscribed to the buckets' channels after %.1f s; resyncing open connections",
                                loop.time() - lost_at)
                lost_at, backoff = None, self._min_backoff
                self._resyncs.launch(on_resync)  # as RedisNotificationSubscriber: at the first one too
                readers = [shard.reader for shard in shards if shard.reader is not None]
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
                await asyncio.gather(*(shard.close() for shard in shards), return_exceptions=True)

    def _channels_by_node(self) -> dict[str, tuple[Any, list[bytes]]]:
        by_node: dict[str, tuple[Any, list[bytes]]] = {}
        for bucket in range(self._keys.buckets.count):
            channel = self._keys.channel(bucket)
            node = self._client.get_node_from_key(channel)
            by_node.setdefault(node.name, (node, []))[1].append(channel.encode())
        return by_node


class _Shard:
    """One master's bucket channels on a connection of their own."""

    def __init__(self, node: Any, channels: list[bytes], on_notification, ping_interval: float):
        self._client = own_node_client(node, "courier-buckets")
        self._channels = set(channels)
        self._on_notification = on_notification
        self._ping_interval = ping_interval
        self._connection = None
        self._confirmed = 0
        self._all_confirmed: asyncio.Future | None = None
        self.reader: asyncio.Future | None = None

    async def subscribe(self) -> None:
        """SSUBSCRIBE each channel (one slot per command) and wait for every confirmation."""
        self._all_confirmed = asyncio.get_running_loop().create_future()
        self._connection = connection = await self._client.connection_pool.get_connection()
        self.reader = asyncio.ensure_future(read_replies(connection, self._on_reply, self._ping_interval))
        await connection.send_packed_command(
            [b"".join(connection.pack_command("SSUBSCRIBE", channel)) for channel in self._channels],
            check_health=False)
        done, _ = await asyncio.wait([self._all_confirmed, self.reader], timeout=2 * self._ping_interval,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self.reader in done:
            self.reader.result()
            raise ConnectionError("the subscription ended")
        if not done:
            raise SilentConnection("no confirmation of SSUBSCRIBE")

    def _on_reply(self, reply) -> None:
        if isinstance(reply, Exception):  # an error reply: a SSUBSCRIBE answered MOVED
            raise ShardMoved(str(reply))
        if not isinstance(reply, list) or len(reply) != 3:
            return
        kind = reply[0]
        if kind == b"smessage":
            _dispatch(reply[2], self._on_notification)
        elif kind == b"ssubscribe":
            self._confirmed += 1
            if self._confirmed == len(self._channels) and self._all_confirmed and not self._all_confirmed.done():
                self._all_confirmed.set_result(None)
        elif kind == b"sunsubscribe":  # pushed by Redis: the slot moved
            raise ShardMoved(f"unsubscribed from {reply[1]!r} by the server")

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        if self._connection is not None:
            await self._connection.disconnect()
            await self._client.connection_pool.release(self._connection)
        await self._client.aclose()


def _dispatch(data, on_notification) -> None:
    try:
        notification = envelope.parse(data)
    except Exception as e:  # noqa: BLE001 - a bad message must not stop the others
        log.warning("skipped a malformed notification (%s): %.200r", e, data)
        return
    try:
        on_notification(notification)
    except Exception:
        log.exception("on_notification failed for %r", notification)


def _group_channel(group_id: str) -> bytes:
    return GROUP_CHANNEL.format(group_id).encode()
