"""The conversation list and read markers in SQL (conversations, conversation_members).

The state is kept as messages are stored, in the transaction that stores them:
record_messages() is called by SqliteInbox (embedded) and SqlMessageStore.save (the
worker, production) with the messages that transaction inserted, and only those, so a
message handed to the worker again changes nothing; and the state only ever moves
forward (a seq below the stored last one leaves it, an activity never goes back), so
the order in which persisters store messages does not matter. The group store keeps the
members' rows in the transactions that change the group (group_joined, group_left).

A page of the list is one range of the (user_id, activity, conversation) index plus
one lookup per row: O(page), however many messages or conversations there are.

A large group's members (docs/design/large-groups.md, section 10) keep their rows'
join activity (`large` = 1): a message to a group of 100,000 does not write 100,000 rows.
Their groups are sorted by the conversation's own activity instead, merged into the
page: O(page + the user's large groups).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Insert, Table, and_, case, delete, insert, select, tuple_, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapters.sql.batches import chunks
from adapters.sql.database import Database
from adapters.sql.outbox import announcement_stored, store_announcement
from adapters.sql.tables import conversation_members, conversations, group_streams, groups, messages, users
from application.ports import (
    Announcement,
    ConversationPage,
    ConversationPosition,
    ConversationState,
    ConversationStore,
    MarkedRead,
)
from domain.model import GROUP, Message


def now_micros() -> int:
    return time.time_ns() // 1000


def _greatest(column, value: int):
    return case((column < value, value), else_=column)


_UPSERTS: dict[tuple[str, str], Insert] = {}


def _upsert(conn: Connection, table: Table, key: str | tuple[str, ...], rows: list[dict],
            updates: Callable[[Any, Any], list[tuple[str, Any]]]) -> None:
    """One INSERT of `rows` (an executemany) that, where a row's key is taken, sets the
    columns `updates(stored, proposed)` names instead: `stored` the table's columns,
    `proposed` the row's values. Each expression must read only the stored row as it was
    (SQLite's upsert reads it so; MySQL evaluates the assignments left to right, so an
    expression may read a column only if that column is assigned after it). The
    statement is built once per table and dialect: building it (the `excluded` /
    `inserted` alias of the table) costs more than executing it."""
    dialect = conn.dialect.name
    statement = _UPSERTS.get((table.name, dialect))
    if statement is None:
        if dialect == "sqlite":
            lite = sqlite_insert(table)
            statement = lite.on_conflict_do_update(
                index_elements=[key] if isinstance(key, str) else list(key),
                set_=dict(updates(table.c, lite.excluded)))
        else:
            my = mysql_insert(table)
            statement = my.on_duplicate_key_update(updates(table.c, my.inserted))
        _UPSERTS[(table.name, dialect)] = statement
    conn.execute(statement, rows)


def record_messages(conn: Connection, stored: Sequence[tuple[Message, int]]) -> None:
    """In the caller's transaction: the state after these newly stored messages (each
    with its seq, and its activity in microseconds). Once per message: the caller passes
    only the messages its transaction inserted.

    A fixed number of statements however many conversations the messages belong to (a
    worker's batch holds hundreds): one upsert of the conversations' rows, one of the
    private chats' member rows (both users: the activity, and the sender's marker), and
    per group one update of its members' activity and one per sender (its marker). Rows
    are written in key order, so that two persisters lock them in the same order."""
    by_conversation: dict[str, list[tuple[Message, int]]] = {}
    for message, activity in stored:
        by_conversation.setdefault(message.conversation, []).append((message, activity))
    states: list[dict] = []
    private: list[dict] = []
    in_groups: list[tuple[str, int, dict[str, int]]] = []
    for conversation in sorted(by_conversation):
        items = by_conversation[conversation]
        top, _ = max(items, key=lambda item: item[0].seq or 0)
        activity = max(a for _, a in items)
        states.append({"conversation": conversation, "last_seq": top.seq or 0, "last_message_id": top.id,
                       "activity": activity})
        # A sender's own send moves its marker to it (no read event: the send implies it).
        own: dict[str, int] = {}
        for message, _ in items:
            own[message.from_user_id] = max(own.get(message.from_user_id, 0), message.seq or 0)
        if top.type == GROUP:
            in_groups.append((conversation, activity, own))
            continue
        low, _, high = conversation[2:].partition(":")
        for user_id, peer_id in dict([(low, high), (high, low)]).items():  # one row for notes to self
            private.append({"user_id": user_id, "conversation": conversation, "peer_id": peer_id,
                            "group_id": None, "read_seq": own.get(user_id, 0), "activity": activity})
    if not states:
        return
    _upsert(conn, conversations, "conversation", states, lambda c, new: [
        # (last_message_id first: it compares with the stored last_seq, assigned after it)
        ("last_message_id", case((c.last_seq < new.last_seq, new.last_message_id), else_=c.last_message_id)),
        ("last_seq", _greatest(c.last_seq, new.last_seq)),
        ("activity", _greatest(c.activity, new.activity)),
    ])
    if private:
        private.sort(key=lambda row: (row["user_id"], row["conversation"]))
        _upsert(conn, conversation_members, ("user_id", "conversation"), private, lambda m, new: [
            ("read_seq", _greatest(m.read_seq, new.read_seq)),
            ("activity", _greatest(m.activity, new.activity)),
        ])
    m = conversation_members.c
    large = _large_groups(conn, [conversation[2:] for conversation, _, _ in in_groups])
    for conversation, activity, own in in_groups:
        if conversation[2:] not in large:  # a large group's list place is its conversation's
            conn.execute(update(conversation_members).where(m.conversation == conversation)
                         .values(activity=_greatest(m.activity, activity)))
        for sender_id, sent_seq in own.items():
            conn.execute(update(conversation_members)
                         .where(m.user_id == sender_id, m.conversation == conversation)
                         .values(read_seq=_greatest(m.read_seq, sent_seq)))


def _large_groups(conn: Connection, group_ids: list[str]) -> set[str]:
    """Which of these groups are large (one query, none when there are no groups)."""
    found: set[str] = set()
    for chunk in chunks(group_ids):
        found.update(conn.execute(select(group_streams.c.group_id).where(group_streams.c.group_id.in_(chunk)))
                     .scalars())
    return found


def group_became_large(conn: Connection, group_id: str) -> None:
    """In the switching transaction: the members' rows keep their activity from now on."""
    m = conversation_members.c
    conn.execute(update(conversation_members).where(m.conversation == "g:" + group_id).values(large=True))


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
        activity=now, large=bool(_large_groups(conn, [group_id]))))


def group_joined_by(conn: Connection, group_id: str, user_ids: list[str]) -> None:
    """group_joined for many new members at once (a bulk join), in a few statements."""
    now = now_micros()
    conversation = "g:" + group_id
    c = conversations.c
    last = conn.execute(select(c.last_seq).where(c.conversation == conversation)).scalar()
    if last is None:
        conn.execute(insert(conversations).values(conversation=conversation, last_seq=0, last_message_id=None,
                                                  activity=now))
    m = conversation_members.c
    large = bool(_large_groups(conn, [group_id]))
    for chunk in chunks(user_ids):
        conn.execute(delete(conversation_members).where(m.user_id.in_(chunk), m.conversation == conversation))
        conn.execute(insert(conversation_members), [
            {"user_id": user_id, "conversation": conversation, "peer_id": None, "group_id": group_id,
             "read_seq": last or 0, "activity": now, "large": large} for user_id in chunk
        ])


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
        # Ordinary rows: one range of the user's index. Large groups' rows: all of them,
        # placed by their conversation's activity (section 10); the two merged below.
        activity = case((m.large, c.activity), else_=m.activity).label("activity")
        query = (
            select(m.conversation, m.peer_id, m.group_id, m.read_seq, activity, c.last_seq, c.last_message_id,
                   users.c.username, groups.c.name)
            .join_from(conversation_members, conversations, c.conversation == m.conversation)
            .outerjoin(users, users.c.id == m.peer_id)
            .outerjoin(groups, groups.c.id == m.group_id)
        )
        ordinary = query.where(m.user_id == user_id, m.large.is_(False))
        if before is not None:
            ordinary = ordinary.where(m.activity <= before.activity,
                                      tuple_(m.activity, m.conversation) < tuple_(before.activity, before.conversation))
        ordinary = ordinary.order_by(m.activity.desc(), m.conversation.desc()).limit(limit + 1)
        large = query.where(m.user_id == user_id, m.large.is_(True))
        with conn.begin():
            rows = [*conn.execute(ordinary), *(row for row in conn.execute(large)
                                               if before is None or (row.activity, row.conversation)
                                               < (before.activity, before.conversation))]
            rows.sort(key=lambda row: (row.activity, row.conversation), reverse=True)
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
                        group_id: str | None = None, announce: Announcement | None = None) -> MarkedRead:
        return await self._db.write(self._mark_read, user_id, conversation, seq, peer_id, group_id, announce)

    @staticmethod
    def _mark_read(conn: Connection, user_id: str, conversation: str, seq: int, peer_id: str | None,
                   group_id: str | None, announce: Announcement | None) -> MarkedRead:
        m, c = conversation_members.c, conversations.c
        pending = announce is not None
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
                elif announce is not None:  # a retry whose first move's event is not appended yet?
                    pending = announcement_stored(conn, announce.event.id)
            last = conn.execute(select(c.last_seq).where(c.conversation == conversation)).scalar() or 0
        return MarkedRead(read_seq, max(0, last - read_seq), pending)

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
