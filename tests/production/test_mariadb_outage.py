"""MariaDB stopped (kill -9) while the worker works through a backlog, then started
again. It runs as a mariadbd of the test's own (own data directory and port): the
machine's MariaDB serves other tests concurrently and is never stopped.

What a client sees meanwhile: sends, registrations and history need the database
(a send looks its recipient or group up there), so they answer 503 with the JSON
error body; what only needs Redis (pull, live pushes) keeps working; /readyz says
the database is down. What was accepted before waits in stream:persist, and once
the server is back the worker (`courier worker`) and the gateway recover by
themselves: every accepted message is stored exactly once (rows counted by id)."""
from __future__ import annotations

import asyncio
import time

import pytest
import redis

from adapters.sql import migrate
from tests.e2e.support import assert_error
from tests.production.support import (
    Collector,
    assert_stored_exactly_once,
    count_stored,
    eventually,
    production_settings,
    until_stored,
)

pytestmark = [pytest.mark.redis, pytest.mark.mysql]

MESSAGES = 400


def persist_backlog(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url, socket_connect_timeout=2) as client:
        return client.xlen("stream:persist")


@pytest.mark.gen_test(timeout=120)
async def test_mariadb_killed_and_started_again_loses_and_doubles_nothing(
        private_mariadb, redis_url, secret, commands, gateways, api):
    loop = asyncio.get_running_loop()
    database_url = private_mariadb.create_database()
    await loop.run_in_executor(None, migrate.upgrade, database_url)
    settings = production_settings(redis_url, database_url, secret)
    gateway = await gateways(settings).start()
    client = api(gateway)
    a, b = await client.register(), await client.register()
    socket = Collector(await client.connect(b), "b")

    async def send(start):
        ids = set()
        for i in range(start, MESSAGES, 8):
            r = await client.send(a, b, f"m{i}")
            assert r.status == 201, r
            ids.add(r.body["id"])
        return ids

    accepted = set().union(*await asyncio.gather(*(send(k) for k in range(8))))
    # The worker starts on that backlog; the server is killed while it is part-way through.
    worker = commands("worker", settings, COURIER_WORKER_BATCH=10).start()
    await worker.ready()
    deadline = time.monotonic() + 30
    while True:
        stored = await loop.run_in_executor(None, count_stored, database_url, accepted)
        if 0 < stored:
            break
        assert time.monotonic() < deadline, "the worker stored nothing in 30 s"
        await asyncio.sleep(0.005)
    private_mariadb.kill()
    assert stored < MESSAGES - 50, "the worker was through the backlog before the kill"
    waiting = await loop.run_in_executor(None, persist_backlog, redis_url)
    assert waiting > 0, f"nothing was left to persist ({stored} stored)"

    # Down: what needs the database answers 503 JSON, the rest works, nothing is dropped.
    assert_error(await client.send(a, b, "while down"), 503, "service_unavailable")
    assert_error(await client.call("POST", "/api/v1/users/register",
                                    {"username": "newcomer", "password": "password-123"}), 503)
    assert_error(await client.history(b, f"/conversations/{a.user_id}"), 503)
    not_ready = await client.call("GET", "/readyz")
    assert_error(not_ready, 503, "service_unavailable")
    assert "database" in not_ready.body["error"]["message"]
    pulled, _ = await client.pull_all(b, limit=200)  # the inbox is in Redis
    assert {m["id"] for m in pulled} == accepted
    await asyncio.sleep(1.0)  # the worker keeps failing, and keeps what it took
    assert await loop.run_in_executor(None, persist_backlog, redis_url) == waiting
    assert worker.running

    await loop.run_in_executor(None, private_mariadb.start)

    async def ready():
        return (await client.call("GET", "/readyz")).status == 200

    await eventually(ready, timeout=20)
    after = await client.send(a, b, "after")
    assert after.status == 201, after
    accepted.add(after.body["id"])
    stored = await until_stored(database_url, accepted, timeout=45)
    assert_stored_exactly_once(stored, accepted)
    assert await loop.run_in_executor(None, persist_backlog, redis_url) == 0
    await socket.until_has(accepted)
    socket.assert_exactly_once(accepted)
    assert worker.running, worker.output()
    await socket.close()
