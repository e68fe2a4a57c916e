"""The gateway's end of the bus on a Redis Cluster (docs/design/redis-cluster.md, section 5):
the buckets' notifications by sharded pub/sub, on a channel per bucket and gateway
(`n:{t}:<gateway id>`, SSUBSCRIBEd on the node that serves the bucket's slot), and the large
groups' channels as on one Redis (classic pub/sub, which a cluster carries to every node: a
Subscription on any of them).

A gateway hears only its users: it registers each user it serves in the user's bucket
(bucket_here.lua: the bucket's `{t}:at` hash, under a lease of the gateway's that it renews),
and the bucket's scripts publish a notification on the channel of each gateway holding one
of its recipients (bucket_gateways.lua). The Gateway includes a user before it reads the
user's log for a new socket: include() returns once the bucket's channel is confirmed and
the user registered, so what the read misses comes live. It excludes the user when the
user's last socket here closed; a bucket without users here is unsubscribed a little later
(a user who reconnects at once keeps it). With N gateways each hears about 1/N.

One connection per master, each subscribed to the channels of that master's buckets. What
loses notifications loses them for some buckets only, and only their users are resynced:
- a lost connection: that node's buckets;
- a SSUBSCRIBE answered MOVED (a slot map read while a slot moved): that bucket;
- a `sunsubscribe` Redis pushes (the bucket's slot migrated or failed over): that bucket;
- a renewal that finds the gateway's lease in a bucket ran out (a stall longer than the
  lease: the publishers skipped it, and may have swept its registrations): that bucket.
The buckets concerned are placed again - the slots read again, the channel subscribed where
it is now, every user registered again - and on_resync(their users) reads their gap, as
RedisNotificationSubscriber does after any loss. Notifications per recipient stay in cursor
order: a recipient's log is in one bucket, whose notifications for this gateway come on one
channel of one connection."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from functools import partial
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import MovedError

from adapters.redis import resp
from adapters.redis.batched_script import BatchedScript
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.pubsub import Resyncs, own_node_client, read_replies
from adapters.redis.subscriber import dispatch as _dispatch
from adapters.redis.subscriber import group_channel as _group_channel
from adapters.redis.subscription import Subscription
from adapters.redis.support import bucket_lua
from application.ports import AnyNotification, NotificationSubscriber

log = logging.getLogger("courier.redis.cluster_subscriber")

UNSUBSCRIBE_AFTER = 5.0  # seconds a bucket stays subscribed after its last user here left
LEASE_SECONDS = 30.0  # a gateway's lease in a bucket, renewed every third of it
SWEEP_AFTER_SECONDS = 60.0  # a lease ended this long ago is swept out of its bucket
EVERYONE = "*"  # registered in a bucket: hear every user of it (bucket_gateways.lua)


class ShardMoved(ConnectionError):
    """Redis answered with an error this connection cannot pin on a channel of its own."""


class RedisClusterNotificationSubscriber(NotificationSubscriber):
    """`every_bucket`: hear every user of every bucket, whoever is served (a gateway that is
    told of no user: the tests' and tools' subscribers)."""

    def __init__(self, client: RedisCluster, keys: ClusterKeys, *, gateway_id: str | None = None,
                 ping_interval: float = 5.0, min_backoff: float = 0.1, max_backoff: float = 1.0,
                 every_bucket: bool = False, unsubscribe_after: float = UNSUBSCRIBE_AFTER,
                 lease: float = LEASE_SECONDS, sweep_after: float = SWEEP_AFTER_SECONDS):
        self._client = client  # for the cluster's slots, and the nodes' settings
        self._keys = keys
        self.gateway_id = gateway_id or uuid.uuid4().hex
        self._ping_interval = ping_interval
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._every_bucket = every_bucket
        self._unsubscribe_after = unsubscribe_after
        self._lease = lease
        self._here = BatchedScript(client, bucket_lua("bucket_here.lua"))
        self._lease_args = [resp.bulk(self.gateway_id), resp.bulk(int(lease * 1000)),
                            resp.bulk(int(sweep_after * 1000))]
        self.resubscriptions = 0  # buckets placed again after a loss, for tests and metrics
        self._resyncs = Resyncs()
        self.groups = Subscription(client, "courier-groups", ping_interval=ping_interval,
                                   min_backoff=min_backoff, max_backoff=max_backoff)
        everyone = {EVERYONE}
        self._users_of: dict[int, set[str]] = (  # bucket -> the users included here
            {bucket: set(everyone) for bucket in range(keys.buckets.count)} if every_bucket else {})
        self._including: dict[str, asyncio.Future] = {}  # user -> its include under way
        self._placed: dict[int, _Shard] = {}  # bucket -> where its channel is confirmed
        self._leased: set[int] = set()  # buckets where this gateway holds a lease
        self._to_place: dict[int, bool] = {}  # bucket -> were notifications lost (resync all its users)
        self._stale: set[str] = set()  # users included while their bucket was not placed
        self._shards: dict[str, _Shard] = {}  # node name -> its connection
        self._locks: dict[int, asyncio.Lock] = {}  # one registration at a time per bucket
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Future] = set()
        self._closing: set[asyncio.Future] = set()  # lost connections being closed
        self._on_notification: Callable[[AnyNotification], None] | None = None
        self._stopped = False

    # -- the large groups (NotificationSubscriber) -----------------------------------------

    async def follow(self, group_ids: Collection[str]) -> None:
        await self.groups.add([_group_channel(group_id) for group_id in group_ids])

    async def unfollow(self, group_ids: Collection[str]) -> None:
        await self.groups.remove([_group_channel(group_id) for group_id in group_ids])

    # -- the users served (NotificationAudience) -------------------------------------------

    async def include(self, user_id: str) -> None:
        if self._every_bucket or self._stopped:
            return
        under_way = self._including.get(user_id)
        if under_way is None:
            bucket = self._keys.bucket_of(user_id)
            users = self._users_of.setdefault(bucket, set())
            if user_id in users:
                return  # served here already (another socket of the user)
            users.add(user_id)
            under_way = self._including[user_id] = self._spawn(self._include(bucket, user_id))
            under_way.add_done_callback(partial(self._included, user_id))
        # asyncio.wait: a caller cancelled meanwhile must not cancel what other sockets wait for.
        await asyncio.wait([under_way])

    def _included(self, user_id: str, task: asyncio.Future) -> None:
        if self._including.get(user_id) is task:
            del self._including[user_id]

    async def _include(self, bucket: int, user_id: str) -> None:
        try:
            shard = self._placed.get(bucket)
            if shard is None:
                shard = self._shard_of(bucket)
                if shard is None or not await shard.add(self._channel(bucket)):
                    raise ConnectionError("the bus is lost for this bucket")
            if not await self._register(bucket, [user_id]):
                return  # a lease lost: the whole bucket is placed again, and resynced
            if not shard.open:
                raise ConnectionError("the connection closed while including")
            self._placed.setdefault(bucket, shard)
        except Exception as error:  # noqa: BLE001 - the placement registers it, and resyncs it
            log.debug("included user %s while its bucket is lost (%r)", user_id, error)
            self._stale.add(user_id)
            self._place_later(bucket, lost=False)

    def exclude(self, user_id: str) -> None:
        bucket = self._keys.bucket_of(user_id)
        users = self._users_of.get(bucket)
        if self._every_bucket or not users or user_id not in users:
            return
        users.discard(user_id)
        self._stale.discard(user_id)
        # An include under way registers nobody excluded meanwhile: the next one must not wait on it.
        self._including.pop(user_id, None)
        if not users:
            del self._users_of[bucket]
        if not self._stopped:  # stopped: its lease runs out, and a sweep deregisters it
            self._spawn(self._exclude(bucket, user_id))

    async def _exclude(self, bucket: int, user_id: str) -> None:
        if bucket in self._leased:
            with contextlib.suppress(Exception):  # left registered: a notification more, ignored
                await self._register(bucket, [], [user_id])
        if bucket in self._users_of:
            return
        await asyncio.sleep(self._unsubscribe_after)
        if bucket in self._users_of:  # a user of the bucket came (back) meanwhile
            return
        self._leased.discard(bucket)  # its lease runs out: nobody publishes here for it
        shard = self._placed.pop(bucket, None)
        if shard is not None:
            await shard.remove(self._channel(bucket))

    async def _register(self, bucket: int, adding: Collection[str], removing: Collection[str] = ()) -> bool:
        """Renews the lease in the bucket, registers `adding` (those still served here) and
        deregisters `removing` (those no longer served). False when the lease had run out
        while the bucket had users here: they may have missed notifications, and the bucket
        is to be placed again."""
        async with self._lock(bucket):
            served = self._users_of.get(bucket, set())
            adding = [user_id for user_id in adding if user_id in served]
            removing = [user_id for user_id in removing if user_id not in served]
            arguments = [*self._lease_args, resp.bulk(len(adding)), *map(resp.bulk, adding),
                         *map(resp.bulk, removing)]
            running = await self._here(2, [resp.bulk(self._keys.audience(bucket)),
                                           resp.bulk(self._keys.leases(bucket)), *arguments])
            had_lease = bucket in self._leased
            self._leased.add(bucket)
            if had_lease and not int(running):
                log.warning("this gateway's lease in bucket %d had run out; registering its users again", bucket)
                self._place_later(bucket, lost=True)
                return False
            return True

    def _lock(self, bucket: int) -> asyncio.Lock:
        lock = self._locks.get(bucket)
        if lock is None:
            lock = self._locks[bucket] = asyncio.Lock()
        return lock

    def _channel(self, bucket: int) -> bytes:
        return self._keys.channel(bucket, self.gateway_id).encode()

    def _shard_of(self, bucket: int) -> _Shard | None:
        """The open connection to the node serving the bucket now, if any."""
        try:
            shard = self._shards.get(self._client.get_node_from_key(self._channel(bucket)).name)
        except Exception:  # noqa: BLE001 - no node for it now: its placement finds one
            return None
        return shard if shard is not None and shard.open else None

    def _place_later(self, bucket: int, *, lost: bool) -> None:
        self._to_place[bucket] = self._to_place.get(bucket, False) or lost
        self._wake.set()

    def _spawn(self, work: Awaitable[Any]) -> asyncio.Future:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the reading -------------------------------------------------------------------------

    async def run(self, on_notification: Callable[[AnyNotification], None],
                  on_resync: Callable[..., Awaitable[None]]) -> None:
        groups = self.groups
        self._on_notification = on_notification

        async def on_groups_resync() -> None:
            if groups.channels:
                await on_resync()

        followed = asyncio.ensure_future(groups.run(
            lambda channel, data: _dispatch(data, on_notification), on_groups_resync))
        renewing = asyncio.ensure_future(self._renew_forever())
        try:
            await self._place_forever(on_resync)
        finally:
            self._stopped = True  # the sockets closing now spawn nothing that would outlive it
            for task in (followed, renewing, *self._tasks):
                task.cancel()
            with contextlib.suppress(BaseException):
                await followed
            self._resyncs.cancel()
            shards, self._shards, self._placed = list(self._shards.values()), {}, {}
            await asyncio.gather(*(shard.close() for shard in shards), *self._closing, return_exceptions=True)

    async def _place_forever(self, on_resync: Callable[..., Awaitable[None]]) -> None:
        """Places every bucket wanted, then whatever is lost or newly wanted, for ever."""
        loop = asyncio.get_running_loop()
        for bucket in self._users_of:
            self._to_place.setdefault(bucket, False)
        first, backoff, lost_at = True, self._min_backoff, None
        while True:
            if not self._to_place and not first:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._to_place = self._to_place, {}
            lost = any(batch.values())
            if lost and lost_at is None:
                lost_at = loop.time()
            failed = 0
            resync: set[str] = set()
            try:
                results = await self._place_all(list(batch), every_node=first)
            except Exception as error:  # noqa: BLE001 - no node answers: try again, never crash
                results = [error] * len(batch)
            for (bucket, was_lost), result in zip(batch.items(), results, strict=True):
                if isinstance(result, BaseException):
                    failed += 1
                    self._to_place[bucket] = self._to_place.get(bucket, False) or was_lost
                    log.debug("could not place bucket %d: %r", bucket, result)
                elif was_lost:
                    resync |= result  # every user of the bucket
                    self.resubscriptions += 1
                else:
                    resync |= result & self._stale  # those whose include could not wait for it
                self._stale.difference_update(result if not isinstance(result, BaseException) else ())
            if first:
                self._resyncs.launch(on_resync)  # as RedisNotificationSubscriber: at the first one too
                first = False
            elif resync and self._every_bucket:
                self._resyncs.launch(on_resync)  # it hears everyone: everyone's gap
            elif resync:
                self._resyncs.launch(partial(on_resync, resync))
            if failed:
                if lost_at is not None and backoff == self._min_backoff:
                    log.warning("lost the notification channels of %d buckets; placing them again", failed)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self._max_backoff)
                continue
            if lost_at is not None:
                log.warning("placed the lost buckets' channels again after %.1f s; resyncing %d users",
                            loop.time() - lost_at, len(resync))
            lost_at, backoff = None, self._min_backoff

    async def _place_all(self, buckets: list[int], every_node: bool = False) -> list[set[str] | BaseException]:
        """Each bucket placed, or why not: the buckets of a node that cannot be reached now
        wait, the others go on. `every_node`: a connection to every master as well, so a
        user's first include finds its node's open already (at the start)."""
        await self._client.nodes_manager.initialize()  # where each slot is now
        nodes = {bucket: self._client.get_node_from_key(self._channel(bucket)) for bucket in buckets}
        by_name = {node.name: node for node in nodes.values()}
        if every_node:
            by_name.update((node.name, node) for node in self._client.get_primaries())
        # One connection per node, made before the buckets' subscriptions share it.
        connected = await asyncio.gather(*(self._connected(node) for node in by_name.values()),
                                         return_exceptions=True)
        failures = {name: result for name, result in zip(by_name, connected, strict=True)
                    if isinstance(result, BaseException)}

        async def place(bucket: int) -> set[str]:
            failure = failures.get(nodes[bucket].name)
            if failure is not None:
                raise failure
            return await self._place(bucket)

        return await asyncio.gather(*(place(bucket) for bucket in buckets), return_exceptions=True)

    async def _place(self, bucket: int) -> set[str]:
        """The bucket's channel subscribed where its slot is now, every user served here
        registered in it; the users registered."""
        channel = self._channel(bucket)
        shard = await self._connected(self._client.get_node_from_key(channel))
        if not await shard.add(channel):
            raise ConnectionError("the connection closed before SSUBSCRIBE was confirmed")
        registered: set[str] = set()
        adding = set(self._users_of.get(bucket, ()))  # the first call takes the lease, users or not
        while True:
            if not await self._register(bucket, adding):
                raise ConnectionError("the lease ran out while placing the bucket")
            registered |= adding
            adding = self._users_of.get(bucket, set()) - registered  # included meanwhile: registered too
            if not adding:
                break
        if not shard.open:
            raise ConnectionError("the connection closed while placing the bucket")
        self._placed[bucket] = shard
        return registered

    async def _connected(self, node: Any) -> _Shard:
        shard = self._shards.get(node.name)
        if shard is not None and shard.open:
            return shard
        assert self._on_notification is not None
        shard = _Shard(node, self._on_notification, self._ping_interval, self._moved)
        self._shards[node.name] = shard
        try:
            await shard.connect()
        except BaseException:
            self._shard_lost(shard)
            raise
        assert shard.reader is not None
        shard.reader.add_done_callback(lambda _: self._shard_lost(shard))
        return shard

    def _shard_lost(self, shard: _Shard) -> None:
        """Its connection is gone: every bucket it carried is lost."""
        shard.open = False
        if self._shards.get(shard.name) is shard:
            del self._shards[shard.name]
        if shard.reader is not None and shard.reader.done() and not shard.reader.cancelled():
            log.warning("lost the connection to %s (%r)", shard.name, shard.reader.exception())
        for bucket in [bucket for bucket, placed in self._placed.items() if placed is shard]:
            del self._placed[bucket]
            self._place_later(bucket, lost=True)
        closing = asyncio.ensure_future(shard.close())  # awaited by run() at its end if not done by then
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _moved(self, shard: _Shard, channel: bytes) -> None:
        """Redis unsubscribed us from the channel: its slot moved (a migration, a failover)."""
        for bucket, placed in list(self._placed.items()):
            if placed is shard and self._channel(bucket) == channel:
                del self._placed[bucket]
                self._place_later(bucket, lost=True)

    async def _renew_forever(self) -> None:
        """Renews the leases of the buckets with users here; a lease found run out places its
        bucket again (_register)."""
        while True:
            await asyncio.sleep(self._lease / 3)
            buckets = list(self._leased)
            # All at once: BatchedScript writes each node its share in one write.
            renewed = await asyncio.gather(*(self._register(bucket, []) for bucket in buckets),
                                           return_exceptions=True)
            for bucket, result in zip(buckets, renewed, strict=True):
                if isinstance(result, Exception):  # the next round tries again; a lease lost tells
                    log.debug("could not renew the lease in bucket %d: %r", bucket, result)


class _Shard:
    """One master's channels of this gateway, on a connection of their own. Commands go out
    on the connection the reader reads: Redis answers them in order, so each SSUBSCRIBE's
    confirmation is matched to its sender."""

    def __init__(self, node: Any, on_notification, ping_interval: float,
                 on_moved: Callable[[_Shard, bytes], None]):
        self.name = node.name
        self.open = True  # until close(): what is subscribed here is heard
        self._closing: asyncio.Future | None = None
        self._on_moved = on_moved
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
        self.reader = asyncio.ensure_future(read_replies(self._connection, self._on_reply, self._ping_interval,
                                                         on_error_reply=self._on_error_reply))

    async def add(self, channel: bytes) -> bool:
        """Returns once the channel is confirmed (True) or its connection is lost (False)."""
        if channel in self._channels and not self._unconfirmed.get(channel):
            return self.open
        waits = await self._send_subscribe([channel])
        if not waits:
            pending = self._unconfirmed.get(channel)
            if not pending:
                return False  # no connection
            waits = [pending[-1]]
        # asyncio.wait: a caller cancelled meanwhile must not cancel a confirmation others wait for.
        await asyncio.wait(waits)
        return self.open and channel in self._channels

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

    def _on_error_reply(self, error: Exception) -> None:
        if isinstance(error, MovedError) and self._refused(error.slot_id):
            return
        raise ShardMoved(f"{type(error).__name__}: {error}")  # one we cannot pin on a channel

    def _on_reply(self, reply) -> None:
        # (An error reply never comes here: redis-py raises it, and read_replies hands it
        # to _on_error_reply.)
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
            else:  # the slot moved: this channel is lost, the others here are not
                self._channels.discard(channel)
                self._on_moved(self, channel)

    def _refused(self, slot: int) -> bool:
        """A SSUBSCRIBE answered MOVED: this node does not serve the slot (yet, or any more; a
        slot map read in the middle of a migration). Its channels waiting for a confirmation
        are lost, the connection's others are not. False when no such channel waits here."""
        refused = [channel for channel in self._unconfirmed if key_slot(channel) == slot]
        for channel in refused:
            self._channels.discard(channel)
            for future in self._unconfirmed.pop(channel):
                if not future.done():
                    future.set_result(None)  # add() answers False: not subscribed
            self._on_moved(self, channel)
        return bool(refused)

    async def close(self) -> None:
        """Closed once, whoever asks first (its loss, the run's end); the others wait for it."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        self.open = False
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
