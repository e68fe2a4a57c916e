"""The production CursorCheckpoints (docs/design/large-groups.md, section 3.4): a user's
checkpoint k is kept under ckpt:<U>:<k mod ring> as "<k>:<sno>=<ms>-<n>,...", for the
TTL (14 days), and a later checkpoint that takes its slot replaces it. A cursor naming k
whose slot holds another k, or nothing, answers CursorExpired (410: history fills in).

Ids come from ckpt:<U>:next. It lives as long as the newest checkpoint, and a counter
that is made anew (it expired with every checkpoint, or Redis lost its data) starts from
the clock in milliseconds, not from 1: an id is never handed out twice, so an old cursor
can never load a newer checkpoint that took its number (it would resume in the wrong
place, silently). That costs a checkpoint id 7 characters in a cursor.

The id is taken first, then the checkpoint written (its key depends on the id): a
failure in between leaves an id unused and nothing else.

The same positions saved again answer the checkpoint that keeps them, while it is kept
(ckpt:<U>:d:<digest> -> its id, checked against the slot), and its time starts again:
a client that resumes a page from one cursor again and again (a retry, a second device)
cuts the same vectors, and must not push the user's other checkpoints out of the ring
(docs/design/large-groups.md, section 22).

A checkpoint that is read (a cursor naming it resolved: a pull, a socket's attach) when
more than half of its time is gone is kept for another whole TTL: a client that keeps
resuming from cursors naming one checkpoint (few groups moved since) never sees it
expire under it.

On a Redis Cluster a user's keys start with the tag of the user's bucket ("{t}:ckpt:<U>:...",
KeyLayout.user): the MULTIs below touch several of them, which a cluster takes in one slot
only. One Redis keeps the names above."""
from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from adapters.redis.layout import SINGLE, KeyLayout
from adapters.redis.support import text, unavailable
from application.ports import CursorCheckpoints
from domain import errors
from domain.cursor import Position, stream_id
from domain.model import cursor_position

# One Redis's names; on a cluster each starts with its user's tag (KeyLayout.user).
SLOT = "ckpt:{}:{}"
NEXT = "ckpt:{}:next"
DIGEST = "ckpt:{}:d:{}"
RING = 64
TTL = 14 * 24 * 3600  # COURIER_CURSOR_CHECKPOINT_TTL


class RedisCursorCheckpoints(CursorCheckpoints):
    def __init__(self, client: aioredis.Redis | RedisCluster, *, ttl: int = TTL, ring: int = RING,
                 layout: KeyLayout = SINGLE):
        self._client = client
        self._ttl = int(ttl)
        self._ring = ring
        self._layout = layout

    def slot_key(self, user_id: str, checkpoint: int) -> str:
        """Where checkpoint `checkpoint` of the user is kept (while no later one took its place)."""
        return self._layout.user(user_id) + SLOT.format(user_id, checkpoint % self._ring)

    def next_key(self, user_id: str) -> str:
        return self._layout.user(user_id) + NEXT.format(user_id)

    def _digest_key(self, user_id: str, vector: str) -> str:
        digest = hashlib.blake2b(vector.encode(), digest_size=12).hexdigest()
        return self._layout.user(user_id) + DIGEST.format(user_id, digest)

    async def save(self, user_id: str, groups: Mapping[int, Position]) -> int:
        counter = self.next_key(user_id)
        vector = ",".join(f"{stream}={stream_id(position)}" for stream, position in sorted(groups.items()))
        digest = self._digest_key(user_id, vector)
        with unavailable("checkpoint"):
            same = await self._client.get(digest)
            if same is not None:
                checkpoint = int(same)
                slot = self.slot_key(user_id, checkpoint)
                if await self._client.get(slot) == f"{checkpoint}:{vector}".encode():
                    async with self._client.pipeline(transaction=True) as pipe:
                        pipe.expire(slot, self._ttl)
                        pipe.expire(digest, self._ttl)
                        pipe.expire(counter, self._ttl)
                        await pipe.execute()
                    return checkpoint
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(counter, int(time.time() * 1000), nx=True)
                pipe.incr(counter)
                pipe.expire(counter, self._ttl)
                _, checkpoint, _ = await pipe.execute()
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(self.slot_key(user_id, checkpoint), f"{checkpoint}:{vector}", ex=self._ttl)
                pipe.set(digest, checkpoint, ex=self._ttl)
                await pipe.execute()
        return int(checkpoint)

    async def load(self, user_id: str, checkpoint: int) -> dict[int, Position]:
        slot = self.slot_key(user_id, checkpoint)
        with unavailable("checkpoint"):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.get(slot)
                pipe.ttl(slot)
                kept, left = await pipe.execute()
        if kept is not None:
            number, _, vector = text(kept).partition(":")
            if int(number) == checkpoint:
                if 0 <= left < self._ttl // 2:  # read with more than half of its time gone
                    with unavailable("checkpoint"):
                        async with self._client.pipeline(transaction=True) as pipe:
                            pipe.expire(slot, self._ttl)
                            pipe.expire(self._digest_key(user_id, vector), self._ttl)
                            pipe.expire(self.next_key(user_id), self._ttl)
                            await pipe.execute()
                return {int(stream): cursor_position(position)
                        for stream, position in (part.split("=") for part in vector.split(",") if part)}
        raise errors.CursorExpired("the cursor's checkpoint is no longer kept; use the history calls")

