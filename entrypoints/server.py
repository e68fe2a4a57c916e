"""One gateway process: the HTTP/WebSocket server plus its notification
subscriber, started and stopped in order. `courier serve` and the end-to-end
tests both use it, so what the tests run is what users run."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import tornado.httpserver
import tornado.netutil
from prometheus_client import CollectorRegistry

from adapters.sql.database import is_sqlite
from domain import errors
from entrypoints.bucket_guard import record_bucket_count
from entrypoints.container import Container, shutdown
from entrypoints.http import body_limit, ops, tornado_overrides
from entrypoints.http.app import make_app
from entrypoints.http.ops_server import OpsServer
from entrypoints.metrics import Metrics
from entrypoints.session_watch import SessionWatch
from entrypoints.settings import EMBEDDED, Settings

log = logging.getLogger("courier.server")

SHUTDOWN_GRACE_SECONDS = 2.0


class CourierServer:
    def __init__(self, settings: Settings, container: Container | None = None):
        self.settings = settings
        self.container = container or Container(settings=settings)
        self.open_sockets: set = set()
        self._http: tornado.httpserver.HTTPServer | None = None
        self._subscriber: asyncio.Task | None = None
        self._background: list[asyncio.Task] = []
        self._ops: OpsServer | None = None
        self.port: int | None = None
        self.metrics: Metrics | None = None

    def readiness(self) -> dict:
        checks = {"database": self._database_ready}
        if self.settings.mode != EMBEDDED:
            checks["redis"] = self.container.redis().ping
        return checks

    async def _database_ready(self) -> None:
        """The database answers, and its schema is this version's (a forgotten
        `courier migrate` makes every call that reads it fail)."""
        from adapters.sql.migrate import current_revision, is_behind

        database = self.container.database()
        await database.ping()
        if is_behind(await database.run(current_revision)):
            raise errors.ServiceUnavailable("its schema is older than this version: run `courier migrate`")

    async def start(self, sockets: list[socket.socket] | None = None) -> None:
        """Listen on settings.host/port (port 0: any free port), or on given sockets.
        Production mode waits for Redis first (cancel to give up), and raises
        BucketCountChanged when this process counts users' buckets unlike its deployment."""
        if self.settings.mode != EMBEDDED:
            # First, before anything else runs: a process counting buckets unlike the rest
            # of its deployment would read and write other keys.
            try:
                await record_bucket_count(self.container.bucket_count())
            except BaseException:
                await shutdown(self.container)  # the Redis client made for the guard
                raise
        database_url = self.settings.resolved_database_url()
        if is_sqlite(database_url):
            # A SQLite file is this machine's own: serving migrates it, in production
            # mode too (COURIER_REDIS_URL set, COURIER_DATABASE_URL left out), as the one
            # command to try it. A server database is migrated by `courier migrate`.
            from adapters.sql.migrate import upgrade

            await asyncio.get_running_loop().run_in_executor(None, upgrade, database_url)
        gateway = self.container.gateway()
        backlog = self.container.persist_queue().backlog if self.settings.mode != EMBEDDED else None
        self.metrics = Metrics(CollectorRegistry(), gateway, backlog)
        self.metrics.watch_gc()
        subscriber = self.container.subscriber()
        self._subscriber = asyncio.create_task(
            subscriber.run(self.metrics.timed(gateway.on_notification), gateway.resync_all)
        )
        sessions = SessionWatch(self.container.authenticate(), self.container.revocations(), self.open_sockets,
                                self.settings.account_check)
        self._background = [asyncio.create_task(sessions.run())]
        # Presence and typing: this gateway's users counted in the store, expiries
        # published, the changes of watched users and every typing event received.
        watch, typing = self.container.presence_watch(), self.container.typing_indicators()
        self._background += [
            asyncio.create_task(self.container.presence_tracker().run()),
            asyncio.create_task(self.container.presence_bus().run(watch.on_change, watch.resync)),
            asyncio.create_task(self.container.typing_bus().run(typing.on_typing)),
        ]
        if self.settings.mode != EMBEDDED:
            self._background.append(asyncio.create_task(self.container.sockets_per_user().keep_alive()))
        else:  # in production `courier worker` relays the events left unannounced
            self._background.append(asyncio.create_task(self.container.relay_announcements().run(asyncio.Event())))
        ops_routes = ops.routes(self.readiness(), self.metrics)
        if self.settings.ops_port:
            # Operations on their own port; the public one keeps only /healthz.
            self._ops = OpsServer(ops_routes, self.metrics, self.settings.body_timeout, self.settings.idle_timeout)
            self._ops.listen(self.settings.ops_host, self.settings.ops_port)
            ops_routes = ops.health_routes()
        app = make_app(self.container, self.open_sockets, ops_routes, self.metrics)
        self._http = tornado_overrides.HTTPServer(
            app, refusals=app.refusals, max_body_size=body_limit.MAX_BODY_BYTES,
            body_timeout=self.settings.body_timeout, idle_connection_timeout=self.settings.idle_timeout,
        )
        if sockets is None:
            sockets = tornado.netutil.bind_sockets(
                self.settings.port, self.settings.host, backlog=4096, reuse_port=bool(self.settings.reuse_port)
            )
        self._http.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        log.info("Courier (%s mode) listening on http://%s:%s", self.settings.mode, self.settings.host, self.port)

    async def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
        for handler in list(self.open_sockets):
            handler.shutdown()  # close code 1001
        if self.open_sockets:
            await asyncio.sleep(0.05)
        if self._http is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._http.close_all_connections(), SHUTDOWN_GRACE_SECONDS)
        if self._ops is not None:
            await self._ops.stop()
        await _cancel_and_wait([t for t in [self._subscriber, *self._background] if t is not None])
        self.container.typing_indicators().close()
        await self.container.presence_tracker().close()  # before the store's connections close
        if self._http is not None:
            # The sockets closed above release their counts in tasks of their own; a release
            # still running once the container has closed the Redis client would reconnect
            # it, and those connections would never be closed (their ResourceWarnings, when
            # collected, failed unrelated tests).
            await self.container.admit_socket().settle(SHUTDOWN_GRACE_SECONDS)
        await shutdown(self.container)  # the container's resources: what it made that needs closing
        if self.metrics is not None:
            self.metrics.unwatch_gc()
        # A socket whose upgrade finished during the stop has a frame-loop task that has
        # not started yet: let it take its first step (it finds its stream closed and ends)
        # rather than be dropped unstarted when the loop closes ("never awaited").
        await asyncio.sleep(0)
        log.info("Courier stopped")


async def _cancel_and_wait(tasks: list[asyncio.Task]) -> None:
    """Cancel the background tasks and wait for them, for a bounded time: redis-py can
    swallow a cancellation that lands inside one of its timeouts (the subscriber's, while
    it subscribes), and the task then runs on; it is cancelled once more, and a stop never
    hangs on it."""
    pending = set(tasks)
    for _ in range(2):
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_SECONDS)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("%s ended with %r", task.get_coro().__qualname__, task.exception())
        if not pending:
            return
    log.warning("%d background tasks did not stop", len(pending))
