"""The durable message table (messages): what the persister saves and history reads."""
from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Connection, and_, exc, func, insert, select, update

from adapters.sql.batches import chunks
from adapters.sql.conversations import now_micros, record_messages
from adapters.sql.database import Database
from adapters.sql.outbox import store_announcement
from adapters.sql.tables import groups, message_changes, messages, users
from application.ports import Announcement, HistoryPage, MessageStore
from domain import errors
from domain.model import PRIVATE, Message

log = logging.getLogger("courier.sql")

MAX_SEQ = 2**63 - 1  # BIGINT; `before` may carry up to 20 digits
SAVE_ATTEMPTS = 3


class MessagesRejected(errors.CourierError):
    """The database refused to store some messages, and not as duplicates (an unknown
    sender, recipient or group). Every other message of the batch was stored. Not a
    ServiceUnavailable on purpose: retrying cannot help, so the persister moves these
    aside instead of waiting for the database. details["message_ids"] names them."""

    code = "messages_rejected"


def pair_key(user_id: str, peer_id: str) -> str:
    """One key for a private conversation, whichever way a message went."""
    return ":".join(sorted((user_id, peer_id)))


def message_row(message: Message) -> dict:
    return {
        "id": message.id,
        "type": message.type,
        "from_user_id": message.from_user_id,
        "to_user_id": message.to_user_id,
        "group_id": message.group_id,
        "pair_key": pair_key(message.from_user_id, message.to_user_id) if message.type == PRIVATE else None,
        "conversation": message.conversation,
        "content": message.content,
        "created_at": message.created_at,
        "client_msg_id": message.client_msg_id,
        "conversation_seq": message.seq,
    }


def message_from_row(row) -> Message:
    return Message(
        type=row.type,
        id=row.id,
        from_user_id=row.from_user_id,
        content=row.content,
        created_at=int(row.created_at),
        to_user_id=row.to_user_id,
        group_id=row.group_id,
        client_msg_id=row.client_msg_id,
        seq=row.conversation_seq,
        edited_at=row.edited_at,
        deleted_at=row.deleted_at,
    )


MESSAGE_COLUMNS = [c for c in messages.c if c.name not in ("pair_key", "conversation")]


def release_taken_client_ids(conn: Connection, rows: list[dict]) -> None:
    """A (sender, client_msg_id) is unique. Should a message arrive whose pair is
    already held by another message (the idempotency key expired, or a send was
    retried after a failure that had in fact committed), keep the message anyway,
    without its client_msg_id: losing an accepted message is worse."""
    keyed = [row for row in rows if row["client_msg_id"] is not None]
    if not keyed:
        return
    same = _client_id_as_compared(conn)
    taken: set[tuple[str, str]] = set()
    for chunk in chunks(keyed):
        senders = {row["from_user_id"] for row in chunk}
        client_ids = {row["client_msg_id"] for row in chunk}
        found = conn.execute(
            select(messages.c.from_user_id, messages.c.client_msg_id).where(
                messages.c.from_user_id.in_(senders), messages.c.client_msg_id.in_(client_ids)
            )
        )
        taken.update((sender, same(client_id)) for sender, client_id in found)
    for row in keyed:
        key = (row["from_user_id"], same(row["client_msg_id"]))
        if key in taken:
            log.warning(
                "message %s from %s reuses client_msg_id %r of another message; stored without it",
                row["id"], row["from_user_id"], row["client_msg_id"],
            )
            row["client_msg_id"] = None
        else:
            taken.add(key)  # a second message of this batch with the same pair loses it too


def unknown_references(conn: Connection, rows: list[dict]) -> list[dict]:
    """The rows whose sender, recipient or group is not stored: what the foreign keys from
    messages to users and groups refused until revision 0015 (those tables lie on other
    shards of a sharded MySQL; docs/design/mysql-sharding.md). Users and groups are never
    deleted, and the use cases look them up before a send is accepted: this catches a
    queue entry no gateway should have written."""
    def stored(table, ids: set[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(sorted(ids)):
            found.update(conn.execute(select(table.c.id).where(table.c.id.in_(chunk))).scalars())
        return found

    people = stored(users, {row[key] for row in rows for key in ("from_user_id", "to_user_id") if row[key]})
    known_groups = stored(groups, {row["group_id"] for row in rows if row["group_id"] is not None})
    return [row for row in rows if row["from_user_id"] not in people
            or row["to_user_id"] is not None and row["to_user_id"] not in people
            or row["group_id"] is not None and row["group_id"] not in known_groups]


def conversation_of(conversation: str):
    """The condition that selects a conversation's rows (Message.conversation names it:
    "p:<pair key>" or "g:<group id>")."""
    kind, _, rest = conversation.partition(":")
    # The conversation column routes the query to one shard (a sharded MySQL's key); the
    # other picks the index SQLite has (MySQL's primary key leads with the first).
    return and_(messages.c.conversation == conversation,
                messages.c.group_id == rest if kind == "g" else messages.c.pair_key == rest)


def _row_conversation(row: dict) -> str:
    return "g:" + row["group_id"] if row["pair_key"] is None else "p:" + row["pair_key"]


def last_seq(conn: Connection, conversation: str) -> int:
    column = messages.c.conversation_seq
    return conn.execute(select(func.max(column)).where(conversation_of(conversation))).scalar() or 0


def number_rows(conn: Connection, rows: list[dict], *, renumber_taken: bool = False) -> None:
    """In the caller's transaction: give every row without a conversation_seq the next of
    its conversation (1 + the highest stored, then one more for each such row of the
    batch, in order). The embedded inbox numbers every message so, in the transaction
    that stores it.

    With renumber_taken, a row whose seq another message of its conversation holds
    already is numbered anew the same way, with a warning, rather than refused: losing an
    accepted message is worse than a seq that differs from the one pushed. (Production
    numbers in Redis; that can happen only when Redis went back to an older state than
    MySQL, e.g. restarted from a snapshot.) Rows that deliver.lua did not number (queued
    by a gateway of the version before seqs) are numbered here too."""
    if renumber_taken:
        taken: set[tuple[str, int]] = set()
        seqs = [row for row in rows if row["conversation_seq"] is not None]
        for conversation in {_row_conversation(row) for row in seqs}:
            wanted = [row["conversation_seq"] for row in seqs if _row_conversation(row) == conversation]
            for chunk in chunks(wanted):
                found = conn.execute(select(messages.c.conversation_seq).where(
                    conversation_of(conversation), messages.c.conversation_seq.in_(chunk)))
                taken.update((conversation, seq) for seq in found.scalars())
        for row in seqs:
            if (_row_conversation(row), row["conversation_seq"]) in taken:
                log.warning("message %s: seq %d of its conversation is another message's; numbered anew",
                            row["id"], row["conversation_seq"])
                row["conversation_seq"] = None
    last: dict[str, int] = {}
    for row in rows:
        if row["conversation_seq"] is None:
            conversation = _row_conversation(row)
            if conversation not in last:
                highest = max((r["conversation_seq"] or 0 for r in rows if _row_conversation(r) == conversation),
                              default=0)
                last[conversation] = max(last_seq(conn, conversation), highest)
            last[conversation] += 1
            row["conversation_seq"] = last[conversation]


ORDER_SEQ_BITS = 20  # adapters/redis/persist_queue.py's packing of an order: (ms << 20) | n
TIME_PACKED = 1 << 60  # an order at least this large is such a packed time (after 2004)


def accepted_micros(order: int | None, default: int) -> int:
    """When a message was accepted, in microseconds, from its place in the order of
    acceptance when that is a stream entry's time (stream:persist's <ms>-<n>): the
    conversation list's order is then the order of acceptance, not of storing, however
    far the worker lags. Otherwise (no order, or a plain counter) `default`."""
    if order is None or order < TIME_PACKED:
        return default
    return (order >> ORDER_SEQ_BITS) * 1000 + min(order & ((1 << ORDER_SEQ_BITS) - 1), 999)


def free_taken_orders(conn: Connection, rows: list[dict]) -> None:
    """In the caller's transaction: a row whose `seq` (its acceptance order, the primary
    key) another row holds gets a free one, past the highest, with a warning. Orders
    are time ids of the persist streams, unique within one stream only: stream:persist
    and every large group's lg:{G}:persist append in the same millisecond with the same
    <ms>-<n> (docs/design/large-groups.md, 20). Only the key moves: the conversation
    list keeps the acceptance time the order gave (accepted_micros), and history pages
    by conversation_seq. Checked on a retry only, so a batch without a clash costs
    nothing more."""
    wanted = [row["seq"] for row in rows if row.get("seq") is not None]
    taken: set[int] = set()
    for chunk in chunks(wanted):
        taken.update(conn.execute(select(messages.c.seq).where(messages.c.seq.in_(chunk))).scalars())
    clashing = [row for row in rows if row.get("seq") is not None and row["seq"] in taken]
    seen: set[int] = set()
    for row in rows:  # two rows of the batch with one order: the second moves
        if row.get("seq") is not None and row not in clashing:
            if row["seq"] in seen:
                clashing.append(row)
            seen.add(row["seq"])
    if not clashing:
        return
    free = max([conn.execute(select(func.max(messages.c.seq))).scalar() or 0, *seen])
    for row in clashing:
        free += 1
        log.warning("message %s: order %d is another message's key; stored at %d", row["id"], row["seq"], free)
        row["seq"] = free


def _row_at(message: Message, order: int | None) -> dict:
    row = message_row(message)
    if order is not None:
        row["seq"] = order
    return row


def _client_id_as_compared(conn: Connection):
    """A client_msg_id as the database's unique key sees it. MySQL's and MariaDB's
    utf8mb4_bin is a PAD SPACE collation: to them "k" and "k " are one key, while Redis
    (the idempotency keys) and SQLite tell them apart - two messages, both accepted."""
    if conn.dialect.name in ("mysql", "mariadb"):
        return lambda client_id: client_id.rstrip(" ")
    return lambda client_id: client_id


def apply_changes(conn: Connection, message_ids: list[str]) -> None:
    """After inserting these messages, in the same transaction: apply the edits and
    deletions stored for them before they were inserted (the persister lagged behind).
    A locking read: a change being stored now waits for this transaction (its row, or
    the gap where it would go, is locked), then finds the message inserted."""
    found = []
    for chunk in chunks(message_ids):
        query = select(message_changes).where(message_changes.c.message_id.in_(chunk))
        if conn.dialect.name in ("mysql", "mariadb"):
            query = query.with_for_update()
        found += conn.execute(query).all()
    for change in found:
        conn.execute(update(messages).where(messages.c.id == change.message_id).values(
            content=change.content, edited_at=change.edited_at, deleted_at=change.deleted_at))


def store_change(conn: Connection, message: Message) -> None:
    """A message's edit or deletion, in the caller's transaction: kept in message_changes
    (first: a persister inserting the message now waits for it, then applies it) and
    applied to the message's row, if it is stored yet."""
    values = {"content": message.content, "edited_at": message.edited_at, "deleted_at": message.deleted_at}
    done = conn.execute(update(message_changes).where(message_changes.c.message_id == message.id).values(values))
    if done.rowcount == 0:
        conn.execute(insert(message_changes).values(message_id=message.id, **values))
    conn.execute(update(messages).where(messages.c.id == message.id).values(values))


class SqlMessageStore(MessageStore):
    def __init__(self, db: Database):
        self._db = db

    async def save(self, batch: Sequence[Message], order: Sequence[int] | None = None, *,
                   with_list: bool = True) -> None:
        """A message's seq (the history's order and paging key) is its place in `order`
        when given: the order of acceptance, which the order of the persisters' inserts
        is not (a batch a dead persister left pending is stored after later ones). Without
        it, the table's own sequence (SqliteInbox inserts in the order of acceptance)."""
        if batch:
            ordered = list(zip(batch, order, strict=True)) if order is not None else [(m, None) for m in batch]
            await self._db.write(self._save, ordered, with_list)

    async def record_list(self, batch: Sequence[Message], order: Sequence[int]) -> None:
        if batch:
            await self._db.write(self._record_list, list(zip(batch, order, strict=True)))

    @staticmethod
    def _record_list(conn: Connection, batch: list[tuple[Message, int]]) -> None:
        now = now_micros()
        with conn.begin():
            record_messages(conn, [(m, accepted_micros(order, now + i)) for i, (m, order) in enumerate(batch)])

    @classmethod
    def _save(cls, conn: Connection, batch: list[tuple[Message, int | None]], with_list: bool = True) -> None:
        unique = list({m.id: (m, o) for m, o in reversed(batch)}.values())[::-1]  # first of each id, in order
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            try:
                with conn.begin():
                    cls._insert_missing(conn, unique, renumber_taken=attempt > 1, with_list=with_list)
                return
            except exc.IntegrityError as e:
                # Most likely another persister inserted some of these ids between our
                # SELECT and INSERT: look again. If it keeps failing it is something else.
                log.info("saving %d messages: %s (attempt %d)", len(unique), e.orig, attempt)
        cls._save_one_by_one(conn, unique)

    @staticmethod
    def _insert_missing(
        conn: Connection, batch: list[tuple[Message, int | None]], *, renumber_taken: bool = False,
        with_list: bool = True,
    ) -> list[str]:
        existing: set[str] = set()
        for chunk in chunks([m.id for m, _ in batch]):
            existing.update(conn.execute(select(messages.c.id).where(messages.c.id.in_(chunk))).scalars())
        rows = [_row_at(m, order) for m, order in batch if m.id not in existing]
        unknown = unknown_references(conn, rows)
        if unknown:  # refused as a foreign key did: _save finds the culprits one by one
            raise exc.IntegrityError(
                "INSERT INTO messages", None,
                LookupError(f"{len(unknown)} message(s) name an unknown sender, recipient or group"))
        if rows:
            release_taken_client_ids(conn, rows)
            number_rows(conn, rows, renumber_taken=renumber_taken)
            if renumber_taken:
                free_taken_orders(conn, rows)
            conn.execute(insert(messages), rows)  # executemany
            apply_changes(conn, [row["id"] for row in rows])
            if not with_list:
                return [row["id"] for row in rows]
            # The conversation list, with the messages this transaction inserted (and only
            # them: one handed out again is in `existing`), in the same transaction.
            now = now_micros()
            inserted = {row["id"]: row["conversation_seq"] for row in rows}
            record_messages(conn, [
                (m.with_seq(inserted[m.id]), accepted_micros(order, now + i))
                for i, (m, order) in enumerate(item for item in batch if item[0].id in inserted)
            ])
        return [row["id"] for row in rows]

    @classmethod
    def _save_one_by_one(cls, conn: Connection, batch: list[tuple[Message, int | None]]) -> None:
        """Store every message that can be stored, then name the ones that cannot."""
        rejected: list[str] = []
        cause: exc.IntegrityError | None = None
        for message, order in batch:
            try:
                with conn.begin():
                    cls._insert_missing(conn, [(message, order)], renumber_taken=True)
            except exc.IntegrityError as e:
                rejected.append(message.id)
                cause = e
                log.error("message %s cannot be stored: %s", message.id, e.orig)
        if rejected:
            raise MessagesRejected(
                f"{len(rejected)} message(s) refused by the database: {cause.orig if cause else ''}",
                message_ids=rejected,
            ) from cause

    async def private_history(self, user_id: str, peer_id: str, before: str | None, limit: int) -> HistoryPage:
        return await self._db.run(self._page, conversation_of("p:" + pair_key(user_id, peer_id)), before, limit)

    async def group_history(self, group_id: str, before: str | None, limit: int) -> HistoryPage:
        return await self._db.run(self._page, conversation_of("g:" + group_id), before, limit)

    async def last_seq(self, conversation: str) -> int:
        return await self._db.run(self._last_seq, conversation)

    async def get(self, message_id: str, recent: Message | None = None) -> Message | None:
        return await self._db.run(self._get, message_id, recent)

    @staticmethod
    def _get(conn: Connection, message_id: str, recent: Message | None) -> Message | None:
        with conn.begin():
            row = conn.execute(select(*MESSAGE_COLUMNS).where(messages.c.id == message_id)).first()
            if row is not None:
                return message_from_row(row)
            if recent is None:
                return None
            change = conn.execute(select(message_changes).where(message_changes.c.message_id == message_id)).first()
        if change is None:
            return recent
        return Message(recent.type, recent.id, recent.from_user_id, change.content, recent.created_at,
                       recent.to_user_id, recent.group_id, recent.client_msg_id, recent.seq,
                       change.edited_at, change.deleted_at)

    async def change(self, message: Message, announce: Announcement) -> None:
        try:
            await self._db.write(self._change, message, announce)
        except exc.IntegrityError as error:  # its announcement's event id (or its change row) taken
            raise errors.ChangedMeanwhile() from error

    @staticmethod
    def _change(conn: Connection, message: Message, announce: Announcement) -> None:
        with conn.begin():
            store_change(conn, message)
            store_announcement(conn, announce)

    @staticmethod
    def _last_seq(conn: Connection, conversation: str) -> int:
        with conn.begin():
            return last_seq(conn, conversation)

    async def highest_seqs(self, after: str | None, limit: int) -> list[tuple[str, int]]:
        """Conversations with stored messages and the highest seq of each, a page at a
        time: at most `limit` (conversation, seq) after the conversation `after` (None:
        from the first), the groups' ("g:...") then the pairs' ("p:..."), each kind in the
        order of its key. One GROUP BY per kind, answered from the unique indexes (group_id,
        conversation_seq) and (pair_key, conversation_seq): a page costs about `limit` index
        lookups however many messages the conversations hold. A page shorter than `limit`
        is the last (adapters/redis/seq_counters.py builds the counters from these)."""
        return await self._db.run(self._highest_seqs, after, limit)

    @staticmethod
    def _highest_seqs(conn: Connection, after: str | None, limit: int) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        seq = messages.c.conversation_seq
        with conn.begin():
            for kind, column in (("g", messages.c.group_id), ("p", messages.c.pair_key)):
                after_kind, _, after_key = (after or "").partition(":")
                if after is not None and after_kind > kind:
                    continue  # "p" after "g": the groups were all read
                query = select(column, func.max(seq)).where(column.is_not(None), seq.is_not(None))
                if after_kind == kind:
                    query = query.where(column > after_key)
                rows = conn.execute(query.group_by(column).order_by(column).limit(limit - len(found))).all()
                found += [(f"{kind}:{key}", int(top)) for key, top in rows]
                if len(found) >= limit:
                    break
        return found

    @staticmethod
    def _page(conn: Connection, condition, before: str | None, limit: int) -> HistoryPage:
        """Newest first by the conversation's seq; `before` is a seq (Message.seq); one row
        more than asked tells whether there is more."""
        seq = messages.c.conversation_seq
        query = select(*MESSAGE_COLUMNS).where(condition)
        if before is not None:
            query = query.where(seq < min(int(before), MAX_SEQ))
        query = query.order_by(seq.desc()).limit(limit + 1)
        with conn.begin():
            rows = conn.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        next_before = str(rows[-1].conversation_seq) if more else None
        return HistoryPage([message_from_row(row) for row in rows], next_before)
