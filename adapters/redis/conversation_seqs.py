"""The conversations' last seqs as deliver.lua hands them out (its counters seq:<conversation>):
known at once, while the worker may not have stored the newest messages yet."""
from __future__ import annotations

import redis.asyncio as aioredis

from adapters.redis.inbox import SEQ_COUNTER
from adapters.redis.support import unavailable
from application.ports import ConversationSeqs


class RedisConversationSeqs(ConversationSeqs):
    def __init__(self, client: aioredis.Redis):
        self._client = client

    async def last_seq(self, conversation: str) -> int | None:
        with unavailable("seq counters"):
            value = await self._client.get(SEQ_COUNTER.format(conversation))
        return None if value is None else int(value)
