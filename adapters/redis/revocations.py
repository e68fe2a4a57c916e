"""Revoked tokens in Redis, shared by every gateway: a key per revoked token and one
per user logged out everywhere, each expiring when the tokens it refuses expire (so
nothing has to be swept). Redis keeps them across restarts as it keeps the inboxes
(the append-only file)."""
from __future__ import annotations

import math
import time
from collections.abc import Sequence

import redis.asyncio as aioredis

from adapters.redis.support import lua, text, unavailable
from application.ports import TokenClaims, TokenRevocations


def token_key(token_id: str) -> str:
    return f"revoked:token:{token_id}"


def floor_key(user_id: str) -> str:
    return f"revoked:user:{user_id}"


class RedisTokenRevocations(TokenRevocations):
    def __init__(self, client: aioredis.Redis):
        self._client = client
        self._revoke_all = client.register_script(lua("revocations.lua"))

    async def revoke(self, claims: TokenClaims) -> None:
        if claims.expires_at <= time.time():
            return  # refused anyway
        with unavailable("revocations"):
            await self._client.set(token_key(claims.token_id), b"1", exat=claims.expires_at)

    async def revoke_all(self, user_id: str, issued_before: float, until: float) -> None:
        with unavailable("revocations"):
            await self._revoke_all(keys=[floor_key(user_id)], args=[math.floor(issued_before * 1000), math.ceil(until)])

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
