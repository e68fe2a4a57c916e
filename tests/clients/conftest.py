"""Fixtures of the Python client's tests: a live Courier in either mode.

- deploy(**env): a started Courier (tests/services/deployment.py), embedded or production
  as the test's `mode` parameter says; `env` are more COURIER_* settings.
  restart_gateway() stops the gateway (SIGTERM) and starts it again on the same port and
  data.
- proxy(deployment): a TCP proxy in front of its gateway (tests/clients/proxy.py).
- clients: a factory of courier_client.Client, closed after the test; users(client, n)
  registers and logs in n users."""
from __future__ import annotations

import asyncio
import shutil
import time
import uuid

import pytest
from courier_client import Client

from tests.clients.proxy import Proxy
from tests.services.deployment import Deployment, deployments, mode, mysql_url, secret  # noqa: F401 - fixtures
from tests.services.redis import PrivateRedis

PASSWORD = "correct horse battery"


@pytest.fixture
def deploy(deployments):  # noqa: F811 - the fixture imported above
    async def make(**env) -> Deployment:
        return await deployments(**env).start()

    return make


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
