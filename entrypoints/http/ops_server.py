"""COURIER_OPS_PORT: /readyz and /metrics (and /healthz) on a port of their own, bound
to COURIER_OPS_HOST (127.0.0.1 unless told otherwise), so an operator can keep them
off the public port: what the process runs on, its load and its errors are nobody
else's business, and a scrape or a probe is not a client. The public port then
answers them 404, as any unknown path; /healthz stays there for load balancers."""
from __future__ import annotations

import asyncio
import contextlib
import logging

import tornado.netutil
import tornado.web

from entrypoints.http import tornado_overrides
from entrypoints.http.base import NotFoundHandler
from entrypoints.http.refusals import Refusals
from entrypoints.logs import log_request

log = logging.getLogger("courier.server")

MAX_BODY_BYTES = 64 * 1024  # nothing here takes a body
CLOSE_GRACE_SECONDS = 2.0


class OpsServer:
    def __init__(self, routes: list, metrics, body_timeout: float, idle_timeout: float):
        self._application = tornado.web.Application(
            routes,
            default_handler_class=NotFoundHandler,
            log_function=log_request,
            courier_metrics=metrics,
            # No CORS: a web page the operator happens to open may not read these.
            courier_origins=frozenset(),
        )
        self._refusals = Refusals(metrics, frozenset())
        self._body_timeout = body_timeout
        self._idle_timeout = idle_timeout
        self._http: tornado_overrides.HTTPServer | None = None
        self.port: int | None = None

    def listen(self, host: str, port: int) -> None:
        sockets = tornado.netutil.bind_sockets(port, host)
        self._http = tornado_overrides.HTTPServer(
            self._application, refusals=self._refusals, max_body_size=MAX_BODY_BYTES,
            body_timeout=self._body_timeout, idle_connection_timeout=self._idle_timeout,
        )
        self._http.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        log.info("operations endpoints (/healthz, /readyz, /metrics) on http://%s:%s", host, self.port)

    async def stop(self) -> None:
        if self._http is None:
            return
        self._http.stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._http.close_all_connections(), CLOSE_GRACE_SECONDS)
        self._http = None
