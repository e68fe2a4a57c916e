"""Send idempotency shared by every gateway: the answer to (sender, client_msg_id)
kept in Redis for a week (the contract promises at least 24 hours)."""
from __future__ import annotations

import hashlib

import orjson
import redis.asyncio as aioredis

from adapters.redis.support import unavailable
from application.ports import IdempotencyKeys
from domain.model import Message

DEFAULT_TTL = 7 * 86400


def idempotency_key(sender_id: str, client_msg_id: str) -> str:
    # client_msg_id is any text of up to 128 characters (colons, spaces, emoji...):
    # a digest keeps keys short, printable and unambiguous.
    digest = hashlib.blake2b(client_msg_id.encode("utf-8"), digest_size=16).hexdigest()
    return f"idem:{sender_id}:{digest}"


class RedisIdempotencyKeys(IdempotencyKeys):
    def __init__(self, client: aioredis.Redis, ttl_seconds: int = DEFAULT_TTL):
        self._client = client
        self._ttl = int(ttl_seconds)

    async def remember(self, sender_id: str, client_msg_id: str, message: Message) -> Message | None:
        key = idempotency_key(sender_id, client_msg_id)
        # SET NX GET (Redis 7): store ours unless a value exists, and return that value,
        # in one atomic step - two gateways racing on the same key agree on one answer.
        with unavailable("idempotency"):
            previous = await self._client.set(key, orjson.dumps(message.to_record()), nx=True, ex=self._ttl, get=True)
        return None if previous is None else Message.from_record(orjson.loads(previous))

    async def forget(self, sender_id: str, client_msg_id: str) -> None:
        with unavailable("idempotency"):
            await self._client.delete(idempotency_key(sender_id, client_msg_id))
