"""RecentMessages over Redis: a message the persister has not stored yet is among the
newest entries of its sender's log (and of every recipient's), and in any case in
stream:persist, which holds exactly what is not stored yet (the persister deletes what
it acked). A large group's message is in no member's log but in its group's stream, and
waits in lg:{G}:persist: for one not in the caller's log, the persist streams of the
caller's large groups (lgm:<U>: the sender's, or the deleting owner's) are read too -
each holds only what is not stored yet, so they are short.

On a Redis Cluster a user's log is {t}:log:<user> and the backlog is split over every
bucket's {t}:persist (adapters/redis/cluster_keys.py): on_cluster() makes the adapter
that reads those, the pages of all the backlog's streams in one pipeline per round."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.group_streams import PERSIST
from adapters.redis.inbox import INBOX_KEY, PERSIST_STREAM
from adapters.redis.large_group_keys import LargeGroupKeys
from adapters.redis.support import unavailable
from application.ports import RecentMessages
from domain import errors
from domain.model import Message

# How many of the newest entries of the caller's log are looked at first: the persister
# lags by seconds, so a message it has not stored is almost always that recent.
LOOK_BACK = 2000
# After that, the backlog is read from its oldest entry in pages of LOOK_BACK, at most
# this many entries: a backlog longer than that (the worker stopped for long) answers
# "not stored yet, try again" rather than costing Redis a read of all of it per call.
BACKLOG_LIMIT = 50_000


class RedisRecentMessages(RecentMessages):
    def __init__(self, redis: aioredis.Redis | RedisCluster, look_back: int = LOOK_BACK,
                 backlog_limit: int = BACKLOG_LIMIT, persist_streams: Sequence[str] = (PERSIST_STREAM,),
                 log_key: Callable[[str], str] = INBOX_KEY.format, large_groups: LargeGroupKeys | None = None):
        self._redis = redis
        self._large_groups = large_groups or LargeGroupKeys()
        self._look_back = look_back
        self._backlog_limit = backlog_limit
        self._persist_streams = list(persist_streams)
        self._log_key = log_key

    @classmethod
    def on_cluster(cls, redis: RedisCluster, keys: ClusterKeys, **kwargs) -> RedisRecentMessages:
        """The adapter for the cluster's layout: each user's log in its bucket, every bucket's backlog."""
        return cls(redis, persist_streams=[keys.persist(bucket) for bucket in range(keys.buckets.count)],
                   log_key=keys.log, large_groups=LargeGroupKeys(keys), **kwargs)

    async def find(self, user_id: str, message_id: str) -> Message | None:
        wanted = message_id.encode()
        with unavailable("recent"):
            entries = await self._redis.xrevrange(self._log_key(user_id), count=self._look_back)
            message = _matching(entries, message_id, wanted)
            if message is not None:
                return message
            message = await self._in_large_groups(user_id, message_id, wanted)
            if message is not None:
                return message
            return await self._in_backlog(message_id, wanted)

    async def _in_large_groups(self, user_id: str, message_id: str, wanted: bytes) -> Message | None:
        group_ids = await self._redis.smembers(self._large_groups.groups_of(user_id))
        if not group_ids:
            return None
        async with self._redis.pipeline(transaction=False) as pipe:
            for group_id in group_ids:
                pipe.xrange(PERSIST.format(group_id.decode() if isinstance(group_id, bytes) else group_id),
                            count=self._look_back)
            pages = await pipe.execute()
        for entries in pages:
            message = _matching(entries, message_id, wanted)
            if message is not None:
                return message
        return None

    async def _in_backlog(self, message_id: str, wanted: bytes) -> Message | None:
        """Every backlog stream from its oldest entry, a page of each per round trip, until
        each is read to its end or backlog_limit entries were read in all."""
        starts = dict.fromkeys(self._persist_streams, "-")
        read = 0
        while starts:
            if read >= self._backlog_limit:
                raise errors.ServiceUnavailable("the message may not be stored yet: try again in a moment")
            streams = list(starts)
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream in streams:
                    pipe.xrange(stream, min=starts[stream], count=self._look_back)
                pages = await pipe.execute()
            for stream, entries in zip(streams, pages, strict=True):
                message = _matching(entries, message_id, wanted)
                if message is not None:
                    return message
                read += len(entries)
                if len(entries) < self._look_back:
                    del starts[stream]  # read to its end
                else:
                    last = entries[-1][0]
                    starts[stream] = "(" + (last.decode() if isinstance(last, bytes) else last)
        return None


def _matching(entries, message_id: str, wanted: bytes) -> Message | None:
    for _, fields in entries:
        record = fields.get(b"m", fields.get("m"))
        if record is None or wanted not in (record if isinstance(record, bytes) else record.encode()):
            continue
        body = orjson.loads(record)
        if body.get("id") == message_id and body.get("type") in ("private", "group"):
            return Message.from_record(body)
    return None
