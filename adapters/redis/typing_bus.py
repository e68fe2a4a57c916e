"""Typing events between gateways through Redis pub/sub (TypingBus, production): one
channel every gateway subscribes to; each pushes an event to its own sockets of the
recipients. Fire and forget: what is published while a gateway reconnects is lost to it
(a lost stop is covered by the receiving side's expiry of a start).

On a Redis Cluster the same channel: a classic PUBLISH reaches every node, and the
subscription reads on any one of them (adapters/redis/pubsub.py)."""
from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
import redis.asyncio as aioredis

from adapters.redis.subscription import Subscription
from adapters.redis.support import publish, unavailable
from application.ports import TypingBus
from domain.presence import Typing

log = logging.getLogger("courier.redis.typing_bus")

CHANNEL = "courier:typing"


class RedisTypingBus(TypingBus):
    def __init__(self, client: aioredis.Redis, channel: str = CHANNEL, *, ping_interval: float = 5.0,
                 min_backoff: float = 0.1, max_backoff: float = 1.0):
        self._client = client
        self._channel = channel
        self._subscription = Subscription(client, "courier-typing", [channel.encode()], ping_interval=ping_interval,
                                          min_backoff=min_backoff, max_backoff=max_backoff)

    @property
    def resubscriptions(self) -> int:
        return self._subscription.resubscriptions

    async def publish(self, typing: Typing) -> None:
        with unavailable("typing"):
            await publish(self._client, self._channel, orjson.dumps(typing.to_record()))

    async def run(self, on_typing: Callable[[Typing], None]) -> None:
        def on_message(channel: bytes, data: bytes) -> None:
            try:
                typing = Typing.from_record(orjson.loads(data))
            except Exception as e:  # noqa: BLE001 - a bad message must not stop the others
                log.warning("skipped a malformed typing event (%s): %.200r", e, data)
                return
            on_typing(typing)

        await self._subscription.run(on_message)
