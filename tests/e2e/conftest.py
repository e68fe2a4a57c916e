"""The running app, in-process on the test's IOLoop, over real HTTP and WebSocket.

`courier` starts a CourierServer exactly as `courier serve` does, on a free
port, in a data directory of the test's own; `api` and `ws` talk to it."""
from __future__ import annotations

import pytest

from entrypoints.settings import Settings
from tests.e2e.client import Api

FAST_ARGON2 = dict(argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1)


def embedded_settings(tmp_path, **overrides) -> Settings:
    values = dict(
        host="127.0.0.1",
        port=0,
        data_dir=str(tmp_path / "data"),
        log_level="info",
        send_rate=0,
        **FAST_ARGON2,
    )
    values.update(overrides)
    return Settings(**values)


class Running:
    """A started server; restart() stops it and starts a new one on the same data."""

    def __init__(self, io_loop, settings: Settings):
        self.io_loop = io_loop
        self.settings = settings
        self.server = None

    def start(self) -> None:
        from entrypoints.server import CourierServer

        self.server = CourierServer(self.settings)
        self.io_loop.run_sync(self.server.start)
        self.settings.port = self.server.port  # a restart comes back on the same port

    def stop(self) -> None:
        if self.server is not None:
            self.io_loop.run_sync(self.server.stop)
            self.server = None

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
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.port}/ws"


@pytest.fixture
def settings_overrides() -> dict:
    """Override in a test module (or with @pytest.mark.parametrize) to change settings."""
    return {}


@pytest.fixture
def courier(io_loop, tmp_path, settings_overrides):
    running = Running(io_loop, embedded_settings(tmp_path, **settings_overrides))
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
    """`courier serve` as a separate process in tmp_path/run (call `await process.start()`)."""
    from tests.e2e.support import CourierProcess

    cwd = tmp_path / "run"
    cwd.mkdir()
    running = CourierProcess(cwd)
    yield running
    running.cleanup()


@pytest.fixture
def process_api(process):
    client = Api(process)
    yield client
    client.close()
