"""RecentMessages over the Redis logs: a message the persister has not stored yet is
among the newest entries of its sender's log (and of every recipient's)."""
from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from adapters.redis.inbox import INBOX_KEY
from adapters.redis.support import unavailable
from application.ports import RecentMessages
from domain.model import Message

# How many of the newest entries are looked at: the persister lags by seconds, so a
# message it has not stored is far more recent than this many entries of any log.
LOOK_BACK = 2000


class RedisRecentMessages(RecentMessages):
    def __init__(self, redis: aioredis.Redis, look_back: int = LOOK_BACK):
        self._redis = redis
        self._look_back = look_back

    async def find(self, user_id: str, message_id: str) -> Message | None:
        with unavailable("recent"):
            entries = await self._redis.xrevrange(INBOX_KEY.format(user_id), count=self._look_back)
        wanted = message_id.encode()
        for _, fields in entries:
            record = fields.get(b"m", fields.get("m"))
            if record is None or wanted not in (record if isinstance(record, bytes) else record.encode()):
                continue
            body = orjson.loads(record)
            if body.get("id") == message_id and body.get("type") in ("private", "group"):
                return Message.from_record(body)
        return None
