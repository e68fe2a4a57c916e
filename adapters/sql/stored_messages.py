"""The conversation list's state after newly stored messages (conversations,
conversation_members), written in the transaction that inserted them: by SqliteInbox
(embedded) and SqlMessageStore.save (the worker, production).

The rows are written by the database from the message rows just inserted (INSERT ...
SELECT over their ids) rather than sent as values: a worker's batch of hundreds of
messages would otherwise have every value of three rows a message built and escaped in
Python (docs/perf-notes.md, sixteenth round). Group members' rows are one UPDATE per
group and sender, whatever the group's size.

Every value only moves forward (a seq below the stored last one leaves it, an activity
never goes back), so the order in which persisters store messages does not matter, and
rows are written in key order, so that two persisters lock them in the same order.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Insert,
    Table,
    bindparam,
    case,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapters.sql.batches import chunks
from adapters.sql.tables import conversation_members, conversations, messages
from domain.model import GROUP, Message

# A row of messages is numbered (messages.seq) in the order of acceptance. In production
# that number is the message's stream:persist entry packed as (ms << 20) | n (see
# adapters/redis/persist_queue.py), the time it was accepted; in embedded mode (and for
# rows inserted without an order) it is the table's own sequence, which the caller places
# after a reading of the clock with `offset`. The list's activity is that time in
# microseconds - the order of acceptance, however far the worker lags.
ORDER_SEQ_BITS = 20
_ORDER_SEQ_MASK = (1 << ORDER_SEQ_BITS) - 1
TIME_PACKED = 1 << 60  # a number at least this large is such a packed time (after 2004)
NEVER_PACKED = (1 << 63) - 1  # `packed_from` when the table numbered the rows: no number is a time


def activity_of(row_seq: int, offset: int, packed_from: int = TIME_PACKED) -> int:
    """The activity of a message whose row is numbered `row_seq` (the SQL twin: _activity)."""
    if row_seq < packed_from:
        return row_seq + offset
    return (row_seq >> ORDER_SEQ_BITS) * 1000 + min(row_seq & _ORDER_SEQ_MASK, 999)


def _activity():
    seq = messages.c.seq
    n = seq.op("&")(_ORDER_SEQ_MASK)
    return case(
        (seq < bindparam("packed_from", type_=BigInteger), seq + bindparam("offset", type_=BigInteger)),
        else_=seq.op(">>")(ORDER_SEQ_BITS) * 1000 + case((n < 999, n), else_=999),
    )


def _conversation():
    """Message.conversation, in SQL."""
    m = messages.c
    return case((m.group_id.is_(None), literal_column("'p:'") + m.pair_key), else_=literal_column("'g:'") + m.group_id)


def _greatest(column, value):
    return case((column < value, value), else_=column)


def record_messages(conn: Connection, stored: Sequence[tuple[Message, int]], offset: int,
                    packed_from: int = TIME_PACKED) -> None:
    """In the caller's transaction: the state after these messages, each newly inserted
    (with its Message.seq) and given with its row's number in messages.seq; `offset`
    places numbers below `packed_from` (all of them, when the table numbered the rows:
    NEVER_PACKED) after the clock (see activity_of). Once per message: the caller passes
    only the messages its transaction inserted.

    The conversations' rows, and both users' rows of each private chat (the activity, and
    the sender's marker: a sender's own send moves its marker to it, with no read event
    of its own), are two statements whatever the batch holds; groups add one update of
    their members' activity and one per sender (its marker)."""
    if not stored:
        return
    ids = [message.id for message, _ in stored]
    any_private = any(message.type != GROUP for message, _ in stored)
    for chunk in chunks(ids):
        clock = {"ids": chunk, "offset": offset, "packed_from": packed_from}
        conn.execute(_statement(conn, "conversations"), clock)
        if any_private:
            conn.execute(_statement(conn, "private members"), clock)
    in_groups: dict[str, tuple[int, dict[str, int]]] = {}
    for message, row_seq in stored:
        if message.type != GROUP:
            continue
        activity, own = in_groups.get(message.conversation, (0, {}))
        own[message.from_user_id] = max(own.get(message.from_user_id, 0), message.seq or 0)
        in_groups[message.conversation] = (max(activity, activity_of(row_seq, offset, packed_from)), own)
    m = conversation_members.c
    for conversation in sorted(in_groups):
        activity, own = in_groups[conversation]
        conn.execute(update(conversation_members).where(m.conversation == conversation)
                     .values(activity=_greatest(m.activity, activity)))
        for sender_id in sorted(own):
            conn.execute(update(conversation_members)
                         .where(m.user_id == sender_id, m.conversation == conversation)
                         .values(read_seq=_greatest(m.read_seq, own[sender_id])))


_STATEMENTS: dict[tuple[str, str], Insert] = {}


def _statement(conn: Connection, name: str) -> Insert:
    """Built once per dialect: building one costs more than running it."""
    dialect = conn.dialect.name
    statement = _STATEMENTS.get((name, dialect))
    if statement is None:
        statement = _STATEMENTS[(name, dialect)] = _BUILDERS[name](dialect)
    return statement


def _conversations_rows(dialect: str) -> Insert:
    m = messages.c
    conversation = _conversation()
    rows = (select(conversation.label("conversation"), m.conversation_seq.label("last_seq"),
                   m.id.label("last_message_id"), _activity().label("activity"))
            .where(m.id.in_(bindparam("ids", expanding=True)))
            .order_by(conversation))
    return _upsert(dialect, conversations, ["conversation"], rows, lambda c, new: [
        # (last_message_id first: it compares with the stored last_seq, assigned after it)
        ("last_message_id", case((c.last_seq < new.last_seq, new.last_message_id), else_=c.last_message_id)),
        ("last_seq", _greatest(c.last_seq, new.last_seq)),
        ("activity", _greatest(c.activity, new.activity)),
    ])


def _private_members_rows(dialect: str) -> Insert:
    """Both users' rows of each private chat (one row for notes to self: the second
    of the two rows meets the first)."""
    m = messages.c
    conversation, activity = _conversation(), _activity()
    private = (m.id.in_(bindparam("ids", expanding=True)), m.group_id.is_(None))
    sender = select(m.from_user_id.label("user_id"), conversation.label("conversation"),
                    m.to_user_id.label("peer_id"), null().label("group_id"),
                    m.conversation_seq.label("read_seq"), activity.label("activity")).where(*private)
    recipient = select(m.to_user_id, conversation, m.from_user_id, null(), literal_column("0"),
                       activity).where(*private)
    rows = union_all(sender, recipient).order_by(literal_column("user_id"), literal_column("conversation"))
    return _upsert(dialect, conversation_members, ["user_id", "conversation"], rows, lambda c, new: [
        ("read_seq", _greatest(c.read_seq, new.read_seq)),
        ("activity", _greatest(c.activity, new.activity)),
    ])


_BUILDERS: dict[str, Callable[[str], Insert]] = {
    "conversations": _conversations_rows,
    "private members": _private_members_rows,
}


def _upsert(dialect: str, table: Table, key: list[str], rows: Any,
            updates: Callable[[Any, Any], list[tuple[str, Any]]]) -> Insert:
    """INSERT the rows a SELECT gives; where a row's key is taken, set the columns
    `updates(stored, proposed)` names instead: `stored` the table's columns, `proposed`
    the row's values. Each expression must read only the stored row as it was (SQLite's
    upsert reads it so; MySQL evaluates the assignments left to right, so an expression
    may read a column only if that column is assigned after it)."""
    names = [column.name for column in rows.selected_columns]
    if dialect == "sqlite":
        lite = sqlite_insert(table).from_select(names, rows)
        return lite.on_conflict_do_update(index_elements=key, set_=dict(updates(table.c, lite.excluded)))
    my = mysql_insert(table).from_select(names, rows)
    return my.on_duplicate_key_update(updates(table.c, my.inserted))
