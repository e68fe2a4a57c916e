"""Revoked tokens in Redis, shared by every gateway: a key per revoked token and one
per user logged out everywhere, each expiring when the tokens it refuses expire (so
nothing has to be swept). Redis keeps them across restarts as it keeps the inboxes
(the append-only file). Each revocation is announced on a pub/sub channel, in the same
atomic step as it is stored, so every gateway closes the sockets concerned at once.

On a Redis Cluster the same keys, in as many slots: each script touches one key (and
publishes: classic pub/sub reaches every node), and a batch of questions is one MGET per
slot (support.get_many)."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from adapters.redis.subscription import Subscription
from adapters.redis.support import get_many, lua, text, unavailable
from application.ports import TokenClaims, TokenRevocations

log = logging.getLogger("courier.redis.revocations")

CHANNEL = "revocations"
PING_SECONDS = 15.0  # the follower's longest silence: then it pings (a dead connection shows)
MAX_BACKOFF = 1.0


def token_key(token_id: str) -> str:
    return f"revoked:token:{token_id}"


def floor_key(user_id: str) -> str:
    return f"revoked:user:{user_id}"


class RedisTokenRevocations(TokenRevocations):
    def __init__(self, client: aioredis.Redis | RedisCluster, channel: str = CHANNEL):
        self._client = client
        self._channel = channel
        self._revoke_all = client.register_script(lua("revocations.lua"))
        self._revoke_token = client.register_script(lua("revoke_token.lua"))

    async def revoke(self, claims: TokenClaims) -> None:
        with unavailable("revocations"):
            if claims.expires_at > time.time():
                await self._revoke_token(keys=[token_key(claims.token_id)],
                                         args=[claims.expires_at, self._channel, claims.user_id])
            else:  # refused anyway: nothing to keep
                await self._client.publish(self._channel, claims.user_id)

    async def revoke_all(self, user_id: str, issued_before: float, until: float) -> None:
        with unavailable("revocations"):
            await self._revoke_all(keys=[floor_key(user_id)],
                                   args=[math.floor(issued_before * 1000), math.ceil(until), self._channel, user_id])

    async def revoked(self, claims: Sequence[TokenClaims]) -> list[bool]:
        if not claims:
            return []
        keys = [token_key(c.token_id) for c in claims] + [floor_key(c.user_id) for c in claims]
        with unavailable("revocations"):
            values = await get_many(self._client, keys)
        count = len(claims)
        answers = []
        for index, c in enumerate(claims):
            floor = values[count + index]
            answers.append(values[index] is not None or (floor is not None and c.issued_ms < int(text(floor))))
        return answers

    async def follow(self, on_revoked: Callable[[str | None], None]) -> None:
        """Until cancelled: each announcement to on_revoked(user id), and on_revoked(None)
        after every (re)subscription (what was announced while it was down may be missed).
        The subscription reads on a connection of its own with redis-py's retries off - a
        reconnect behind our back would skip what was announced meanwhile - on any node of
        a cluster (adapters/redis/pubsub.py)."""
        def on_message(channel: bytes, data: bytes) -> None:
            on_revoked(text(data))

        async def on_resync() -> None:
            on_revoked(None)

        subscription = Subscription(self._client, "courier-revocations", [self._channel.encode()],
                                    ping_interval=PING_SECONDS, max_backoff=MAX_BACKOFF)
        await subscription.run(on_message, on_resync)
