"""Who is online on a Redis Cluster, spread over the users' buckets (PresenceStore;
docs/design/redis-cluster.md, section 1.1).

RedisPresenceStore's scripts read and write users' hashes and gateways' sets they find as
they go, so all of one instance's keys must share a slot: one instance is a single-slot
service. Here there is one instance per bucket, with its keys under the bucket's tag
(`{t7}:presence:user:<id>`, `{t7}:presence:gateways`...: BucketLayout), so its scripts
are unchanged and each stays within one slot; a user's state is in its bucket's
instance, and only there.

Each bucket's store is made the first time it is needed, all under this gateway's one
gateway_id; each keeps its own incarnation name, lease and writer in its bucket. So:
- arrived, left and statuses split their users by bucket and ask each bucket's store;
  each store hears of its users in the order the calls were made (below), and writes
  them in that order (its writer), so a user's close never overtakes its open;
- this gateway holds a lease in each bucket it has written in, and keep_alive renews
  all of them every lease/4 (a bucket's store says again who is here after a failed
  write, as one store does);
- expire() runs the expire script of every bucket, written in or not: the users of a
  gateway that died are in buckets this one may never have served.

The cost, against one store: with B buckets (256 by default) a gateway that served a few
thousand users holds B leases, so its renewals are B short scripts every lease/4 (with
the 12 s lease, about 85 a second per gateway, spread over the masters), and each
expire() is B scripts (every 2 s: about 128 a second per gateway), mostly finding
nothing. Arrivals and departures cost what they did, one script per bucket in the batch.
At most CONCURRENCY of the buckets' calls are in flight at once (the cluster client
refuses commands past its pool's size on a node rather than waiting)."""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from adapters.redis.buckets import Buckets
from adapters.redis.layout import BucketLayout
from adapters.redis.presence_store import LEASE_SECONDS, RedisPresenceStore
from application.ports import PresenceStore
from domain.errors import ServiceUnavailable
from domain.presence import PresenceStatus

log = logging.getLogger("courier.redis.presence")

CONCURRENCY = 16  # calls to Redis in flight at once, over all the buckets' stores

T = TypeVar("T")


class BucketedPresenceStore(PresenceStore):
    def __init__(self, client: aioredis.Redis | RedisCluster, grace: float, buckets: Buckets,
                 gateway_id: str | None = None, lease: float = LEASE_SECONDS):
        self._client = client
        self._grace = grace
        self._buckets = buckets
        self.gateway_id = gateway_id or uuid.uuid4().hex
        self._lease = lease
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._stores: dict[int, RedisPresenceStore] = {}  # made so far, by bucket
        self._written: set[int] = set()  # the buckets this gateway wrote in: its leases there
        self._unanswered: list[PresenceStatus] = []  # changes taken but not handed out, for expire()
        self._closed = False

    def store(self, bucket: int) -> RedisPresenceStore:
        """The store of a bucket, made the first time it is needed."""
        store = self._stores.get(bucket)
        if store is None:
            store = self._stores[bucket] = RedisPresenceStore(
                self._client, self._grace, gateway_id=self.gateway_id, lease=self._lease,
                layout=BucketLayout(self._buckets, bucket), limit=self._limit,
            )
        return store

    def store_of(self, user_id: str) -> RedisPresenceStore:
        return self.store(self._buckets.of(user_id))

    # --- the port -------------------------------------------------------------

    async def arrived(self, user_ids: Sequence[str]) -> list[PresenceStatus]:
        if not user_ids or self._closed:
            return []
        changed: list[PresenceStatus] = []
        error = None
        for result in await self._write(user_ids, RedisPresenceStore.arrived):
            if isinstance(result, BaseException):
                error = error or result
            else:
                changed += result
        if error is not None:
            # The caller tells us all of them again, which changes nothing more in the
            # buckets that took them: their changes are answered by the next expire().
            self._unanswered += changed
            raise error
        return changed

    async def left(self, user_ids: Sequence[str]) -> None:
        if not user_ids or self._closed:
            return
        for result in await self._write(user_ids, RedisPresenceStore.left):
            if isinstance(result, BaseException):
                raise result  # told again: a second leave changes nothing where the first was taken

    async def statuses(self, user_ids: Sequence[str]) -> list[PresenceStatus]:
        if not user_ids:
            return []
        groups = self._group(user_ids)
        found: dict[str, PresenceStatus] = {}
        for result in await self._gather(self.store(bucket).statuses(users) for bucket, users in groups.items()):
            if isinstance(result, BaseException):
                raise result
            found.update((status.user_id, status) for status in result)
        return [found[user_id] for user_id in user_ids]  # in the order asked

    async def touch(self, user_id: str) -> PresenceStatus:
        return await self.store_of(user_id).touch(user_id)

    async def expire(self) -> list[PresenceStatus]:
        """Every bucket's expiries: those of the buckets that answered, when some did
        not (their changes wait in Redis for the next call, this gateway's or another's)."""
        results = await self._gather(self.store(bucket).expire() for bucket in range(self._buckets.count))
        changed, self._unanswered = self._unanswered, []
        failed: list[BaseException] = []
        for result in results:
            if isinstance(result, BaseException):
                failed.append(result)
            else:
                changed += result
        if failed:
            bug = next((error for error in failed if not isinstance(error, ServiceUnavailable)), None)
            if bug is not None or len(failed) == len(results):
                self._unanswered[:0] = changed  # taken from Redis: answered next time
                raise bug or failed[0]
            log.warning("could not look for presence expiries in %d of %d buckets: %s",
                        len(failed), len(results), failed[0])
        return changed

    async def keep_alive(self) -> None:
        """Renew this gateway's lease in every bucket it wrote in, every lease/4 (a
        bucket's store says again who is here there after a failed write)."""
        while not self._closed:
            for result in await self._gather(self.store(bucket).renew() for bucket in list(self._written)):
                if isinstance(result, Exception):  # renew() logs an outage itself: this is a bug
                    log.error("renewing a bucket's presence lease failed", exc_info=result)
            await asyncio.sleep(self._lease / 4)

    async def close(self) -> None:
        """Each bucket's store this gateway wrote in takes its users off, and its lease."""
        if self._closed:
            return
        self._closed = True  # no more arrivals or departures; those under way are written first
        for result in await self._gather(self.store(bucket).close() for bucket in list(self._written)):
            if isinstance(result, BaseException):
                raise result

    # --- spreading ----------------------------------------------------------

    def _group(self, user_ids: Sequence[str]) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for user_id in user_ids:
            groups.setdefault(self._buckets.of(user_id), []).append(user_id)
        return groups

    async def _write(self, user_ids: Sequence[str],
                     call: Callable[[RedisPresenceStore, list[str]], Awaitable[T]]) -> list[T | BaseException]:
        """`call` with each bucket's users, on the bucket's store (one this gateway now
        holds a lease in)."""
        groups = self._group(user_ids)
        self._written.update(groups)
        return await self._gather(call(self.store(bucket), users) for bucket, users in groups.items())

    @staticmethod
    async def _gather(calls: Iterable[Awaitable[T]]) -> list[T | BaseException]:
        """Every call, each as a task, made in the order given: tasks take their first
        step in the order they were made, and that step hands a write to its store's
        writer, so calls made one after the other reach each store in that order.
        (The bound on calls in flight is the stores' own, around their Redis calls, so
        that it never reorders writes.) Answers each call's result or error."""
        tasks = [asyncio.ensure_future(call) for call in calls]
        if not tasks:
            return []
        return await asyncio.gather(*tasks, return_exceptions=True)
