"""Prometheus metrics of one process, in a registry of its own (tests run many apps)."""
from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from application.ports import Notification

# Handing one notification to every local socket: microseconds for a private
# message, milliseconds for a large group.
PUSH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# One pause of the garbage collector: microseconds for the young generation, up to
# tens of milliseconds for a full collection with thousands of sockets open.
GC_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class Metrics:
    def __init__(self, registry: CollectorRegistry, gateway, backlog: Callable[[], Awaitable[int]] | None = None):
        self._on_gc: Callable[[str, dict], None] | None = None  # watch_gc()'s callback
        self.registry = registry
        self._backlog = backlog
        # Gauges read the gateway's own numbers at scrape time: no work on the push path.
        open_sockets = Gauge("courier_open_sockets", "Open WebSocket connections", registry=registry)
        open_sockets.set_function(lambda: gateway.connection_count)
        pushed = Gauge("courier_messages_pushed", "Message frames handed to sockets so far", registry=registry)
        pushed.set_function(lambda: gateway.pushed)
        self.accepted = Counter("courier_messages_accepted", "Messages accepted (201)", registry=registry)
        self.errors = Counter("courier_errors", "Error answers by code", ["code"], registry=registry)
        self.push_seconds = Histogram(
            "courier_push_seconds", "Time to push one notification to every local socket of its recipients",
            buckets=PUSH_BUCKETS, registry=registry,
        )
        self.backlog = Gauge(
            "courier_persist_backlog", "Entries of stream:persist not yet in the database (production)",
            registry=registry,
        )

    def watch_gc(self) -> None:
        """Time every collection (gc.callbacks is process-wide: unwatch_gc() at stop)."""
        pause = Histogram("courier_gc_pause_seconds", "Pauses of the garbage collector, by generation",
                          ["generation"], buckets=GC_BUCKETS, registry=self.registry)
        by_generation = [pause.labels(str(g)) for g in range(3)]
        started = [0.0]

        def on_gc(phase: str, info: dict) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                by_generation[info["generation"]].observe(time.perf_counter() - started[0])

        self._on_gc = on_gc
        gc.callbacks.append(on_gc)

    def unwatch_gc(self) -> None:
        if self._on_gc is not None and self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        self._on_gc = None

    def timed(self, on_notification: Callable[[Notification], None]) -> Callable[[Notification], None]:
        observe = self.push_seconds.observe

        def on_notification_timed(notification: Notification) -> None:
            started = time.perf_counter()
            on_notification(notification)
            observe(time.perf_counter() - started)

        return on_notification_timed

    async def refresh(self) -> None:
        """Read what can only be read asynchronously, just before a scrape."""
        if self._backlog is not None:
            try:
                self.backlog.set(await self._backlog())
            except Exception:
                self.backlog.set(float("nan"))  # unknown while Redis is away
