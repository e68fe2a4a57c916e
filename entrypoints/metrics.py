"""Prometheus metrics of one process, in a registry of its own (tests run many apps)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self, registry: CollectorRegistry, gateway):
        self.registry = registry
        # Gauges read the gateway's own numbers at scrape time: no work on the push path.
        open_sockets = Gauge("courier_open_sockets", "Open WebSocket connections", registry=registry)
        open_sockets.set_function(lambda: gateway.connection_count)
        pushed = Gauge("courier_messages_pushed", "Message frames handed to sockets so far", registry=registry)
        pushed.set_function(lambda: gateway.pushed)
        self.accepted = Counter("courier_messages_accepted", "Messages accepted (201)", registry=registry)
        self.errors = Counter("courier_errors", "Error answers by code", ["code"], registry=registry)
