"""`courier worker`: the persisters on their own process (production mode: one for
stream:persist, one for the large groups' lg:{G}:persist streams), the keeper
of the seq counters' marker (adapters/redis/seq_counters.py), and the relay of the
events a gateway left unannounced (application/announcements.py)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from entrypoints.bucket_guard import record_bucket_count
from entrypoints.container import Container, shutdown
from entrypoints.settings import CLUSTER, Settings

log = logging.getLogger("courier.worker")


async def run_worker(settings: Settings, stop: asyncio.Event) -> int:
    container = Container(settings=settings)
    recorded = False
    try:
        # Before any queue is read: a worker counting buckets unlike the gateways would
        # read other keys than they write (adapters/redis/deployment.py).
        recorded = await record_bucket_count(container.bucket_count(), stop)
    finally:
        if not recorded:  # refused, or stopped while waiting: close the Redis client made for it
            await shutdown(container)
    if not recorded:
        return 0  # told to stop while it waited for Redis
    # A consumer name unique per process: entries a dead worker left pending are
    # reclaimed by name-independent idle time, so names need not be stable.
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    persister = container.persister(
        consumer=consumer, batch_size=settings.worker_batch, linger=settings.worker_linger,
        list_window=settings.list_window,
    )
    # The large groups' streams, beside stream:persist and with the same settings. With no
    # large group its queue only reads lg:streams every 10 s (RedisGroupPersistQueue).
    group_persister = container.group_persister(
        consumer=consumer, batch_size=settings.worker_batch, linger=settings.worker_linger,
        list_window=settings.list_window,
    )
    seq_counters = container.seq_counters()
    # Built before the persister is said to run, so that a worker that is ready has made
    # the counters complete when the database answered (else keep() retries every few
    # seconds); from then on checked alongside the persister.
    await seq_counters.check()
    keeper = asyncio.ensure_future(seq_counters.keep(stop))
    # Events whose gateway died before appending them (application/announcements.py).
    relay = asyncio.ensure_future(container.relay_announcements().run(stop))
    # On a Redis Cluster, sends whose gateway died between their commit and their appends.
    cluster_relay = asyncio.ensure_future(
        container.cluster_send_relay().run(stop) if settings.redis_topology == CLUSTER else stop.wait())
    log.info("worker %s persisting stream:persist and the large groups' streams into the database", consumer)
    groups = asyncio.ensure_future(group_persister.run(stop))
    try:
        await persister.run(stop)
        await groups  # both stop on `stop`, each leaving its queue
    finally:
        groups.cancel()  # an unacked batch stays pending: claimed by the next worker, saved once
        keeper.cancel()  # a rebuild cut short sets no marker: the next worker does it again
        relay.cancel()  # an announcement cut short stays stored: relayed again, appended once
        cluster_relay.cancel()  # a send's promise stays until its appends are all made
        for task in (keeper, relay, cluster_relay, groups):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await shutdown(container)
    return 0
