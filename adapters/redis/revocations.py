"""Revoked tokens in Redis, shared by every gateway: a key per revoked token and one
per user logged out everywhere, each expiring when the tokens it refuses expire (so
nothing has to be swept). Redis keeps them across restarts as it keeps the inboxes
(the append-only file). Each revocation is announced on a pub/sub channel, in the same
atomic step as it is stored, so every gateway closes the sockets concerned at once."""
from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.redis.support import NO_MAINTENANCE_NOTIFICATIONS, lua, text, unavailable
from application.ports import TokenClaims, TokenRevocations

log = logging.getLogger("courier.redis.revocations")

CHANNEL = "revocations"
POLL_SECONDS = 15.0  # the follower's longest wait for a message: then it pings (a dead connection shows)
MAX_BACKOFF = 1.0


def token_key(token_id: str) -> str:
    return f"revoked:token:{token_id}"


def floor_key(user_id: str) -> str:
    return f"revoked:user:{user_id}"


class RedisTokenRevocations(TokenRevocations):
    def __init__(self, client: aioredis.Redis, channel: str = CHANNEL):
        self._client = client
        self._channel = channel
        self._revoke_all = client.register_script(lua("revocations.lua"))

    async def revoke(self, claims: TokenClaims) -> None:
        with unavailable("revocations"):
            async with self._client.pipeline(transaction=True) as pipe:
                if claims.expires_at > time.time():  # else refused anyway: nothing to keep
                    pipe.set(token_key(claims.token_id), b"1", exat=claims.expires_at)
                pipe.publish(self._channel, claims.user_id)
                await pipe.execute()

    async def revoke_all(self, user_id: str, issued_before: float, until: float) -> None:
        with unavailable("revocations"):
            await self._revoke_all(keys=[floor_key(user_id)],
                                   args=[math.floor(issued_before * 1000), math.ceil(until), self._channel, user_id])

    async def revoked(self, claims: Sequence[TokenClaims]) -> list[bool]:
        if not claims:
            return []
        keys = [token_key(c.token_id) for c in claims] + [floor_key(c.user_id) for c in claims]
        with unavailable("revocations"):
            values = await self._client.mget(keys)
        count = len(claims)
        answers = []
        for index, c in enumerate(claims):
            floor = values[count + index]
            answers.append(values[index] is not None or (floor is not None and c.issued_ms < int(text(floor))))
        return answers

    async def follow(self, on_revoked: Callable[[str | None], None]) -> None:
        """Subscribe to the announcements, on a connection of its own with redis-py's
        retries off (a reconnect behind our back would skip what was announced meanwhile):
        after every (re)subscription, on_revoked(None)."""
        pool = self._client.connection_pool
        client = aioredis.Redis.from_pool(aioredis.ConnectionPool(
            connection_class=pool.connection_class, max_connections=2,
            **{**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0), "health_check_interval": POLL_SECONDS,
               "decode_responses": False, "maint_notifications_config": NO_MAINTENANCE_NOTIFICATIONS},
        ))
        backoff = 0.1
        try:
            while True:
                pubsub = client.pubsub()
                try:
                    await pubsub.subscribe(self._channel)
                    subscribed = False
                    while True:
                        # With a timeout, so that an idle connection is pinged (health_check_interval)
                        # and a dead one noticed.
                        message = await pubsub.get_message(timeout=POLL_SECONDS)
                        if message is None:
                            continue
                        if message["type"] == "subscribe" and not subscribed:
                            # Only from the confirmation on is every announcement sure to
                            # come here: what came before may have been missed.
                            subscribed, backoff = True, 0.1
                            on_revoked(None)
                        elif message["type"] == "message":
                            on_revoked(text(message["data"]))
                except Exception as error:  # noqa: BLE001 - reconnect, never stop following
                    log.warning("lost the revocation announcements (%r); resubscribing", error)
                    await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                    backoff = min(2 * backoff, MAX_BACKOFF)
                finally:
                    await pubsub.aclose()
        finally:
            await client.aclose()
