"""The seq counters' marker, seq:complete: "every conversation with messages in the
database has its counter in Redis". deliver.lua starts a missing counter from 0 when the
marker exists (the conversation has no message yet), and asks the database otherwise
(NOSEED: RedisInbox reads MessageStore.last_seq). With the marker a first message into
a conversation needs Redis only, and is accepted while the database is down, as every
other send to a recipient or group the cache knows.

`courier worker` keeps the marker (SeqCounters.keep): whenever it is missing (a new
Redis, or one that lost its data) it reads the highest seq of every conversation from
the database, page by page, sets each counter that does not exist (SET NX, one pipeline
per page: a counter that exists is never lowered, as it may be ahead of the database by
the messages still in stream:persist), then sets the marker.

Why the marker cannot be set while a conversation with stored messages lacks a counter:
- a conversation whose messages were stored before its page was read gets its counter
  from that page (SET NX: created at the seq read, or left as it is);
- a message stored after that got its seq from deliver.lua's INCR, so its counter
  existed when it was accepted; counters are never deleted, they are only lost with
  Redis's data;
- and a loss of Redis's data during the rebuild is seen: the rebuild starts by setting a
  key of its own (seq:rebuilding:<id>), lost with the rest, and the marker is set by a
  script only if that key still exists (finish below). A loss before the rebuild started
  leaves no marker, hence the rebuild.
Large groups (docs/design/large-groups.md, section 7.3) are restored first, when the worker
is given them (`large_groups`, SqlGroupRepository.large_groups, and `streams`): for each
group_streams row, RedisGroupStreams.restore makes the switch again from what SQL holds now
(lg:{G} with the counter seeded from the database's highest seq, mv, owner, kind; every
current member open at a new floor, after every id the log held; lgm:<U>, lg:streams; the
small counter seq:g:<G> poisoned with 'L', so the counters' pages below leave it). Until the
marker is set a large group's send answers 503 (RedisGroupStreams.deliver), so no message
is accepted between the loss and the group's state. Cursors from before the loss name
places before the new floor (410: CursorExpired) or after the new log's newest entry
(CursorUnknown), as inbox cursors do. Members whose joins or leaves were announced to Redis
but not committed cannot exist (SQL commits first); changes committed after the page was read
are applied by their announcer or the relay on top (their versions follow the page's).

Gateways seeding a counter (NOSEED) while the worker scans are harmless: both use SET NX,
and each seeds from a highest seq that was in the database, so whichever comes first
stands and the other changes nothing. Two workers rebuilding at once are as harmless.

Left open (the persister numbers anew, with a warning, a message whose seq is taken, so
history stays consistent): a batch a persister took from stream:persist before Redis lost
its data, committed to the database after the rebuild read its conversation's page;
messages queued by gateways older than seqs, numbered by the persister; and Redis put
back to an older snapshot (its counters behind the database, the marker in it). The
marker assumes counters are not evicted (no allkeys-* maxmemory policy, which Courier's
inboxes do not survive either).

On a Redis Cluster (given its `keys`) the counters are commit.lua's, {t}:seq:<C> in each
conversation's bucket, and the marker is per bucket ({t}:seq-complete: commit.lua answers
NOSEED without its bucket's): complete means every bucket's. The rebuild's own key is one
per bucket, in the bucket's slot, set before any counter; each bucket's marker is set by
the finish script in that slot only if the bucket's own key is still there, so a node that
lost its data during the rebuild (its buckets' counters with it) leaves its buckets without
the marker, and the next check rebuilds again. Left open there: a node that loses a large
group's state ({G}) while the group's counter, in another node's bucket, keeps its 'L'
(sends then answer 503 until the group is switched again)."""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

import redis.asyncio as aioredis

from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.group_streams import RedisGroupStreams
from adapters.redis.inbox import SEQ_COMPLETE, SEQ_COUNTER
from adapters.redis.support import get_many, unavailable
from application.ports import GroupSwitch
from domain.errors import ServiceUnavailable

log = logging.getLogger("courier.seq")

REBUILDING = "seq:rebuilding:{}"
REBUILDING_TTL = 24 * 3600  # a rebuild that died leaves its key this long at most
PAGE = 1000
FINISH_AT_ONCE = 32  # a cluster's buckets finished this many at a time (its client has no blocking pool)

# KEYS[1] this rebuild's own key, KEYS[2] the marker: the marker only if Redis kept the key.
_FINISH = """
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('SET', KEYS[2], '1')
  return 1
end
return 0
"""

HighestSeqs = Callable[[str | None, int], Awaitable[list[tuple[str, int]]]]
# SqlGroupRepository.large_groups: pages of (switch as of now, highest stored seq) by stream number.
LargeGroups = Callable[[int | None, int], Awaitable[list[tuple[GroupSwitch, int]]]]


class SeqCounters:
    """`highest_seqs` is MessageStore.highest_seqs (pages of (conversation, highest seq));
    `large_groups` and `streams` (both or neither) restore the large groups' state. `keys`:
    the layout of a Redis Cluster (None on one Redis)."""

    def __init__(self, client: aioredis.Redis, highest_seqs: HighestSeqs, *, large_groups: LargeGroups | None = None,
                 streams: RedisGroupStreams | None = None, page: int = PAGE, interval: float = 2.0,
                 keys: ClusterKeys | None = None):
        self._client = client
        self._keys = keys
        self._highest_seqs = highest_seqs
        self._large_groups = large_groups if streams is not None else None
        self._streams = streams
        self._page = page
        self._interval = interval
        self._finish = client.register_script(_FINISH)

    def _counter(self, conversation: str) -> str:
        return SEQ_COUNTER.format(conversation) if self._keys is None else self._keys.seq(conversation)

    def _markers(self, rebuild_id: str) -> list[tuple[str, str]]:
        """(this rebuild's own key, the marker it guards), in one slot each."""
        if self._keys is None:
            return [(REBUILDING.format(rebuild_id), SEQ_COMPLETE)]
        return [(self._keys.seq_rebuilding(bucket, rebuild_id), self._keys.seq_complete(bucket))
                for bucket in range(self._keys.buckets.count)]

    async def complete(self) -> bool:
        with unavailable("seq:complete"):
            if self._keys is None:
                return bool(await self._client.exists(SEQ_COMPLETE))
            markers = [self._keys.seq_complete(bucket) for bucket in range(self._keys.buckets.count)]
            return all(value is not None for value in await get_many(self._client, markers))

    async def rebuild(self) -> int | None:
        """Restore the large groups (when given them), give every conversation of the
        database a counter (those missing one), then set the marker. Returns how many
        conversations the database has, or None when Redis lost its data meanwhile (no
        marker set: call again). Raises ServiceUnavailable when Redis or the database
        cannot answer."""
        rebuild_id = uuid.uuid4().hex
        markers = self._markers(rebuild_id)
        own_keys = [own for own, _ in markers]
        with unavailable("seq counters"):
            async with self._client.pipeline(transaction=False) as pipe:
                for own in own_keys:
                    pipe.set(own, "1", ex=REBUILDING_TTL)
                await pipe.execute()
        try:
            await self._restore_large_groups(rebuild_id)
            count, after = 0, None
            while True:
                page = await self._highest_seqs(after, self._page)
                if page:
                    with unavailable("seq counters"):
                        async with self._client.pipeline(transaction=False) as pipe:
                            for conversation, seq in page:
                                pipe.set(self._counter(conversation), seq, nx=True)
                            await pipe.execute()
                    count += len(page)
                    after = page[-1][0]
                if len(page) < self._page:
                    break
            finished = await self._finish_all(markers)
        except BaseException:
            try:
                for own in own_keys:  # one by one: a cluster's are in as many slots
                    await self._client.delete(own)
            except Exception:  # noqa: BLE001 - they expire anyway
                pass
            raise
        return count if finished else None

    async def _finish_all(self, markers: list[tuple[str, str]]) -> bool:
        """Each marker set if its own key is still there; True when every one was."""
        finished = True
        with unavailable("seq counters"):
            for start in range(0, len(markers), FINISH_AT_ONCE):
                replies = await asyncio.gather(*(self._finish(keys=[own, marker])
                                                 for own, marker in markers[start:start + FINISH_AT_ONCE]))
                finished = finished and all(replies)
        return finished

    async def _restore_large_groups(self, rebuild_id: str) -> None:
        """Every large group's state from SQL, page by page (before the counters: each
        group's small counter is then 'L', which their SET NX leaves)."""
        if self._large_groups is None or self._streams is None:
            return
        restored, after = 0, None
        while True:
            page = await self._large_groups(after, self._page)
            for switch, seq in page:
                await self._streams.restore(replace(switch, event_id="rebuild-" + rebuild_id), seq)
            restored += len(page)
            if len(page) < self._page:
                break
            after = page[-1][0].stream
        if restored:
            log.info("large groups restored from the database: %d", restored)

    async def check(self) -> bool:
        """Rebuild the counters if the marker is missing; True when it exists after. Never
        raises for an outage (a warning: the next check tries again)."""
        try:
            if await self.complete():
                return True
            log.info("seq:complete is missing: giving every conversation its seq counter")
            count = await self.rebuild()
            if count is None:
                log.warning("Redis lost its data during the seq counters' rebuild; starting again in %.1f s",
                            self._interval)
                return False
            log.info("seq counters complete: %d conversations in the database, each has its counter", count)
            return True
        except ServiceUnavailable as e:
            log.warning("seq counters: %s; checking again in %.1f s", e, self._interval)
        except Exception:
            log.exception("seq counters: checking again in %.1f s", self._interval)
        return False

    async def keep(self, stop: asyncio.Event) -> None:
        """Until stop is set: check the marker every `interval` seconds, so a Redis that
        lost its data is repaired without a restart."""
        while not stop.is_set():
            await self.check()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
            except TimeoutError:
                pass
