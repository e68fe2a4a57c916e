"""What the Inbox and IdempotencyKeys contract suites run over: each adapter with
the partner it shares its store with (the inbox takes the confirm step of the keys)."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from adapters.memory.bus import InProcessBus
from adapters.redis.buckets import Buckets
from adapters.redis.cluster_inbox import RedisClusterInbox
from adapters.redis.idempotency import RedisIdempotencyKeys
from adapters.redis.inbox import RedisInbox
from adapters.sql.database import Database
from adapters.sql.idempotency import SqlIdempotencyKeys
from adapters.sql.inbox import SqliteInbox
from adapters.sql.messages import SqlMessageStore
from adapters.sql.users import SqlUserRepository
from application.ports import Announcement, IdempotencyKeys, Inbox
from domain.events import MessageChange
from domain.model import User
from tests.fakes.idempotency import MemoryIdempotencyKeys
from tests.fakes.inbox import MemoryInbox

KINDS = ["memory", "sqlite", "mysql", "redis", "redis-cluster"]


@dataclass
class Store:
    inbox: Inbox
    keys: IdempotencyKeys
    people: list[str]  # user ids that exist (the SQL store refuses unknown ones)
    database: Database | None = None  # the SQL store's

    async def change(self, change: MessageChange, recipient_ids: list[str]) -> dict[str, str]:
        """A message's edit or deletion as ChangeMessages makes it: stored (the SQL inbox
        reads the message table, which MessageStore.change changes), then appended."""
        if self.database is not None:
            announce = Announcement(change, list(recipient_ids), time.time())
            await SqlMessageStore(self.database).change(change.message, announce)
        return await self.inbox.append(change, recipient_ids)


async def make_store(kind: str, request, sql_database, *, max_length: int = 10_000,
                     pending_ttl: float = 30.0) -> Store:
    people = [str(uuid.uuid4()) for _ in range(4)]
    if kind == "memory":
        keys = MemoryIdempotencyKeys(pending_ttl=pending_ttl)
        return Store(MemoryInbox(InProcessBus(), keys, max_length=max_length), keys, people)
    if kind in ("sqlite", "mysql"):
        database = sql_database(kind)
        users = SqlUserRepository(database)
        for index, user_id in enumerate(people):
            await users.add(User(id=user_id, username=f"user{index}", password_hash="h"))
        return Store(SqliteInbox(database, InProcessBus(), max_length=max_length, trim_every=1),
                     SqlIdempotencyKeys(database, pending_ttl=pending_ttl), people, database)
    if kind == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster_client")
        await cluster.initialize()  # before any concurrent use (tests/services/redis_cluster.py)
        keys = RedisIdempotencyKeys(cluster, pending_ttl=pending_ttl)
        return Store(RedisClusterInbox(cluster, Buckets(), keys, max_length, exact_trim=True), keys, people)
    client, channel = request.getfixturevalue("redis_client"), request.getfixturevalue("channel")
    return Store(RedisInbox(client, max_length, exact_trim=True, channel=channel),
                 RedisIdempotencyKeys(client, pending_ttl=pending_ttl), people)
