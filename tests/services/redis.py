"""Redis fixtures shared by the integration, end-to-end and production tests,
registered for every test by tests/conftest.py (pytest_plugins), so the
session-wide claim below is made once per run.

- redis_db: a database number (1..15) of the shared server on 127.0.0.1:6379
  that was empty and is claimed for this run; flushed at the end. Tests are
  skipped, with the reason, when the server cannot be reached.
- redis_url: that database, emptied before each test.
- redis_client: a redis.asyncio client on it, closed after the test.
- channel: a notification channel of this test alone (pub/sub channels are
  shared by every database of a server, and other runs may be publishing).
- private_redis: a redis-server of this test alone on a spare port, with an
  append-only file in a temporary directory, that a test may kill and restart.
- down_url: a URL where nothing listens; down_client: a client pointed at it,
  with redis-py's retries off so failures come at once."""
from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

SHARED_HOST, SHARED_PORT = "127.0.0.1", 6379
CLAIM_KEY = "courier-test:claimed-by"

__all__ = ["redis_db", "redis_url", "redis_client", "channel", "private_redis", "down_url", "down_client",
           "PrivateRedis", "make_client", "spare_port"]


def make_client(url: str, **kwargs) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_connect_timeout=2, **kwargs)


@pytest.fixture(scope="session")
def redis_db() -> Iterator[int]:
    probe = redis.Redis(SHARED_HOST, SHARED_PORT, socket_connect_timeout=1)
    try:
        probe.ping()
    except redis.ConnectionError as e:
        pytest.skip(f"no Redis server on {SHARED_HOST}:{SHARED_PORT} ({e})")
    finally:
        probe.close()
    token = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    candidates = list(range(1, 16))
    random.shuffle(candidates)
    for db in candidates:
        client = redis.Redis(SHARED_HOST, SHARED_PORT, db=db)
        # Empty before, and only our claim after: nobody else is using it.
        if client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True, ex=6 * 3600) and client.dbsize() == 1:
            break
        client.close()
    else:
        pytest.skip("no empty Redis database among 1..15")
    try:
        yield db
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def redis_url(redis_db) -> str:
    with redis.Redis(SHARED_HOST, SHARED_PORT, db=redis_db) as client:
        token = client.get(CLAIM_KEY)
        client.flushdb()
        client.set(CLAIM_KEY, token or b"courier-test", ex=6 * 3600)
    return f"redis://{SHARED_HOST}:{SHARED_PORT}/{redis_db}"


@pytest.fixture
def redis_client(io_loop, redis_url) -> Iterator[aioredis.Redis]:
    # Connections are made lazily, on the test's loop; closed on the same loop.
    client = make_client(redis_url)
    yield client
    io_loop.run_sync(client.aclose)


@pytest.fixture
def channel() -> str:
    return f"courier-test:notifications:{uuid.uuid4().hex}"


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def down_url() -> str:
    return f"redis://127.0.0.1:{spare_port()}/0"


@pytest.fixture
def down_client(io_loop, down_url) -> Iterator[aioredis.Redis]:
    client = make_client(down_url, retry=Retry(NoBackoff(), 0))
    yield client
    io_loop.run_sync(client.aclose)


class PrivateRedis:
    """A redis-server of one test: append-only, so a restart keeps the streams.
    `options` are more redis-server flags, e.g. ("--appendfsync", "always")."""

    def __init__(self, directory: str, *options: str):
        self.directory = directory
        self.options = options
        self.port = spare_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--dir", self.directory, *self.options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.2) as client:
                    client.ping()
                    return
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()  # SIGTERM: redis-server fsyncs its AOF and exits
            self._process.wait(timeout=10)
            self._process = None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (what is in the AOF is what survives)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def freeze(self) -> None:
        """SIGSTOP: the server hangs - connections stay open, nothing is answered."""
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._process.send_signal(signal.SIGCONT)

    def command(self, *args):
        with redis.Redis(port=self.port, socket_connect_timeout=1) as client:
            return client.execute_command(*args)


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(str(tmp_path))
    server.start()
    try:
        yield server
    finally:
        server.stop()
