"""Fixtures of the production-mode tests (MySQL + Redis, several
gateways, `courier worker`).

- mysql_url: the run's MariaDB database (shared server), migrated, emptied for the test.
- secret: a random JWT secret shared by every process of the test.
- commands(name, command, settings): a `courier serve`/`courier worker` process
  factory; every process still running is killed (its whole group) after the test.
- own_redis: a redis-server of the test's own on a spare port, appendonly yes and
  appendfsync always (every acknowledged write is on disk before the reply), so a
  test may kill it (-9) and start it again without losing an accepted message.
- gateways(settings): an in-process CourierServer factory, stopped after the test.
- api: a factory of test clients (tests.e2e.client.Api) closed after the test.

Fault tests use a redis-server (private_redis) or a mariadbd (private_mariadb) of
their own, since they stop, kill or disconnect them."""
from __future__ import annotations

import shutil

import pytest

from tests.e2e.client import Api
from tests.production.support import CourierCommand, Gateway, settings_env
from tests.services.deployment import mysql_url, secret  # noqa: F401 - fixtures, one copy for every suite
from tests.services.redis import PrivateRedis


@pytest.fixture
def own_redis(tmp_path):
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


@pytest.fixture
def commands(tmp_path):
    started: list[CourierCommand] = []

    def make(command: str, settings, name: str | None = None, **env) -> CourierCommand:
        process = CourierCommand(command, tmp_path / "run", settings_env(settings, **env), name=name)
        started.append(process)
        return process

    yield make
    for process in started:
        process.cleanup()


@pytest.fixture
def gateways(io_loop):
    started: list[Gateway] = []

    def make(settings) -> Gateway:
        gateway = Gateway(settings)
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        io_loop.run_sync(gateway.stop, timeout=15)


@pytest.fixture
def api(io_loop):
    # io_loop: the clients are closed while the loop still exists.
    clients: list[Api] = []

    def make(running) -> Api:
        client = Api(running)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
