"""Many persist streams as one PersistQueue: the large groups' (docs/design/large-groups.md,
section 7.2: one RedisPersistQueue per group's lg:{G}:persist, consumer group `persisters`,
dead letters to lg:{G}:persist:dead) and, on a Redis Cluster, the buckets' ({t}:persist,
docs/design/redis-cluster.md section 6), walked round robin by take.

Which streams are looked at (the active set):
- a sweep every `sweep_every` seconds lists the streams there are (the large groups': lg:streams,
  sno -> group id, written at the switch; the buckets': all of them) and reads, pipelined,
  the XLEN of each. Acked entries are
  XDELed, so XLEN is exactly what is not yet acked, pending entries included: a stream
  with XLEN > 0 becomes active, and its queue's own take then claims idle entries
  (XAUTOCLAIM after claim_idle_ms). An empty deployment costs one HGETALL per sweep.
- a stream stays active while it keeps bringing entries, and leaves the set once it
  brought none for `keep_idle` seconds. A quiet group that posts again is therefore
  persisted within one sweep, not at once (nothing subscribes to lg:new or to the
  group channels yet: the messages are readable from the group's log meanwhile).

The entry ids handed out are qualified, "<group id or bucket>/<stream id>": the same stream
id can occur in two streams, and ack/reject need to know the stream without any state
that a restart or a retried batch could lose."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis

from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.group_streams import PERSIST
from adapters.redis.large_group_keys import LargeGroupKeys
from adapters.redis.persist_queue import RedisPersistQueue
from adapters.redis.support import text, unavailable
from application.ports import PersistQueue
from domain.errors import ServiceUnavailable
from domain.model import Message

log = logging.getLogger("courier.redis.group_persist_queue")

SEPARATOR = "/"  # group ids are uuids, stream ids <ms>-<n>: neither holds a "/"


def qualified(group_id: str, entry_id: str) -> str:
    return f"{group_id}{SEPARATOR}{entry_id}"


def split(qualified_id: str) -> tuple[str, str]:
    group_id, _, entry_id = qualified_id.rpartition(SEPARATOR)
    return group_id, entry_id


class RedisStreamsPersistQueue(PersistQueue):
    """The queue over many streams; a subclass says which there are (_owners) and the
    stream of each (_stream_of), from the owner alone (a group id, a bucket number)."""

    def __init__(
        self,
        client: aioredis.Redis,
        group: str = "persisters",
        claim_idle_ms: int = 30_000,
        *,
        sweep_every: float = 10.0,
        keep_idle: float = 60.0,
    ):
        self._client = client
        self._group = group
        self._claim_idle_ms = int(claim_idle_ms)
        self._sweep_every = sweep_every
        self._keep_idle = keep_idle
        self._queues: dict[str, RedisPersistQueue] = {}  # owner -> its stream's queue, once seen
        self._active: dict[str, float] = {}  # owner -> when it last brought entries (insertion order)
        self._next_sweep = 0.0
        self._turn = 0  # which active stream goes first in the next take (round robin)

    async def take(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, Message]]:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_sweep:
            await self._sweep()
            self._next_sweep = loop.time() + self._sweep_every
        taken = await self._take_round(consumer, count)
        if not taken and block_ms > 0:
            # No stream can be blocked on for all of them: wait as long as a blocking read
            # would, but never past the next sweep.
            await asyncio.sleep(max(0.0, min(block_ms / 1000, self._next_sweep - loop.time())))
        return taken

    def acceptance_order(self, entry_id: str) -> int:
        # Time ids in every stream: the order across streams is by time, as the design's merge.
        return self._queue(split(entry_id)[0]).acceptance_order(split(entry_id)[1])

    async def ack(self, entry_ids: Sequence[str]) -> None:
        for group_id, ids in _by_group(entry_ids).items():
            await self._queue(group_id).ack(ids)

    async def reject(self, entry_ids: Sequence[str], reason: str) -> None:
        for group_id, ids in _by_group(entry_ids).items():
            await self._queue(group_id).reject(ids, reason)

    async def backlog(self) -> int:
        return sum([await queue.backlog() for queue in list(self._queues.values())])

    async def leave(self, consumer: str) -> bool:
        left = [await queue.leave(consumer) for queue in list(self._queues.values())]
        return all(left)

    # --- internals ----------------------------------------------------------
    async def _owners(self) -> list[str]:
        raise NotImplementedError

    def _stream_of(self, owner: str) -> str:
        raise NotImplementedError

    def _queue(self, group_id: str) -> RedisPersistQueue:
        queue = self._queues.get(group_id)
        if queue is None:
            queue = self._queues[group_id] = RedisPersistQueue(
                self._client, self._group, self._stream_of(group_id), self._claim_idle_ms
            )
        return queue

    async def _sweep(self) -> None:
        with unavailable("persist queue"):
            groups = await self._owners()
            if not groups:
                return
            async with self._client.pipeline(transaction=False) as pipe:
                for group_id in groups:
                    pipe.xlen(self._stream_of(group_id))
                lengths = await pipe.execute()
        now = asyncio.get_running_loop().time()
        for group_id, length in zip(groups, lengths, strict=True):
            if int(length) > 0 and group_id not in self._active:
                self._active[group_id] = now
                self._queue(group_id)

    async def _take_round(self, consumer: str, count: int) -> list[tuple[str, Message]]:
        """Every active stream gets a fair share of `count` first (in turn, each one goes
        first once), then what is left of `count` is filled in the same order: a busy
        group never starves a quiet one, and a lone busy group still fills whole batches."""
        groups = list(self._active)
        if not groups:
            return []
        self._turn = (self._turn + 1) % len(groups)
        order = groups[self._turn:] + groups[:self._turn]
        share = max(1, count // len(order))
        taken: list[tuple[str, Message]] = []
        try:
            for limit in (share, None):
                for group_id in order:
                    room = count - len(taken)
                    if room <= 0:
                        break
                    got = await self._queue(group_id).take(consumer, min(room, limit or room), 0)
                    taken.extend((qualified(group_id, entry_id), message) for entry_id, message in got)
                    if got:
                        self._active[group_id] = asyncio.get_running_loop().time()
        except ServiceUnavailable:
            # Entries already moved to this consumer must not wait for a claim: hand them out.
            if not taken:
                raise
            return taken
        self._forget_idle()
        return taken

    def _forget_idle(self) -> None:
        now = asyncio.get_running_loop().time()
        for group_id, last in list(self._active.items()):
            if now - last > self._keep_idle:
                del self._active[group_id]


class RedisGroupPersistQueue(RedisStreamsPersistQueue):
    """The large groups' lg:{G}:persist streams, found in lg:streams (every bucket's, on a
    cluster: `keys`)."""

    def __init__(self, client, group: str = "persisters", claim_idle_ms: int = 30_000, *,
                 keys: ClusterKeys | None = None, **kwargs):
        super().__init__(client, group, claim_idle_ms, **kwargs)
        self._names = LargeGroupKeys(keys)

    async def _owners(self) -> list[str]:
        keys = self._names.every_streams()
        if len(keys) == 1:  # one Redis: one command
            named = [await self._client.hgetall(keys[0])]
        else:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                named = await pipe.execute()
        return [text(group_id) for streams in named for group_id in streams.values()]

    def _stream_of(self, owner: str) -> str:
        return PERSIST.format(owner)


class RedisBucketPersistQueue(RedisStreamsPersistQueue):
    """A Redis Cluster's {t}:persist streams, one per bucket (RedisClusterInbox's commits).
    A sweep reads the XLEN of every bucket's stream: sweep often (a second), since a quiet
    bucket's first message waits for one."""

    def __init__(self, client, keys: ClusterKeys, group: str = "persisters", claim_idle_ms: int = 30_000, *,
                 sweep_every: float = 1.0, keep_idle: float = 60.0):
        super().__init__(client, group, claim_idle_ms, sweep_every=sweep_every, keep_idle=keep_idle)
        self._keys = keys

    async def _owners(self) -> list[str]:
        return [str(bucket) for bucket in range(self._keys.buckets.count)]

    def _stream_of(self, owner: str) -> str:
        return self._keys.persist(int(owner))


def _by_group(entry_ids: Sequence[str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for qualified_id in entry_ids:
        group_id, entry_id = split(qualified_id)
        grouped.setdefault(group_id, []).append(entry_id)
    return grouped
