"""A large group's switch on a Redis Cluster (docs/design/redis-cluster.md, section 4): where
one Redis makes it one script (lg_change.lua given the small path's keys), a cluster
cannot - the small counter is in its conversation's bucket, the group's state in {G}, the
cursor generators in every bucket - so it is made in steps, each on one slot:

1. close (lg_close.lua, the counter's slot): the small counter switched off with 'L' and
   the last small seq S returned, kept beside it so that a switch made again gets the same
   S. From here on commit.lua answers LARGE for the group, before writing anything.
2. settle: the small era's sends committed before step 1 and not appended everywhere yet
   (the conversation's pending hash) are let finish, for a while at most. Their own-log
   entries then have ids below the floor read next, so the time merge keeps seq order
   across the switch. Past the wait, an append still in flight may land above the floor:
   harmless for the members' intervals (the floor is every present member's join, whatever
   the own logs hold: large-groups.md section 5), only its place in a merged page.
3. the floor's lower bound: the newest id of every bucket's generator, read now.
4. start (lg_change.lua with the group's keys alone, in {G}): the stream from S + 1, the
   members open at the floor (after the bound, TIME and the log's newest), idempotent by
   the state's floor as on one Redis.
5. announce: the `switched` envelope SPUBLISHed on the channel of each bucket holding a
   member, with that bucket's members - after the small era's notifications of those
   members, which step 2 waited for (one Redis publishes it on its main channel).

Between steps 1 and 4 the group has no stream and its small path answers LARGE: a send
then waits for step 4 (RedisGroupStreams.deliver). A switch that dies there is made again
by the announcements' relay; steps 1 and 4 are idempotent, and step 5 publishes again (a
gateway follows a group it follows already as before)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.asyncio.cluster import RedisCluster

from adapters.redis import envelope
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.support import bucket_lua, get_many, lua, text

ANNOUNCE_CONCURRENCY = 16  # buckets announced to at once
SETTLE_SECONDS = 2.0  # how long step 2 waits; a gateway that died leaves its sends to the relay (5 s)
SETTLE_POLL = 0.01


@dataclass(frozen=True)
class Closed:
    seq: int  # the last small seq S
    pending: int  # the small era's sends not appended everywhere yet
    before: bool  # the counter was switched off by an earlier call


class ClusterSwitch:
    def __init__(self, client: RedisCluster, keys: ClusterKeys, *, settle: float = SETTLE_SECONDS):
        self._client = client
        self._keys = keys
        self._settle = settle
        self._close = client.register_script(lua("lg_close.lua"))
        self._publish = client.register_script(bucket_lua("bucket_publish.lua"))

    def counter(self, group_id: str) -> str:
        return self._keys.seq("g:" + group_id)

    def seq_complete(self, group_id: str) -> str:
        return self._keys.seq_complete(self._keys.bucket_of("g:" + group_id))

    def closed(self, group_id: str) -> str:
        """Where step 1 keeps the last small seq (in the counter's slot)."""
        return self._keys.seq_closed("g:" + group_id)

    async def close(self, group_id: str, seed: int | None,
                    last_seq: Callable[[str], Awaitable[int]] | None) -> Closed:
        """Step 1; a missing counter without its bucket's marker is seeded from `seed`, else
        from `last_seq` (MessageStore.last_seq), as commit.lua's NOSEED is."""
        conversation = "g:" + group_id
        keys = [self.counter(group_id), self.seq_complete(group_id), self.closed(group_id),
                self._keys.pending(conversation)]
        try:
            reply = await self._close(keys=keys, args=["" if seed is None else seed])
        except Exception as error:
            if seed is not None or not str(error).startswith("NOSEED"):
                raise
            seed = await last_seq(conversation) if last_seq is not None else 0
            reply = await self._close(keys=keys, args=[seed])
        return Closed(int(reply[0]), int(reply[1]), text(reply[2]) == "1")

    async def settle(self, group_id: str, pending: int) -> None:
        """Step 2: until the sends committed before the close are appended, for a while."""
        if not pending:
            return
        key = self._keys.pending("g:" + group_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settle
        while await self._client.hlen(key) and loop.time() < deadline:
            await asyncio.sleep(SETTLE_POLL)

    async def floor_bound(self) -> str:
        """Step 3: the newest id any bucket's generator handed out ('' when none has)."""
        ids = await get_many(self._client, [self._keys.generator(bucket) for bucket in range(self._keys.buckets.count)])
        newest = max((_position(text(value)) for value in ids if value is not None), default=None)
        return "" if newest is None else f"{newest[0]}-{newest[1]}"

    async def announce(self, group_id: str, stream: int, member_ids: Sequence[str], floor: str) -> None:
        """Step 5: each bucket's members hear of the switch, on the channels of the gateways
        that hold their sockets."""
        by_bucket: dict[int, list[str]] = {}
        for user_id in member_ids:
            by_bucket.setdefault(self._keys.bucket_of(user_id), []).append(user_id)
        tail = b',"floor":"' + floor.encode() + b'"}'
        # A few at a time: one call per bucket at once could pass the cluster client's
        # connections per node (it refuses past them; a channel starts with up to 10,000
        # members, in every bucket).
        slots = asyncio.Semaphore(ANNOUNCE_CONCURRENCY)

        async def publish(bucket: int, users: list[str]) -> None:
            async with slots:
                await self._publish(keys=[self._keys.audience(bucket), self._keys.leases(bucket)],
                                    args=[self._keys.channel_prefix(bucket),
                                          envelope.switched_head(group_id, stream, users) + tail, *users])

        await asyncio.gather(*(publish(bucket, users) for bucket, users in by_bucket.items()))


def _position(stream_id: str) -> tuple[int, int]:
    ms, n = stream_id.split("-")
    return int(ms), int(n)
