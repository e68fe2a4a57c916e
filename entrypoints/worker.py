"""`courier worker`: the persister on its own process (production mode)."""
from __future__ import annotations

import asyncio
import logging
import os
import socket

from entrypoints.container import Container, shutdown
from entrypoints.settings import Settings

log = logging.getLogger("courier.worker")


async def run_worker(settings: Settings, stop: asyncio.Event) -> int:
    container = Container(settings=settings)
    # A consumer name unique per process: entries a dead worker left pending are
    # reclaimed by name-independent idle time, so names need not be stable.
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    persister = container.persister(
        consumer=consumer, batch_size=settings.worker_batch, linger=settings.worker_linger
    )
    log.info("worker %s persisting stream:persist into the database", consumer)
    try:
        await persister.run(stop)
    finally:
        await shutdown(container)
    return 0
