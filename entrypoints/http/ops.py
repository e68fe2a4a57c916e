"""Operations: /healthz (the process is up), /readyz (its services answer), /metrics.

They are served on the public port, or - with COURIER_OPS_PORT - /readyz and /metrics
on a port of their own (entrypoints/http/ops_server.py), and /healthz on both."""
from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from domain import errors
from entrypoints.http.base import BaseHandler

READY_TIMEOUT = 2.0


class HealthHandler(BaseHandler):
    requires_auth = False

    def get(self) -> None:
        self.reply(200, {"status": "ok"})


class ReadyHandler(BaseHandler):
    """checks: name -> async callable that raises when its service is down."""

    requires_auth = False

    async def get(self) -> None:
        results = {}
        for name, check in self.checks.items():
            try:
                await asyncio.wait_for(check(), READY_TIMEOUT)
                results[name] = "ok"
            except errors.CourierError as error:  # not ready; say why when we know
                results[name] = f"unavailable: {error.message}"
            except Exception as error:  # any failure means not ready; say which
                results[name] = f"unavailable: {type(error).__name__}"
        if any(v != "ok" for v in results.values()):
            raise errors.ServiceUnavailable("not ready: " + ", ".join(f"{k} {v}" for k, v in results.items()))
        self.reply(200, {"status": "ready", "checks": results})


class MetricsHandler(BaseHandler):
    requires_auth = False

    async def get(self) -> None:
        await self.metrics.refresh()
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.metrics.registry))


def health_routes() -> list:
    return [(r"/healthz", HealthHandler)]


def routes(checks: dict, metrics) -> list:
    """All three; checks: name -> async callable that raises when its service is down."""
    return [
        *health_routes(),
        (r"/readyz", ReadyHandler, dict(checks=checks)),
        (r"/metrics", MetricsHandler, dict(metrics=metrics)),
    ]
