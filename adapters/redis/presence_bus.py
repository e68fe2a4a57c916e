"""Presence changes between gateways through Redis pub/sub (PresenceBus, production).

One channel per user (presence:changes:{user_id}); a gateway subscribes to the users its
sockets watch, so Redis hands a change to the gateways watching that user and no other:
a change costs O(its subscribers), and a gateway hears nothing of anyone else. A gateway
subscribes once per user however many of its sockets watch it (watch/unwatch are counted).

On a Redis Cluster the same channels: a classic PUBLISH reaches every node, and each
gateway subscribes on any one of them (adapters/redis/pubsub.py); only the question of
who watches asks every node (support.subscriber_counts)."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import orjson
import redis.asyncio as aioredis

from adapters.redis.subscription import Subscription
from adapters.redis.support import publish, publish_all, subscriber_counts, unavailable
from application.ports import PresenceBus
from domain.presence import PresenceStatus

log = logging.getLogger("courier.redis.presence_bus")

CHANNEL_PREFIX = "presence:changes:"


def encode(status: PresenceStatus) -> bytes:
    return orjson.dumps({"user_id": status.user_id, "online": status.online, "last_seen": status.last_seen,
                         "version": status.version})


def decode(data: bytes) -> PresenceStatus:
    record = orjson.loads(data)
    last_seen = record["last_seen"]
    return PresenceStatus(str(record["user_id"]), bool(record["online"]),
                          None if last_seen is None else int(last_seen), int(record["version"]))


class RedisPresenceBus(PresenceBus):
    """`client` publishes; the subscription reads on a connection of its own made from its
    settings (adapters/redis/pubsub.py). `prefix`: the channels' (tests give their own, as
    pub/sub channels are shared by every database of a server)."""

    def __init__(self, client: aioredis.Redis, prefix: str = CHANNEL_PREFIX, *, ping_interval: float = 5.0,
                 min_backoff: float = 0.1, max_backoff: float = 1.0):
        self._client = client
        self._prefix = prefix
        self._watched: dict[str, int] = {}  # user -> watch() calls not undone by unwatch()
        self._subscription = Subscription(client, "courier-presence", ping_interval=ping_interval,
                                          min_backoff=min_backoff, max_backoff=max_backoff)

    @property
    def resubscriptions(self) -> int:
        return self._subscription.resubscriptions

    @property
    def watched(self) -> set[str]:
        return set(self._watched)

    def _channel(self, user_id: str) -> bytes:
        return (self._prefix + user_id).encode()

    async def watch(self, user_ids: Sequence[str]) -> None:
        for user_id in user_ids:
            self._watched[user_id] = self._watched.get(user_id, 0) + 1
        # Every id, not just the new ones: one another task is watching may not be confirmed yet.
        await self._subscription.add([self._channel(user_id) for user_id in user_ids])

    async def unwatch(self, user_ids: Sequence[str]) -> None:
        gone = []
        for user_id in user_ids:
            left = self._watched.get(user_id, 0) - 1
            if left > 0:
                self._watched[user_id] = left
            elif self._watched.pop(user_id, None) is not None:
                gone.append(self._channel(user_id))
        await self._subscription.remove(gone)

    async def publish(self, statuses: Sequence[PresenceStatus]) -> None:
        if not statuses:
            return
        with unavailable("presence changes"):
            if len(statuses) == 1:
                await publish(self._client, self._channel(statuses[0].user_id), encode(statuses[0]))
                return
            # One round trip, in order.
            await publish_all(self._client, [(self._channel(status.user_id), encode(status)) for status in statuses])

    async def watched_among(self, user_ids: Sequence[str]) -> set[str]:
        """PUBSUB NUMSUB: whether each user's channel has a subscriber (on any node of a cluster)."""
        if not user_ids:
            return set()
        with unavailable("presence changes"):
            counts = await subscriber_counts(self._client, [self._channel(user_id) for user_id in user_ids])
        prefix = len(self._prefix)
        return {(channel.decode() if isinstance(channel, bytes) else channel)[prefix:]
                for channel, subscribers in counts if subscribers}

    async def run(self, on_change: Callable[[PresenceStatus], None],
                  on_resync: Callable[[], Awaitable[None]]) -> None:
        def on_message(channel: bytes, data: bytes) -> None:
            try:
                status = decode(data)
            except Exception as e:  # noqa: BLE001 - a bad message must not stop the others
                log.warning("skipped a malformed presence change (%s): %.200r", e, data)
                return
            on_change(status)

        await self._subscription.run(on_message, on_resync)
