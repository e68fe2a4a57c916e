"""Helpers of the 100,000-member channel tests (tests/production/test_channel_100k.py,
tests/e2e/test_channel_100k.py): users seeded in bulk, sockets that record what reaches them."""
from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

from sqlalchemy import insert

from adapters.redis.group_streams import LOG
from adapters.sql.tables import users
from domain.model import normalised_username_key, username_key
from entrypoints.container import Container
from tests.e2e.client import Api
from tests.services.redis import CLAIM_KEY

MEMBERS = 100_000
ONLINE = 2_000
POSTS = 20
USER_ROWS = 5_000  # users inserted per statement
CONNECTING = 100  # sockets opened at once
ENV = dict(COURIER_LARGE_GROUP="200", COURIER_WS_MAX_PER_ADDRESS="0", COURIER_WS_MAX_PER_USER="0")


def insert_users(conn, rows: list[dict]) -> None:
    with conn.begin():
        conn.execute(insert(users), rows)


async def seed_users(container: Container, count: int) -> list[str]:
    """`count` users in the users table, in statements of USER_ROWS rows; their ids."""
    password_hash = await container.hasher().hash("password-123")
    ids = [container.ids().new_id() for _ in range(count)]
    now = container.clock().now()
    created = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
    for start in range(0, count, USER_ROWS):
        rows = []
        for i, user_id in enumerate(ids[start:start + USER_ROWS], start):
            name = f"ch{i:06d}"
            rows.append(dict(id=user_id, username=name, username_key=username_key(name),
                             normalised_key=normalised_username_key(name), password_hash=password_hash,
                             created_at=created))
        await container.database().write(insert_users, rows)
    return ids


class Listener:
    """One member's socket: every frame, with the time it arrived."""

    def __init__(self, socket) -> None:
        self.socket = socket
        self.frames: list[tuple[float, dict]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while (message := await self.socket.ws.read_message()) is not None:
            self.frames.append((time.monotonic(), json.loads(message)))


async def connect_all(clients: list[Api], tokens: list[str]) -> list[Listener]:
    listeners: list[Listener] = []
    for start in range(0, len(tokens), CONNECTING):
        sockets = await asyncio.gather(*(clients[i % len(clients)].connect(token=token)
                                         for i, token in enumerate(tokens[start:start + CONNECTING], start)))
        listeners.extend(Listener(socket) for socket in sockets)
    return listeners


async def free(client) -> None:
    claim = await client.get(CLAIM_KEY)
    await client.flushdb()
    await client.set(CLAIM_KEY, claim or b"courier-test", ex=6 * 3600)


async def until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        await asyncio.sleep(0.05)


async def used_memory(client) -> int:
    return int((await client.info("memory"))["used_memory"])


async def log_size(client, group_id: str) -> tuple[int, int, int]:
    """The channel's log: entries, MEMORY USAGE (whole listpack nodes, 4 KiB preallocated),
    and the bytes of its records."""
    key = LOG.format(group_id)
    entries = await client.xrange(key)
    return len(entries), await client.memory_usage(key, samples=0), sum(
        len(k) + len(v) for _, fields in entries for k, v in fields.items())
