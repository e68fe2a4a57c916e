"""Fixtures of the client libraries' tests: a live Courier in either mode.

- deploy(**env): a started Courier, embedded (`courier serve` in a directory of its own,
  SQLite) or production (`courier serve` + `courier worker` on the run's Redis database
  and a MariaDB database of the run: tests/services, tests/production), as the test's
  `mode` parameter says; `env` are more COURIER_* settings. restart_gateway() stops the
  gateway (SIGTERM) and starts it again on the same port and data.
- proxy(deployment): a TCP proxy in front of its gateway (tests/clients/proxy.py).
- clients: a factory of courier_client.Client, closed after the test; users(client, n)
  registers and logs in n users."""
from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid

import pytest
from courier_client import Client

from tests.clients.proxy import Proxy
from tests.production.support import production_settings, settings_env
from tests.services.courier_command import FAST_ENV, CourierCommand
from tests.services.mysql import empty_tables
from tests.services.redis import PrivateRedis

MODES = [
    pytest.param("embedded", id="embedded"),
    pytest.param("production", id="production", marks=[pytest.mark.redis, pytest.mark.mysql]),
]
PASSWORD = "correct horse battery"


class Deployment:
    def __init__(self, mode: str, gateway: CourierCommand, worker: CourierCommand | None):
        self.mode = mode
        self.gateway = gateway
        self.worker = worker

    @property
    def base_url(self) -> str:
        return self.gateway.base_url

    @property
    def port(self) -> int:
        return self.gateway.port

    async def start(self) -> Deployment:
        if self.worker is not None:
            await self.worker.start().ready()
        await self.gateway.start().ready()
        return self

    async def stop_gateway(self) -> None:
        await self.gateway.terminate()

    async def start_gateway(self) -> None:
        await self.gateway.start().ready()

    async def restart_gateway(self) -> None:
        await self.stop_gateway()
        await self.start_gateway()

    def cleanup(self) -> None:
        self.gateway.cleanup()
        if self.worker is not None:
            self.worker.cleanup()


@pytest.fixture(params=MODES)
def mode(request) -> str:
    return request.param


@pytest.fixture
def deploy(request, mode, tmp_path):
    made: list[Deployment] = []

    async def make(**env) -> Deployment:
        extra = {k: str(v) for k, v in env.items()}
        if mode == "embedded":
            base = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
            gateway = CourierCommand("serve", tmp_path / "run",
                                     {**base, **FAST_ENV, "COURIER_SEND_RATE": "0", **extra})
            deployment = Deployment(mode, gateway, None)
        else:
            redis_url = request.getfixturevalue("redis_url")
            mysql_url = request.getfixturevalue("mysql_url")
            secret = request.getfixturevalue("secret")
            redis_url = extra.pop("COURIER_REDIS_URL", redis_url)
            settings = production_settings(redis_url, mysql_url, secret)
            gateway = CourierCommand("serve", tmp_path / "run", settings_env(settings, **extra), name="gateway")
            worker = CourierCommand("worker", tmp_path / "run", settings_env(settings, **extra), name="worker")
            deployment = Deployment(mode, gateway, worker)
        made.append(deployment)
        return await deployment.start()

    yield make
    for deployment in made:
        deployment.cleanup()


@pytest.fixture
def mysql_url(mysql_migrated_url) -> str:
    empty_tables(mysql_migrated_url)
    return mysql_migrated_url


@pytest.fixture
def secret() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


@pytest.fixture
def proxies(io_loop):
    made: list[Proxy] = []

    async def make(deployment: Deployment) -> Proxy:
        proxy = await Proxy(deployment.port).start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        io_loop.run_sync(proxy.close)


@pytest.fixture
def clients(io_loop):
    made: list[Client] = []

    def make(base_url: str, **options) -> Client:
        client = Client(base_url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


async def users(make_client, base_url: str, n: int, **options) -> list[Client]:
    """n users registered and logged in, each with a Client of its own."""
    logged_in = []
    for _ in range(n):
        client = make_client(base_url, **options)
        name = "u" + uuid.uuid4().hex[:12]
        await client.register(name, PASSWORD)
        await client.login(name, PASSWORD)
        logged_in.append(client)
    return logged_in


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of the test's own (appendfsync always), that it may kill and start."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    directory = tmp_path / "redis"
    directory.mkdir()
    server = PrivateRedis(str(directory), "--appendfsync", "always")
    server.start()
    try:
        yield server
    finally:
        server.kill()


class Reader:
    """Iterates an EventStream in the background, keeping what it yields."""

    def __init__(self, stream):
        self.stream = stream
        self.events: list[dict] = []
        self.error: BaseException | None = None
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for event in self.stream:
                self.events.append(event)
        except Exception as e:  # noqa: BLE001 - kept for the test to see
            self.error = e

    def of_type(self, *types: str) -> list[dict]:
        return [e for e in self.events if e.get("type") in types]

    @property
    def message_ids(self) -> list[str]:
        return [e["id"] for e in self.of_type("private", "group")]

    async def until(self, check, timeout: float = 20.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while not check(self):
            if self.error is not None:
                raise AssertionError(f"the stream failed: {self.error!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not met within {timeout} s; got {len(self.events)} events: "
                                     f"{[(e.get('type'), e.get('content')) for e in self.events[-10:]]}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.stream.aclose()
        try:
            await asyncio.wait_for(self._task, 5)
        except TimeoutError:
            self._task.cancel()


@pytest.fixture
def readers(io_loop):
    made: list[Reader] = []

    def make(stream) -> Reader:
        reader = Reader(stream)
        made.append(reader)
        return reader

    yield make
    for reader in made:
        io_loop.run_sync(reader.close)
