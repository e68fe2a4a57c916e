"""Open sockets per user, counted across every gateway in Redis (ConnectionCounter).

Each user has a hash of gateway id -> sockets open there. A gateway holds a lease in
a shared sorted set, renewed while it runs (keep_alive) and dropped when it stops
(close); the counts of a gateway whose lease ran out - killed, so it never released
them - stop counting and are cleaned up by the next acquire for that user. A user
whose gateway was killed with sockets open may so be short of sockets for up to one
lease. A release that Redis could not take is kept and tried again with the next
renewal, so an outage never leaves a user's count too high for good.

The keys: ws:open:<user> and ws:gateways on one Redis. The acquire script reads the
leases beside a user's counts, and any user's counts beside the one lease set, so on a
Redis Cluster one counter keeps all of them under one hash tag (KeyLayout.service):
`{ws}:...` (ClusterLayout: a single-slot service), or a user bucket's `{t7}:ws:...`
(BucketLayout). The container gives a cluster one counter per bucket
(adapters/redis/bucketed_sockets.py), each counting the users of its bucket only."""
from __future__ import annotations

import asyncio
import logging
import uuid

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from adapters.redis.layout import SINGLE, KeyLayout
from adapters.redis.support import lua, unavailable
from application.ports import ConnectionCounter
from domain.errors import ServiceUnavailable

log = logging.getLogger("courier.redis.sockets")

LEASE_SECONDS = 30.0
COUNTS_TTL = 2 * 24 * 3600  # seconds: far beyond a token's life, and so a socket's


class RedisConnectionCounter(ConnectionCounter):
    """At most `limit` sockets per key (a user id) over all gateways; 0 turns it off."""

    def __init__(self, client: aioredis.Redis | RedisCluster, limit: int, gateway_id: str | None = None,
                 lease: float = LEASE_SECONDS, layout: KeyLayout = SINGLE):
        self._client = client
        self._prefix = layout.service("ws")
        self.gateways_key = self._prefix + "gateways"
        self._limit = limit
        self.gateway_id = gateway_id or uuid.uuid4().hex
        self._lease = lease
        self._acquire = client.register_script(lua("sockets_acquire.lua"))
        self._release = client.register_script(lua("sockets_release.lua"))
        self._renew_lease = client.register_script(lua("sockets_renew.lua"))
        self._unreleased: list[str] = []

    def counts_key(self, user_id: str) -> str:
        return self._prefix + "open:" + user_id

    async def acquire(self, key: str) -> bool:
        if self._limit <= 0:
            return True
        with unavailable("socket count"):
            counted = await self._acquire(
                keys=[self.counts_key(key), self.gateways_key],
                args=[self.gateway_id, self._limit, int(self._lease * 1000), COUNTS_TTL],
            )
        return int(counted) == 1

    async def release(self, key: str) -> None:
        if self._limit <= 0:
            return
        try:
            await self._release_one(key)
        except ServiceUnavailable as error:
            log.warning("could not release a socket of user %s (%s): will retry", key, error)
            self._unreleased.append(key)

    async def _release_one(self, key: str) -> None:
        with unavailable("socket count"):
            await self._release(keys=[self.counts_key(key)], args=[self.gateway_id])

    async def keep_alive(self) -> None:
        """Renew this gateway's lease (and retry failed releases) until cancelled."""
        if self._limit <= 0:
            return
        while True:
            await self.renew()
            await asyncio.sleep(self._lease / 3)

    async def renew(self) -> None:
        """One renewal of keep_alive's, and the releases kept since (a failure is logged:
        the next one tries again). BucketedConnectionCounter renews its buckets' counters
        with it, in one loop."""
        try:
            await self._renew()
        except ServiceUnavailable as error:
            log.warning("could not renew this gateway's socket lease: %s", error)

    async def _renew(self) -> None:
        with unavailable("socket lease"):
            await self._renew_lease(keys=[self.gateways_key],
                                    args=[self.gateway_id, int(self._lease * 1000), COUNTS_TTL])
        while self._unreleased:
            await self._release_one(self._unreleased[0])
            self._unreleased.pop(0)

    async def close(self) -> None:
        """This gateway stops: its counts stop counting at once."""
        if self._limit <= 0:
            return
        try:
            with unavailable("socket lease"):
                await self._client.zrem(self.gateways_key, self.gateway_id)
        except ServiceUnavailable as error:
            log.warning("could not drop this gateway's socket lease (it runs out by itself): %s", error)
