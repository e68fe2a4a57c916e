"""The conversation list and read markers in SQL (conversations, conversation_members).

The state is kept as messages are stored, in the transaction that stores them
(adapters/sql/stored_messages.py), with the messages that transaction inserted, and only
those, so a message handed to the worker again changes nothing. The group store keeps
the members' rows in the transactions that change the group (group_joined, group_left).

A page of the list is one range of the (user_id, activity, conversation) index plus
one lookup per row: O(page), however many messages or conversations there are.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Connection, and_, delete, insert, select, tuple_, update

from adapters.sql.batches import chunks
from adapters.sql.database import Database
from adapters.sql.outbox import store_announcement
from adapters.sql.tables import conversation_members, conversations, groups, messages, users
from application.ports import (
    Announcement,
    ConversationPage,
    ConversationPosition,
    ConversationState,
    ConversationStore,
)


def now_micros() -> int:
    return time.time_ns() // 1000


def group_created(conn: Connection, group_id: str, member_ids: Sequence[str]) -> None:
    """In the group's creating transaction: the group in each first member's list."""
    now = now_micros()
    conversation = "g:" + group_id
    conn.execute(insert(conversations).values(conversation=conversation, last_seq=0, last_message_id=None,
                                              activity=now))
    if member_ids:
        conn.execute(insert(conversation_members), [
            {"user_id": user_id, "conversation": conversation, "peer_id": None, "group_id": group_id,
             "read_seq": 0, "activity": now} for user_id in member_ids
        ])


def group_joined(conn: Connection, group_id: str, user_id: str) -> None:
    """In the joining transaction: the group at the top of the new member's list, whose
    messages from before it joined do not count as unread."""
    now = now_micros()
    conversation = "g:" + group_id
    c = conversations.c
    last = conn.execute(select(c.last_seq).where(c.conversation == conversation)).scalar()
    if last is None:  # a group from before these tables
        conn.execute(insert(conversations).values(conversation=conversation, last_seq=0, last_message_id=None,
                                                  activity=now))
    m = conversation_members.c
    conn.execute(delete(conversation_members).where(m.user_id == user_id, m.conversation == conversation))
    conn.execute(insert(conversation_members).values(
        user_id=user_id, conversation=conversation, peer_id=None, group_id=group_id, read_seq=last or 0,
        activity=now))


def group_left(conn: Connection, group_id: str, user_id: str) -> None:
    """In the removing transaction: the group leaves the member's list."""
    m = conversation_members.c
    conn.execute(delete(conversation_members).where(m.user_id == user_id, m.conversation == "g:" + group_id))


class SqlConversationStore(ConversationStore):
    def __init__(self, db: Database):
        self._db = db

    async def list(self, user_id: str, before: ConversationPosition | None, limit: int) -> ConversationPage:
        return await self._db.run(self._list, user_id, before, limit)

    @staticmethod
    def _list(conn: Connection, user_id: str, before: ConversationPosition | None, limit: int) -> ConversationPage:
        from adapters.sql.messages import MESSAGE_COLUMNS, message_from_row  # (messages imports groups, this)

        m, c = conversation_members.c, conversations.c
        query = (
            select(m.conversation, m.peer_id, m.group_id, m.read_seq, m.activity, c.last_seq, c.last_message_id,
                   users.c.username, groups.c.name)
            .join_from(conversation_members, conversations, c.conversation == m.conversation)
            .outerjoin(users, users.c.id == m.peer_id)
            .outerjoin(groups, groups.c.id == m.group_id)
            .where(m.user_id == user_id)
        )
        if before is not None:
            query = query.where(m.activity <= before.activity,
                                tuple_(m.activity, m.conversation) < tuple_(before.activity, before.conversation))
        query = query.order_by(m.activity.desc(), m.conversation.desc()).limit(limit + 1)
        with conn.begin():
            rows = conn.execute(query).all()
            more = len(rows) > limit
            rows = rows[:limit]
            ids = [row.last_message_id for row in rows if row.last_message_id is not None]
            found = {}
            if ids:
                found = {r.id: message_from_row(r)
                         for r in conn.execute(select(*MESSAGE_COLUMNS).where(messages.c.id.in_(ids)))}
        states = [
            ConversationState(
                conversation=row.conversation, peer_id=row.peer_id, group_id=row.group_id,
                name=row.name if row.group_id is not None else row.username,
                last_message=found.get(row.last_message_id), last_seq=row.last_seq, read_seq=row.read_seq,
                activity=row.activity,
            )
            for row in rows
        ]
        last = states[-1] if more else None
        return ConversationPage(states, ConversationPosition(last.activity, last.conversation) if last else None)

    async def last_seq(self, conversation: str) -> int:
        return await self._db.run(self._last_seq, conversation)

    @staticmethod
    def _last_seq(conn: Connection, conversation: str) -> int:
        with conn.begin():
            c = conversations.c
            return conn.execute(select(c.last_seq).where(c.conversation == conversation)).scalar() or 0

    async def mark_read(self, user_id: str, conversation: str, seq: int, *, peer_id: str | None = None,
                        group_id: str | None = None, announce: Announcement | None = None) -> tuple[int, int]:
        return await self._db.write(self._mark_read, user_id, conversation, seq, peer_id, group_id, announce)

    @staticmethod
    def _mark_read(conn: Connection, user_id: str, conversation: str, seq: int, peer_id: str | None,
                   group_id: str | None, announce: Announcement | None) -> tuple[int, int]:
        m, c = conversation_members.c, conversations.c
        with conn.begin():
            row = conn.execute(select(m.read_seq).where(m.user_id == user_id, m.conversation == conversation)
                               .with_for_update()).first()
            if row is None:
                # Production: the worker has not stored the conversation's first message yet.
                conn.execute(insert(conversation_members).values(
                    user_id=user_id, conversation=conversation, peer_id=peer_id, group_id=group_id,
                    read_seq=seq, activity=0))
                read_seq = seq
                store_announcement(conn, announce)
            else:
                read_seq = max(row.read_seq, seq)
                if read_seq != row.read_seq:
                    conn.execute(update(conversation_members)
                                 .where(m.user_id == user_id, m.conversation == conversation)
                                 .values(read_seq=read_seq))
                    store_announcement(conn, announce)  # the move's event, with the move
            last = conn.execute(select(c.last_seq).where(c.conversation == conversation)).scalar() or 0
        return read_seq, max(0, last - read_seq)

    async def group_reads(self, conversation: str, member_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
        return await self._db.run(self._group_reads, conversation, list(member_ids))

    @staticmethod
    def _group_reads(conn: Connection, conversation: str, member_ids: list[str]) -> dict[str, tuple[int, bool]]:

        m, u = conversation_members.c, users.c
        found: dict[str, tuple[int, bool]] = {}
        with conn.begin():
            for chunk in chunks(member_ids):
                query = (select(u.id, u.send_read_receipts, m.read_seq)
                         .outerjoin_from(users, conversation_members,
                                         and_(m.user_id == u.id, m.conversation == conversation))
                         .where(u.id.in_(chunk)))
                for row in conn.execute(query):
                    found[row.id] = (row.read_seq or 0, bool(row.send_read_receipts))
        return found
