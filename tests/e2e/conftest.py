"""The running app, in-process on the test's IOLoop, over real HTTP and WebSocket.

`courier` starts a CourierServer exactly as `courier serve` does, on a free
port, and is parametrised over the two run modes (README, "Production"):

- embedded: a data directory of the test's own (SQLite, in-process bus);
- production: the claimed Redis database (emptied before each test), a MariaDB
  database of the run migrated to head (emptied before each test), a random
  JWT secret, and a persister task on the same loop standing in for
  `courier worker` (its own container, as a worker process has). History is
  read from MySQL, which the persister fills a moment after the 201: the test
  client's history calls first await `Running.settle()`, so tests stay as they are.

A test that is embedded by nature is marked `@pytest.mark.embedded_only` (say why);
`api` and `ws` talk to either mode the same way."""
from __future__ import annotations

import asyncio
import os
import secrets
import time

import pytest
from dependency_injector import providers

from adapters.redis.group_persist_queue import RedisBucketPersistQueue, RedisGroupPersistQueue
from adapters.redis.group_streams import PERSIST
from adapters.redis.large_group_keys import LargeGroupKeys
from entrypoints.settings import CLUSTER, EMBEDDED, PRODUCTION, Settings
from tests.e2e.client import Api
from tests.services.urls import LoopbackUrls

# Cheap hashing, and sign-ups unlimited: every test client signs up from 127.0.0.1
# (the tests of the limits set them themselves).
TEST_DEFAULTS = dict(argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1, registrations=0,
                   hash_queue=1000)
MODES = (EMBEDDED, PRODUCTION)


class OnCluster(str):
    """The production mode on the session's Redis Cluster (tests/services/redis_cluster.py):
    equal to PRODUCTION, so the tests' own `mode == PRODUCTION` hold for it."""


CLUSTER_MODE = OnCluster(PRODUCTION)
# COURIER_TEST_CLUSTER=1 runs every production test on the cluster as well (issue 19); `make test`
# sets it (the Makefile's default), a bare pytest does not.
ON_CLUSTER = os.environ.get("COURIER_TEST_CLUSTER", "") == "1"
SETTLE_TIMEOUT = 10.0


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "embedded_only: the test is about the embedded mode only (the `courier` fixture runs it once)"
    )


def pytest_generate_tests(metafunc) -> None:
    """`mode` (and so `courier`, `api`) runs every test in both modes."""
    if "mode" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("embedded_only"):
        modes = [EMBEDDED]
    else:
        modes = [EMBEDDED, pytest.param(PRODUCTION, marks=[pytest.mark.redis, pytest.mark.mysql])]
        if ON_CLUSTER:
            modes.append(pytest.param(CLUSTER_MODE, marks=[pytest.mark.redis, pytest.mark.mysql], id="cluster"))
    metafunc.parametrize("mode", modes, ids=str)


def embedded_settings(tmp_path, **overrides) -> Settings:
    values = dict(
        host="127.0.0.1",
        port=0,
        data_dir=str(tmp_path / "data"),
        log_level="info",
        send_rate=0,
        **TEST_DEFAULTS,
    )
    values.update(overrides)
    large = int(overrides.get("large_group") or 0)
    if large > 0 and "receipts_max_group" not in overrides:
        # Receipts below the threshold, as Settings.check requires (a large group gets none).
        values["receipts_max_group"] = min(100, large - 1)
    return Settings(**values)


def production_settings(tmp_path, redis_url: str, database_url: str, **overrides) -> Settings:
    return embedded_settings(
        tmp_path,
        **{"redis_url": redis_url, "database_url": database_url, "jwt_secret": secrets.token_hex(32), **overrides},
    )


class Running(LoopbackUrls):
    """A started server; restart() stops it and starts a new one on the same data
    (embedded: the data directory; production: the same Redis and MySQL databases).
    In production mode a persister runs beside it, as `courier worker` would."""

    def __init__(self, io_loop, settings: Settings):
        self.io_loop = io_loop
        self.settings = settings
        self.server = None
        self.worker: Worker | None = None

    @property
    def mode(self) -> str:
        return self.settings.mode

    def start(self) -> None:
        from entrypoints.server import CourierServer

        self.server = CourierServer(self.settings)
        self.io_loop.run_sync(self.server.start)
        self.settings.port = self.server.port  # a restart comes back on the same port
        if self.mode == PRODUCTION:
            self.worker = Worker(self.settings)
            self.io_loop.run_sync(self.worker.start)

    def stop(self) -> None:
        if self.server is not None:
            self.io_loop.run_sync(self.server.stop)
            self.server = None
        if self.worker is not None:
            self.io_loop.run_sync(self.worker.stop)
            self.worker = None

    async def settle(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until every accepted message is in the database (production: the
        persist backlog is 0; embedded: at once, the send itself wrote it)."""
        if self.worker is not None:
            await self.worker.settle(timeout)

    async def restart(self) -> None:
        """From inside a running test: stop the server, then start a new one on the
        same data directory and port (run_sync cannot be used while the loop runs)."""
        from entrypoints.server import CourierServer

        if self.server is not None:
            await self.server.stop()
            self.server = None
        self.server = CourierServer(self.settings)
        await self.server.start()

    @property
    def port(self) -> int:
        return self.settings.port


@pytest.fixture
def settings_overrides() -> dict:
    """Override in a test module (or with @pytest.mark.parametrize) to change settings."""
    return {}


class Worker:
    """The persister of `courier worker`, as a task on the test's loop, with a
    container of its own (it outlives a Running.restart, as a worker process does)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.container = None
        self._stop: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        from entrypoints.container import Container

        self.container = Container(settings=self.settings)
        # The large groups' streams are swept often: a test reads history right after sending.
        self.container.group_persist_queue.override(providers.Singleton(
            RedisGroupPersistQueue, self.container.redis, sweep_every=0.05,
            claim_idle_ms=self.settings.worker_claim_idle_ms, keys=self.container.cluster_layout,
        ))
        on_cluster = self.settings.redis_topology == CLUSTER
        if on_cluster:  # so are the buckets' persist streams
            self.container.persist_queue.override(providers.Singleton(
                RedisBucketPersistQueue, self.container.redis, self.container.cluster_keys, sweep_every=0.05,
                claim_idle_ms=self.settings.worker_claim_idle_ms,
            ))
        # As `courier worker`: seq:complete says Redis holds its data (a large group's send
        # that finds no stream state then knows its switch is only on its way).
        await self.container.seq_counters().check()
        self._stop = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self.container.persister(consumer="e2e", block_ms=50, max_backoff=0.5)
                                .run(self._stop)),
            asyncio.create_task(self.container.group_persister(consumer="e2e", block_ms=50, max_backoff=0.5)
                                .run(self._stop)),
        ]
        if on_cluster:
            self._tasks.append(asyncio.create_task(self.container.cluster_send_relay().run(self._stop)))

    async def settle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (backlog := await self._backlog()) > 0:
            for task in self._tasks:
                if task.done():
                    task.result()  # raises what stopped the persister
                    raise AssertionError(f"a persister stopped with a backlog of {backlog}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the persist backlog is still {backlog} after {timeout} s")
            await asyncio.sleep(0.01)

    async def _backlog(self) -> int:
        """stream:persist's, and every large group's (lg:streams lists them all)."""
        client = self.container.redis()
        if self.settings.redis_topology == CLUSTER:  # every bucket's, swept or not yet
            keys = self.container.cluster_keys()
            backlog = sum([await client.xlen(keys.persist(bucket)) for bucket in range(keys.buckets.count)])
            names = LargeGroupKeys(keys)
        else:
            backlog = await self.container.persist_queue().backlog()
            names = LargeGroupKeys()
        for streams in names.every_streams():
            for group_id in (await client.hgetall(streams)).values():
                backlog += await client.xlen(PERSIST.format(group_id.decode()))
        return backlog

    async def stop(self) -> None:
        from entrypoints.container import shutdown

        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.gather(*self._tasks), 5)
        finally:
            await shutdown(self.container)


@pytest.fixture
def redis_cluster_url(redis_cluster) -> str:
    """The session's Redis Cluster as Courier's URL, emptied for the test (FLUSHALL on its
    masters, as redis_url's database is): a fixture, so that one that writes Redis data
    before Courier starts (test_seq_migration's legacy inbox) asks it first."""
    for master in redis_cluster.masters():
        redis_cluster.command(master.port, "FLUSHALL")
    return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in redis_cluster.startup_nodes)


@pytest.fixture
def courier(io_loop, tmp_path, settings_overrides, mode, request):
    if mode == PRODUCTION:
        from tests.services.mysql import empty_tables

        overrides = dict(settings_overrides)
        if "database_url" in overrides:  # a test's own (e.g. "": the default SQLite file)
            database_url = overrides.pop("database_url")
        else:
            database_url = request.getfixturevalue("mysql_migrated_url")
            empty_tables(database_url)
        if isinstance(mode, OnCluster):
            redis_url = request.getfixturevalue("redis_cluster_url")
        else:
            redis_url = request.getfixturevalue("redis_url")  # the claimed database, just emptied
        settings = production_settings(tmp_path, redis_url, database_url, **overrides)
    else:
        settings = embedded_settings(tmp_path, **settings_overrides)
    running = Running(io_loop, settings)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def api(courier) -> Api:
    client = Api(courier)
    yield client
    client.close()


@pytest.fixture
def process(tmp_path):
    """`courier serve` as a separate process in tmp_path/run (embedded mode, its data in
    ./data there): `await process.start().ready()`."""
    from tests.services.courier_command import FAST_ENV, CourierCommand

    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    running = CourierCommand("serve", tmp_path / "run", {**env, **FAST_ENV, "COURIER_SEND_RATE": "0"})
    yield running
    running.cleanup()


@pytest.fixture
def process_api(process):
    client = Api(process)
    yield client
    client.close()
