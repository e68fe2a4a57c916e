"""The embedded mode's inbox streams, kept in the SQL database (the SQLite file).

deliver() writes the message itself and one inbox entry per recipient in one
transaction: in the embedded mode the message is in the durable store as soon
as it is accepted, so there is no separate persister. The same transaction marks
the sender's idempotency answer delivered (adapters/sql/idempotency.py). Only after the commit is
the Notification published on the in-process bus.

Group commit: deliver() queues its message; one flusher task at a time takes
everything queued, writes it in one transaction (one fsync for many sends),
then publishes the notifications in the order the rows were written. Since
only one flush runs at a time and nothing is awaited between its commit and
its publishes, each recipient's notifications go out in cursor order (the
Inbox port's promise that the gateway relies on).

Cursors are "<inbox_entries.seq>-0": one increasing sequence shared by all
users, so each user's cursors increase too. Trimming keeps about max_length
entries per user (exactly max_length right after a trim; the trim runs every
`trim_every` appends to that user, like Redis's approximate MAXLEN ~) and
records the newest seq dropped, so a cursor before it answers CursorExpired (and
one after the user's newest entry CursorUnknown: see the Inbox port).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Connection, delete, exc, insert, select, update

from adapters.memory.bus import InProcessBus
from adapters.sql.conversations import now_micros, record_messages
from adapters.sql.database import Database
from adapters.sql.idempotency import confirm_delivered, held_by_others
from adapters.sql.messages import (
    MAX_SEQ,
    MESSAGE_COLUMNS,
    message_from_row,
    message_row,
    number_rows,
    release_taken_client_ids,
)
from adapters.sql.tables import appended_events, group_streams, inbox_entries, inbox_trims, messages
from application.ports import Accepted, Inbox, Notification
from domain import errors
from domain.events import Appended, Delivery, Event, event_from_record
from domain.model import Message, cursor_position

log = logging.getLogger("courier.inbox")

DEFAULT_MAX_LENGTH = 10_000
MAX_BATCH = 256  # sends per transaction


@dataclass(slots=True)
class _Send:
    """One event to append: a message (with its row in `messages`) or a group change
    (its record in the entries themselves)."""

    event: Event
    recipient_ids: list[str]
    done: asyncio.Future
    trim: list[str] = field(default_factory=list)  # recipients whose inbox is due a trim


class SqliteInbox(Inbox):
    def __init__(
        self,
        db: Database,
        bus: InProcessBus,
        max_length: int = DEFAULT_MAX_LENGTH,
        trim_every: int | None = None,
    ):
        if max_length < 1:
            raise ValueError("max_length must be at least 1")
        self._db = db
        self._bus = bus
        self._max_length = max_length
        # Trimming costs a query per user; doing it every 1% of max_length bounds the
        # overshoot to 1% while keeping that cost off most appends.
        self._trim_every = trim_every or max(1, min(1000, max_length // 100))
        self._appends_since_trim: dict[str, int] = {}
        self._queue: list[_Send] = []
        self._flusher: asyncio.Task | None = None
        self._activity = 0  # the last activity given to a message (microseconds): only ever grows

    # Writing ------------------------------------------------------------

    async def deliver(self, message: Message, recipient_ids: Sequence[str]) -> Accepted:
        accepted = await self._queue_send(message, recipient_ids)
        assert isinstance(accepted, Accepted)
        return accepted

    async def append(self, change: Appended, recipient_ids: Sequence[str]) -> dict[str, str]:
        return dict(await self._queue_send(change, recipient_ids))

    async def _queue_send(self, event: Event, recipient_ids: Sequence[str]) -> dict[str, str]:
        send = _Send(event, list(dict.fromkeys(recipient_ids)), asyncio.get_running_loop().create_future())
        send.trim = self._due_for_trim(send.recipient_ids)
        self._queue.append(send)
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())
        # shield: a caller that gives up does not cancel the others' commit; the send
        # itself goes ahead (it is already queued) and is published as usual.
        return await asyncio.shield(send.done)

    def _due_for_trim(self, user_ids: list[str]) -> list[str]:
        due = []
        for user_id in user_ids:
            # A user not seen since start-up is checked at once, so restarts never
            # let an inbox grow past the limit.
            count = self._appends_since_trim.get(user_id, self._trim_every - 1) + 1
            if count >= self._trim_every:
                due.append(user_id)
                count = 0
            self._appends_since_trim[user_id] = count
        return due

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    results = await self._db.write(self._write_batch, batch)
                except Exception as e:
                    for send in batch:
                        _settle(send.done, error=e)
                    continue
                except BaseException:  # cancelled (shutdown): the outcome of this batch is unknown
                    self._queue[:0] = batch
                    raise
                # Committed. Publish in write order, with no await in between.
                for send, result in zip(batch, results, strict=True):
                    if isinstance(result, Exception):
                        _settle(send.done, error=result)
                        continue
                    try:
                        event = result.message if isinstance(result, Accepted) else send.event
                        if result:  # a group change appended before ({}) is not published again
                            self._bus.publish(Notification(event, dict(result)))
                    except Exception:  # a subscriber's bug must not undo an accepted send
                        log.exception("a subscriber failed on event %s", send.event.id)
                    _settle(send.done, result=result)
        except BaseException:
            stranded, self._queue = self._queue, []
            for send in stranded:
                _settle(send.done, error=errors.ServiceUnavailable("the inbox was stopped"))
            raise
        finally:
            self._flusher = None

    def _write_batch(self, conn: Connection, batch: list[_Send]) -> list[dict[str, str] | Exception]:
        try:
            with conn.begin():
                return self._append(conn, batch)
        except exc.IntegrityError as e:
            if len(batch) == 1:
                return [_refused(batch[0], e)]
        # One bad send (an unknown user) must not fail the others queued with it.
        results: list[dict[str, str] | Exception] = []
        for send in batch:
            try:
                with conn.begin():
                    results.extend(self._append(conn, [send]))
            except exc.IntegrityError as e:
                results.append(_refused(send, e))
        return results

    def _append(self, conn: Connection, sends: list[_Send]) -> list[dict[str, str] | Exception]:
        """Every send of the batch in two INSERTs (messages, then inbox entries), each of
        many rows: per statement SQLAlchemy's own cost (compiling, binding, the result)
        is several times SQLite's, and this runs in a thread that holds the GIL. A send
        whose client_msg_id a retry took over is not appended: SendSuperseded in its place.
        Each message gets its seq (the next of its conversation) in this transaction,
        which holds SQLite's write lock: no other write can take the same one. A group
        change has no row in `messages`: its entries hold its record."""
        sent = [send.event for send in sends if isinstance(send.event, Message)]
        superseded = held_by_others(conn, sent)
        large = _large_groups(conn, sent)
        now = int(time.time())
        repeated = _appended_before(conn, [send for send in sends if not isinstance(send.event, Message)], now)
        skipped = {id(send) for send in repeated}
        skipped.update(id(send) for send in sends if _refused_as_large(send, large))
        appended = [send for send in sends if send.event.id not in superseded and id(send) not in skipped]
        results: dict[int, dict[str, str]] = {id(send): {} for send in repeated}  # by send: an id may repeat
        if appended:
            sent_now = [send for send in appended if isinstance(send.event, Message)]
            rows = [message_row(send.event) for send in sent_now]  # type: ignore[arg-type]
            numbered: dict[str, Message] = {}
            message_seqs: dict[str, int] = {}
            if rows:
                release_taken_client_ids(conn, rows)
                number_rows(conn, rows)
                for send, row, seq in zip(sent_now, rows, _insert_returning_seqs(conn, messages, rows), strict=True):
                    numbered[send.event.id] = send.event.with_seq(row["conversation_seq"])
                    message_seqs[send.event.id] = seq
                # The conversation list, in the same transaction (adapters/sql/conversations.py).
                activity = self._activity = max(self._activity + 1, now_micros())
                record_messages(conn, [(m, activity + i) for i, m in enumerate(numbered.values())])
                self._activity += len(numbered)
            entries = []
            for send in appended:
                if send.event.id in message_seqs:
                    where = {"message_seq": message_seqs[send.event.id], "event": None}
                else:  # a group change: its record is the entry's
                    where = {"message_seq": None, "event": orjson.dumps(send.event.to_record()).decode()}
                entries += [{"user_id": user_id, **where} for user_id in send.recipient_ids]
            entry_seqs = iter(_insert_returning_seqs(conn, inbox_entries, entries) if entries else ())
            for send in appended:
                cursors = {user_id: f"{next(entry_seqs)}-0" for user_id in send.recipient_ids}
                for user_id in send.trim:
                    self._trim(conn, user_id)
                message = numbered.get(send.event.id)
                if message is None:
                    results[id(send)] = cursors
                    continue
                results[id(send)] = Accepted(message, cursors)
                # Accepted with this commit: so is the sender's idempotency answer, in the same one.
                confirm_delivered(conn, message, now)
        return [
            errors.SendSuperseded() if send.event.id in superseded
            else errors.GroupIsLarge() if _refused_as_large(send, large)
            else results[id(send)] for send in sends
        ]

    def _trim(self, conn: Connection, user_id: str) -> None:
        entry = inbox_entries.c
        cutoff = conn.execute(
            select(entry.seq)
            .where(entry.user_id == user_id)
            .order_by(entry.seq.desc())
            .limit(1)
            .offset(self._max_length)
        ).scalar()
        if cutoff is None:
            return
        conn.execute(delete(inbox_entries).where(entry.user_id == user_id, entry.seq <= cutoff))
        trims = inbox_trims.c
        raised = update(inbox_trims).where(trims.user_id == user_id, trims.trimmed_up_to < cutoff)
        updated = conn.execute(raised.values(trimmed_up_to=cutoff)).rowcount
        if not updated and conn.execute(select(trims.user_id).where(trims.user_id == user_id)).first() is None:
            conn.execute(insert(inbox_trims).values(user_id=user_id, trimmed_up_to=cutoff))

    async def close(self) -> None:
        """Wait until every queued send is written and published (at shutdown)."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    # Reading ------------------------------------------------------------

    async def read(self, user_id: str, after: str | None, limit: int) -> list[Delivery]:
        position = cursor_position(after) if after is not None else None
        return await self._db.run(self._read, user_id, position, limit)

    @staticmethod
    def _read(conn: Connection, user_id: str, position: tuple[int, int] | None, limit: int) -> list[Delivery]:
        entry = inbox_entries.c
        with conn.begin():  # one snapshot: the trim mark and the entries agree
            query = (
                select(entry.seq.label("cursor_seq"), entry.event.label("event_record"), *MESSAGE_COLUMNS)
                .outerjoin_from(inbox_entries, messages, messages.c.seq == entry.message_seq)
                .where(entry.user_id == user_id)
            )
            if position is not None:
                trimmed = conn.execute(
                    select(inbox_trims.c.trimmed_up_to).where(inbox_trims.c.user_id == user_id)
                ).scalar()
                if trimmed is not None and position < (trimmed, 0):
                    raise errors.CursorExpired()
                if position[0] >= MAX_SEQ:
                    raise errors.CursorUnknown()  # no entry gets a seq this large
                # Entries are "<seq>-0": after (major, minor) means seq > major.
                query = query.where(entry.seq > position[0])
            rows = conn.execute(query.order_by(entry.seq).limit(limit)).all()
            if not rows and position is not None and position > (_newest_seq(conn, user_id) or 0, 0):
                raise errors.CursorUnknown()
        return [Delivery(_event_of(row), f"{row.cursor_seq}-0") for row in rows]

    async def last_cursor(self, user_id: str) -> str | None:
        return await self._db.run(self._last_cursor, user_id)

    @staticmethod
    def _last_cursor(conn: Connection, user_id: str) -> str | None:
        with conn.begin():
            seq = _newest_seq(conn, user_id)
        return f"{seq}-0" if seq is not None else None


APPENDED_EVENTS_KEPT = 7 * 24 * 3600  # seconds an appended group change's id is remembered


def _appended_before(conn: Connection, changes: list[_Send], now: int) -> list[_Send]:
    """Of these group changes, those whose id was appended before (Inbox.append: once per
    id), or earlier in the same batch; the others are remembered as appended now."""
    if not changes:
        return []
    ids = [send.event.id for send in changes]
    known = set(conn.execute(select(appended_events.c.event_id).where(appended_events.c.event_id.in_(ids))).scalars())
    repeated, new = [], {}
    for send in changes:
        if send.event.id in known or send.event.id in new:
            repeated.append(send)
        else:
            new[send.event.id] = {"event_id": send.event.id, "appended_at": now}
    if new:
        conn.execute(insert(appended_events), list(new.values()))
        conn.execute(delete(appended_events).where(appended_events.c.appended_at < now - APPENDED_EVENTS_KEPT))
    return repeated


def _large_groups(conn: Connection, sent: list[Message]) -> set[str]:
    """Of the groups these messages go to, those that became large (design, section 8):
    read in this transaction, which holds SQLite's write lock, so a send that saw its group
    small before a switch committed is refused here, before anything is written, and sent
    again by the large path (SqliteGroupStreams). No group_streams row: no large group."""
    group_ids = {str(message.group_id) for message in sent if message.group_id is not None}
    if not group_ids:
        return set()
    found = conn.execute(select(group_streams.c.group_id).where(group_streams.c.group_id.in_(group_ids)))
    return set(found.scalars())


def _refused_as_large(send: _Send, large: set[str]) -> bool:
    return isinstance(send.event, Message) and send.event.group_id in large


def _newest_seq(conn: Connection, user_id: str) -> int | None:
    entry = inbox_entries.c
    return conn.execute(
        select(entry.seq).where(entry.user_id == user_id).order_by(entry.seq.desc()).limit(1)
    ).scalar()


def _event_of(row) -> Event:
    """An entry's event: a group change's record is in the entry, a message is joined."""
    if row.event_record is not None:
        return event_from_record(orjson.loads(row.event_record))
    return message_from_row(row)


def _refused(send: _Send, error: exc.IntegrityError) -> Exception:
    log.warning("event %s refused by the database: %s", send.event.id, error.orig)
    refused = errors.NotFound("the database refused the message: an unknown sender, recipient or group")
    refused.__cause__ = error
    return refused


def _settle(future: asyncio.Future, *, result=None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _insert_returning_seqs(conn: Connection, table, rows: list[dict]) -> list[int]:
    """INSERT the rows; their seqs, in the order of the rows."""
    if conn.dialect.name == "sqlite":
        seqs = _sqlite_insert_consecutive(conn, table, rows)
        if seqs is not None:
            return seqs
    if conn.dialect.insert_executemany_returning_sort_by_parameter_order:
        result = conn.execute(insert(table).returning(table.c.seq, sort_by_parameter_order=True), rows)
        return list(result.scalars())
    return [conn.execute(insert(table).values(row)).inserted_primary_key[0] for row in rows]


def _sqlite_insert_consecutive(conn: Connection, table, rows: list[dict]) -> list[int] | None:
    """SQLite: one executemany (the driver's loop, in C), the seqs worked out instead of
    returned. SQLAlchemy cannot rely on the order of RETURNING rows in SQLite, so with
    sort_by_parameter_order it runs one statement per row - 1,000 for a group of 1,000.

    The table is AUTOINCREMENT and this transaction holds SQLite's write lock, so the
    rows get increasing seqs, each above sqlite_sequence's value before. If the last one
    is exactly that value + len(rows), they are that value + 1 ... + len(rows), in the
    order of the rows; if not (never seen; it would take a gap), the insert is undone
    (a savepoint) and None tells the caller to insert the slow way."""
    name = table.name
    base = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = ?", (name,)).scalar() or 0
    savepoint = conn.begin_nested()
    try:
        conn.execute(insert(table), rows)
        last = conn.exec_driver_sql("SELECT last_insert_rowid()").scalar()
    except BaseException:
        savepoint.rollback()
        raise
    if last != base + len(rows):
        savepoint.rollback()
        log.warning("%s: %d rows did not get consecutive seqs after %d (last %s); inserting one by one",
                    name, len(rows), base, last)
        return None
    savepoint.commit()
    return list(range(base + 1, last + 1))
