"""A live Courier in either mode, for the client libraries' tests (tests/clients, async on
Tornado's loop; tests/browser, sync beside Playwright's): embedded (`courier serve` in a
directory of its own, SQLite) or production (`courier serve` + `courier worker` on the
run's Redis database and a MariaDB database of the run), as the test's `mode` says.

A conftest that wants them imports the fixtures: `mode` (both modes, one test each),
`deployments` (a factory of Deployments of that mode, killed after the test), and the
production mode's `mysql_url` and `secret`."""
from __future__ import annotations

import os
import uuid

import pytest

from tests.production.support import production_settings, settings_env
from tests.services.courier_command import FAST_ENV, CourierCommand
from tests.services.mysql import empty_tables

MODES = [
    pytest.param("embedded", id="embedded"),
    pytest.param("production", id="production", marks=[pytest.mark.redis, pytest.mark.mysql]),
]


class Deployment:
    """A gateway (and, in production, a worker). restart_gateway() stops the gateway
    (SIGTERM) and starts it again on the same port and data; the *_sync methods are
    for tests without an event loop of their own."""

    def __init__(self, mode: str, gateway: CourierCommand, worker: CourierCommand | None):
        self.mode = mode
        self.gateway = gateway
        self.worker = worker

    @property
    def base_url(self) -> str:
        return self.gateway.base_url

    @property
    def port(self) -> int:
        assert self.gateway.port is not None
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

    def start_sync(self) -> Deployment:
        if self.worker is not None:
            self.worker.start().wait_ready()
        self.gateway.start().wait_ready()
        return self

    def restart_gateway_sync(self) -> None:
        self.gateway.terminate_sync()
        self.gateway.start().wait_ready()

    def cleanup(self) -> None:
        self.gateway.cleanup()
        if self.worker is not None:
            self.worker.cleanup()


@pytest.fixture(params=MODES)
def mode(request) -> str:
    return request.param


@pytest.fixture
def deployments(request, mode, tmp_path):
    """make(**env): a Deployment of the test's mode, not started; `env` are more COURIER_*
    settings."""
    made: list[Deployment] = []

    def make(**env) -> Deployment:
        extra = {k: str(v) for k, v in env.items()}
        if mode == "embedded":
            base = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
            gateway = CourierCommand("serve", tmp_path / "run", {**base, **FAST_ENV, "COURIER_SEND_RATE": "0", **extra})
            deployment = Deployment(mode, gateway, None)
        else:
            redis_url = extra.pop("COURIER_REDIS_URL", request.getfixturevalue("redis_url"))
            settings = production_settings(redis_url, request.getfixturevalue("mysql_url"),
                                           request.getfixturevalue("secret"))
            gateway = CourierCommand("serve", tmp_path / "run", settings_env(settings, **extra), name="gateway")
            worker = CourierCommand("worker", tmp_path / "run", settings_env(settings, **extra), name="worker")
            deployment = Deployment(mode, gateway, worker)
        made.append(deployment)
        return deployment

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
