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
Gateways seeding a counter (NOSEED) while the worker scans are harmless: both use SET NX,
and each seeds from a highest seq that was in the database, so whichever comes first
stands and the other changes nothing. Two workers rebuilding at once are as harmless.

Left open (the persister numbers anew, with a warning, a message whose seq is taken, so
history stays consistent): a batch a persister took from stream:persist before Redis lost
its data, committed to the database after the rebuild read its conversation's page;
messages queued by gateways older than seqs, numbered by the persister; and Redis put
back to an older snapshot (its counters behind the database, the marker in it). The
marker assumes counters are not evicted (no allkeys-* maxmemory policy, which Courier's
inboxes do not survive either)."""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from adapters.redis.inbox import SEQ_COMPLETE, SEQ_COUNTER
from adapters.redis.support import unavailable
from domain.errors import ServiceUnavailable

log = logging.getLogger("courier.seq")

REBUILDING = "seq:rebuilding:{}"
REBUILDING_TTL = 24 * 3600  # a rebuild that died leaves its key this long at most
PAGE = 1000

# KEYS[1] this rebuild's own key, KEYS[2] the marker: the marker only if Redis kept the key.
_FINISH = """
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('SET', KEYS[2], '1')
  return 1
end
return 0
"""

HighestSeqs = Callable[[str | None, int], Awaitable[list[tuple[str, int]]]]


class SeqCounters:
    """`highest_seqs` is MessageStore.highest_seqs (pages of (conversation, highest seq))."""

    def __init__(self, client: aioredis.Redis, highest_seqs: HighestSeqs, *, page: int = PAGE,
                 interval: float = 2.0):
        self._client = client
        self._highest_seqs = highest_seqs
        self._page = page
        self._interval = interval
        self._finish = client.register_script(_FINISH)

    async def complete(self) -> bool:
        with unavailable("seq:complete"):
            return bool(await self._client.exists(SEQ_COMPLETE))

    async def rebuild(self) -> int | None:
        """Give every conversation of the database a counter (those missing one), then set
        the marker. Returns how many conversations the database has, or None when Redis
        lost its data meanwhile (no marker set: call again). Raises ServiceUnavailable when
        Redis or the database cannot answer."""
        own = REBUILDING.format(uuid.uuid4().hex)
        with unavailable("seq counters"):
            await self._client.set(own, "1", ex=REBUILDING_TTL)
        try:
            count, after = 0, None
            while True:
                page = await self._highest_seqs(after, self._page)
                if page:
                    with unavailable("seq counters"):
                        async with self._client.pipeline(transaction=False) as pipe:
                            for conversation, seq in page:
                                pipe.set(SEQ_COUNTER.format(conversation), seq, nx=True)
                            await pipe.execute()
                    count += len(page)
                    after = page[-1][0]
                if len(page) < self._page:
                    break
            with unavailable("seq counters"):
                finished = await self._finish(keys=[own, SEQ_COMPLETE])
        except BaseException:
            try:
                await self._client.delete(own)
            except Exception:  # noqa: BLE001 - it expires anyway
                pass
            raise
        return count if finished else None

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
