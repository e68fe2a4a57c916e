"""Send idempotency in SQL (idempotency_keys), for the embedded mode.

remember() runs before the message is delivered, so the messages table cannot
answer a retry yet: the row keeps the original message itself (its record JSON),
and a retry gets back the identical message (same id, created_at, content) even
while the first send is still being written."""
from __future__ import annotations

import json
import time
from collections.abc import Callable

from sqlalchemy import Connection, delete, exc, insert, select

from adapters.sql.database import Database
from adapters.sql.tables import idempotency_keys
from application.ports import IdempotencyKeys
from domain import errors
from domain.model import Message

RETENTION = 48 * 3600  # the contract promises at least 24 hours
PURGE_EVERY = 1000  # remember() calls between purges of expired keys


class SqlIdempotencyKeys(IdempotencyKeys):
    def __init__(self, db: Database, now: Callable[[], float] = time.time, retention: float = RETENTION):
        self._db = db
        self._now = now
        self._retention = retention
        self._until_purge = 0  # purge on the first call: a restart does not postpone it

    async def remember(self, sender_id: str, client_msg_id: str, message: Message) -> Message | None:
        purge_before = None
        self._until_purge -= 1
        if self._until_purge <= 0:
            self._until_purge = PURGE_EVERY
            purge_before = int(self._now() - self._retention)
        return await self._db.write(self._remember, sender_id, client_msg_id, message, int(self._now()), purge_before)

    @staticmethod
    def _remember(
        conn: Connection, sender_id: str, client_msg_id: str, message: Message, now: int, purge_before: int | None
    ) -> Message | None:
        key = idempotency_keys.c
        if purge_before is not None:
            with conn.begin():
                conn.execute(delete(idempotency_keys).where(key.created_at < purge_before))
        record = json.dumps(message.to_record(), ensure_ascii=False)
        failure: exc.IntegrityError | None = None
        for _ in range(3):
            try:
                with conn.begin():
                    conn.execute(
                        insert(idempotency_keys).values(
                            sender_id=sender_id,
                            client_msg_id=client_msg_id,
                            message_id=message.id,
                            record=record,
                            created_at=now,
                        )
                    )
                return None
            except exc.IntegrityError as e:
                failure = e
                # Already remembered (or an unknown sender: then nothing is found and
                # the insert fails again, so the error is raised below).
                with conn.begin():
                    found = conn.execute(
                        select(key.record).where(key.sender_id == sender_id, key.client_msg_id == client_msg_id)
                    ).scalar()
                if found is not None:
                    return Message.from_record(json.loads(found))
                # forgotten in between: try to insert again
        raise errors.NotFound("unknown sender") from failure

    async def forget(self, sender_id: str, client_msg_id: str) -> None:
        await self._db.write(self._forget, sender_id, client_msg_id)

    @staticmethod
    def _forget(conn: Connection, sender_id: str, client_msg_id: str) -> None:
        key = idempotency_keys.c
        with conn.begin():
            conn.execute(
                delete(idempotency_keys).where(key.sender_id == sender_id, key.client_msg_id == client_msg_id)
            )
