"""Helpers of the production-mode tests: `courier serve` / `courier worker` as
processes of their own, in-process gateways, and the checks every fault test
ends with (nothing lost, nothing doubled: frames and rows counted by message id)."""
from __future__ import annotations

import asyncio
import collections
import json
import os
import time
import uuid

from sqlalchemy import bindparam, create_engine, pool, text

from entrypoints.settings import Settings
from tests.e2e.client import Api, WsClient
from tests.services.courier_command import FAST_ENV, CourierCommand  # noqa: F401 - CourierCommand re-exported
from tests.services.urls import LoopbackUrls

TEST_DEFAULTS = dict(argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1, registrations=0,
                   hash_queue=1000)


def production_settings(redis_url: str, database_url: str, jwt_secret: str, **overrides) -> Settings:
    values = dict(host="127.0.0.1", port=0, redis_url=redis_url, database_url=database_url, jwt_secret=jwt_secret,
                  send_rate=0, log_level="info", **TEST_DEFAULTS)
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings, **extra) -> dict:
    """The environment a `courier` process needs to run with these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env.update(
        COURIER_REDIS_URL=settings.redis_url,
        COURIER_DATABASE_URL=settings.database_url,
        COURIER_JWT_SECRET=settings.jwt_secret,
        COURIER_SEND_RATE=str(settings.send_rate),
        COURIER_LOG_LEVEL=settings.log_level,
        **FAST_ENV,
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Gateway(LoopbackUrls):
    """A CourierServer in this process, on the test's loop (like tests/e2e's Running)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.server = None

    async def start(self) -> Gateway:
        from entrypoints.server import CourierServer

        self.server = CourierServer(self.settings)
        await self.server.start()
        self.settings.port = self.server.port
        return self

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()

    @property
    def subscriber(self):
        return self.server.container.subscriber()

    @property
    def port(self) -> int:
        return self.settings.port


# --- sending and counting -------------------------------------------------------

class Sender:
    """Sends like a careful client: each message has a client_msg_id, and a send that
    fails for want of a service (503, or the connection) is retried with the same one
    until it is accepted. `accepted` maps client_msg_id -> message id (from the 201)."""

    def __init__(self, api: Api, account, retry_for: float = 60.0):
        self.api = api
        self.account = account
        self.retry_for = retry_for
        self.accepted: dict[str, str] = {}
        self.attempts: dict[str, int] = {}  # message id -> tries it took to be accepted
        self.unavailable = 0  # 503 (and 409 send_in_progress) answers seen
        self.bodies_503: list = []

    async def send(self, content: str, to=None, group_id: str | None = None) -> str:
        key = uuid.uuid4().hex
        deadline = time.monotonic() + self.retry_for
        tries = 0
        while True:
            tries += 1
            try:
                if group_id is not None:
                    reply = await self.api.send_group(self.account, group_id, content, client_msg_id=key)
                else:
                    reply = await self.api.send(self.account, to, content, client_msg_id=key)
            except OSError:
                reply = None
            if reply is not None and reply.status == 201:
                previous = self.accepted.setdefault(key, reply.body["id"])
                assert previous == reply.body["id"], "a retry with the same client_msg_id got another message"
                self.attempts[reply.body["id"]] = tries
                return reply.body["id"]
            if reply is not None:
                # 503: a service is down; 409 send_in_progress: the first try with this
                # client_msg_id is still pending. A client retries both.
                in_progress = reply.status == 409 and (reply.body or {}).get("error", {}).get("code") == \
                    "send_in_progress"
                assert reply.status == 503 or in_progress, reply
                self.unavailable += 1
                self.bodies_503.append(reply.body)
            if time.monotonic() > deadline:
                raise AssertionError(f"a send was not accepted within {self.retry_for} s: {reply}")
            await asyncio.sleep(0.05)

    @property
    def ids(self) -> set[str]:
        return set(self.accepted.values())


class Collector:
    """Reads every frame of a socket in the background, counting message ids."""

    def __init__(self, ws: WsClient, name: str = "socket"):
        self.ws = ws
        self.name = name
        self.frames: list[dict] = []
        self.closed: tuple | None = None
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            message = await self.ws.ws.read_message()
            if message is None:
                self.closed = (self.ws.ws.close_code, self.ws.ws.close_reason)
                return
            frame = json.loads(message)
            if frame.get("type") != "pong":
                self.frames.append(frame)

    @property
    def counts(self) -> collections.Counter:
        return collections.Counter(frame["id"] for frame in self.frames)

    async def until_has(self, ids: set[str], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= set(self.counts):
            if self.closed is not None:
                raise AssertionError(f"{self.name} closed {self.closed} missing {len(ids - set(self.counts))}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} is missing {len(ids - set(self.counts))} of {len(ids)} "
                                     f"messages after {timeout} s, e.g. {sorted(ids - set(self.counts))[:3]}; "
                                     f"first frames {[f['content'] for f in self.frames[:3]]}")
            await asyncio.sleep(0.02)

    def assert_exactly_once(self, ids: set[str]) -> None:
        counts = self.counts
        doubled = {i: n for i, n in counts.items() if n > 1}
        assert not doubled, f"{self.name} got {len(doubled)} messages more than once"
        assert set(counts) == ids, (f"{self.name}: {len(ids - set(counts))} lost, "
                                    f"{len(set(counts) - ids)} unexpected")
        cursors = [frame["cursor"] for frame in self.frames]
        assert cursors == sorted(cursors, key=lambda c: tuple(int(p) for p in c.split("-"))), \
            f"{self.name}: frames out of cursor order"

    async def close(self) -> None:
        self.ws.close()
        try:
            await asyncio.wait_for(self._task, 5)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()


def stored_ids(database_url: str) -> collections.Counter:
    """Message ids in the messages table, with how many rows each has."""
    engine = create_engine(database_url, poolclass=pool.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, COUNT(*) FROM messages GROUP BY id")).all()
    finally:
        engine.dispose()
    return collections.Counter({row[0]: row[1] for row in rows})


def count_stored(database_url: str, ids: set[str]) -> int:
    engine = create_engine(database_url, poolclass=pool.NullPool, connect_args={"connect_timeout": 1})
    try:
        with engine.connect() as conn:
            query = text("SELECT COUNT(*) FROM messages WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))
            return conn.execute(query, {"ids": sorted(ids)}).scalar()
    finally:
        engine.dispose()


async def until_stored(database_url: str, ids: set[str], timeout: float = 30.0) -> collections.Counter:
    """Wait (bounded) until every id has a row; then return the whole table's counts."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    while True:
        try:
            stored = await loop.run_in_executor(None, stored_ids, database_url)
        except Exception as e:  # noqa: BLE001 - the database may still be coming back
            stored, error = collections.Counter(), e
        else:
            error = None
            if ids <= set(stored):
                return stored
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(ids - set(stored))} of {len(ids)} messages not in the database "
                                 f"after {timeout} s (last error: {error!r})")
        await asyncio.sleep(0.1)


def assert_stored_exactly_once(stored: collections.Counter, ids: set[str]) -> None:
    doubled = {i: n for i, n in stored.items() if n > 1}
    assert not doubled, f"{len(doubled)} messages have more than one row"
    assert set(stored) == ids, f"{len(ids - set(stored))} lost, {len(set(stored) - ids)} unexpected rows"


async def eventually(check, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: last result {result!r}")
        await asyncio.sleep(interval)
