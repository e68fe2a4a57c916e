"""Send idempotency in SQL (idempotency_keys), for the embedded mode.

remember() runs before the message is delivered, so the messages table cannot
answer a retry yet: the row keeps the original message itself (its record JSON),
and a retry gets back the identical message (same id, created_at, content).

A row is pending (delivered false) from remember() until the message is
delivered: SqliteInbox marks it delivered in the very transaction that appends
the message (mark_delivered: the send's confirm step, ports.Inbox.deliver), so a
crash between the two cannot leave a delivered message pending. A pending row
older than `pending_ttl` seconds belongs to a send that died: remember() takes it
over for the retry. confirm() and forget() only touch the row of their own message
(ports.IdempotencyKeys)."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from sqlalchemy import Connection, delete, exc, insert, select, update

from adapters.sql.batches import chunks
from adapters.sql.database import Database
from adapters.sql.tables import idempotency_keys
from application.ports import Answer, IdempotencyKeys
from domain import errors
from domain.model import Message

log = logging.getLogger("courier.idempotency")

RETENTION = 48 * 3600  # the contract promises at least 24 hours
PENDING_TTL = 30  # seconds a pending answer blocks its key
PURGE_EVERY = 1000  # remember() calls between purges of expired keys


def held_by_others(conn: Connection, messages: list[Message]) -> set[str]:
    """In the caller's transaction: the ids of those messages whose key another message
    holds now (this one's pending answer went stale and a retry took the key over).
    Such a message must not be appended: the retry delivers it (or did). One query per
    chunk of the batch, not one per message."""
    keyed = [message for message in messages if message.client_msg_id is not None]
    if not keyed:
        return set()
    key = idempotency_keys.c
    holders: dict[tuple[str, str], str] = {}
    for chunk in chunks(keyed):
        found = conn.execute(
            select(key.sender_id, key.client_msg_id, key.message_id).where(
                key.sender_id.in_({m.from_user_id for m in chunk}),
                key.client_msg_id.in_({m.client_msg_id for m in chunk}),
            )
        )
        holders.update(((sender, client_id), holder) for sender, client_id, holder in found)
    return {
        message.id
        for message in keyed
        if holders.get((message.from_user_id, message.client_msg_id), message.id) != message.id
    }


def mark_delivered(conn: Connection, message: Message) -> int:
    """In the caller's transaction: the answer of `message` (if it is the one
    remembered for its key) is delivered, as accepted (with its seq, which a retry
    gets back too). Returns the rows changed (0 or 1)."""
    if message.client_msg_id is None:
        return 0
    key = idempotency_keys.c
    return conn.execute(
        update(idempotency_keys)
        .where(
            key.sender_id == message.from_user_id,
            key.client_msg_id == message.client_msg_id,
            key.message_id == message.id,
        )
        .values(delivered=True, record=json.dumps(message.to_record(), ensure_ascii=False))
    ).rowcount


def confirm_delivered(conn: Connection, message: Message, now: int) -> None:
    """In the caller's transaction, the confirm step of IdempotencyKeys.confirm for a
    message whose key is its own or free (held_by_others found no other holder): its
    answer becomes delivered, or, the key being free, it is remembered delivered."""
    if message.client_msg_id is None or mark_delivered(conn, message):
        return
    conn.execute(
        insert(idempotency_keys).values(
            sender_id=message.from_user_id,
            client_msg_id=message.client_msg_id,
            message_id=message.id,
            record=json.dumps(message.to_record(), ensure_ascii=False),
            delivered=True,
            created_at=now,
        )
    )


class SqlIdempotencyKeys(IdempotencyKeys):
    def __init__(
        self,
        db: Database,
        now: Callable[[], float] = time.time,
        retention: float = RETENTION,
        pending_ttl: float = PENDING_TTL,
    ):
        self._db = db
        self._now = now
        self._retention = retention
        self._pending_ttl = pending_ttl
        self._until_purge = 0  # purge on the first call: a restart does not postpone it

    async def remember(self, sender_id: str, client_msg_id: str, message: Message) -> Answer | None:
        purge_before = None
        self._until_purge -= 1
        if self._until_purge <= 0:
            self._until_purge = PURGE_EVERY
            purge_before = int(self._now() - self._retention)
        now = self._now()
        return await self._db.write(
            self._remember, sender_id, client_msg_id, message, int(now), now - self._pending_ttl, purge_before
        )

    @staticmethod
    def _remember(
        conn: Connection,
        sender_id: str,
        client_msg_id: str,
        message: Message,
        now: int,
        stale_before: float,
        purge_before: int | None,
    ) -> Answer | None:
        key = idempotency_keys.c
        if purge_before is not None:
            with conn.begin():
                conn.execute(delete(idempotency_keys).where(key.created_at < purge_before))
        record = json.dumps(message.to_record(), ensure_ascii=False)
        ours = {"message_id": message.id, "record": record, "delivered": False, "created_at": now}
        failure: exc.IntegrityError | None = None
        for _ in range(3):
            try:
                with conn.begin():
                    conn.execute(
                        insert(idempotency_keys).values(sender_id=sender_id, client_msg_id=client_msg_id, **ours)
                    )
                return None
            except exc.IntegrityError as e:
                failure = e
            # Already remembered (or an unknown sender: then nothing is found and
            # the insert fails again, so the error is raised below).
            with conn.begin():
                found = conn.execute(
                    select(key.message_id, key.record, key.delivered, key.created_at).where(
                        key.sender_id == sender_id, key.client_msg_id == client_msg_id
                    )
                ).first()
                if found is None:
                    continue  # forgotten in between: try to insert again
                if found.delivered or found.created_at > stale_before:
                    return Answer(Message.from_record(json.loads(found.record)), bool(found.delivered))
                # The pending answer of a send that died: the retry takes the key,
                # unless another retry just did.
                taken = conn.execute(
                    update(idempotency_keys)
                    .where(
                        key.sender_id == sender_id,
                        key.client_msg_id == client_msg_id,
                        key.message_id == found.message_id,
                        key.delivered.is_(False),
                    )
                    .values(**ours)
                ).rowcount
            if taken:
                log.warning("client_msg_id of message %s was pending too long; a retry sends it anew",
                            found.message_id)
                return None
        raise errors.NotFound("unknown sender") from failure

    async def confirm(self, sender_id: str, client_msg_id: str, message: Message) -> None:
        await self._db.write(self._confirm, sender_id, client_msg_id, message, int(self._now()))

    @staticmethod
    def _confirm(conn: Connection, sender_id: str, client_msg_id: str, message: Message, now: int) -> None:
        with conn.begin():
            if mark_delivered(conn, message):
                return
            key = idempotency_keys.c
            found = conn.execute(
                select(key.message_id).where(key.sender_id == sender_id, key.client_msg_id == client_msg_id)
            ).first()
        if found is not None:
            return  # another message's answer (a retry took the key over): left alone
        # A free key: remember this message, delivered.
        record = json.dumps(message.to_record(), ensure_ascii=False)
        try:
            with conn.begin():
                conn.execute(
                    insert(idempotency_keys).values(
                        sender_id=sender_id,
                        client_msg_id=client_msg_id,
                        message_id=message.id,
                        record=record,
                        delivered=True,
                        created_at=now,
                    )
                )
        except exc.IntegrityError:
            pass  # taken in between by another message: left alone

    async def forget(self, sender_id: str, client_msg_id: str, message: Message) -> None:
        await self._db.write(self._forget, sender_id, client_msg_id, message.id)

    @staticmethod
    def _forget(conn: Connection, sender_id: str, client_msg_id: str, message_id: str) -> None:
        key = idempotency_keys.c
        with conn.begin():
            conn.execute(
                delete(idempotency_keys).where(
                    key.sender_id == sender_id,
                    key.client_msg_id == client_msg_id,
                    key.message_id == message_id,
                    key.delivered.is_(False),
                )
            )
