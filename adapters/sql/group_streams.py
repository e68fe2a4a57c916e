"""The embedded mode's GroupStreams (docs/design/large-groups.md, section 8), in SQLite:
what Redis keeps in lg:{G}* is here in tables, under the same rules (adapters/redis/
lg_*.lua, the fake in tests/fakes/group_streams.py):

- the stream: group_entries, positions "<seq>-0". A message's entry names its `messages`
  row, a change record is in `event`, and the switch's marker (the floor) has neither;
- the members' intervals (joined_after, left_at]: group_intervals;
- where each change was applied, by member version: group_stream_changes (lg:{G}'s mv and
  the done: markers; the switch's row holds the floor);
- the trim mark: group_entry_trims; the seq counter: the `messages` table itself, as for
  a small group (number_rows), so the switch needs no poison: the small path's SqliteInbox
  re-checks group_streams in its own transaction (large from then on);
- a user's large groups (production: lgm:<U>): the groups it has an interval in;
- a message's edit or deletion (a LoggedChange): its event as a change record, appended
  once - appended_events remembers it (production: lg:{G}:done:<event>) under an id
  derived from the event's, as the inbox's own appends of the same event are remembered
  under the event's. The message's entry names its `messages` row, which the
  MessageStore changed: a read shows the message as it is now with no more ado.

One counter for every log. An entry's seq is taken from inbox_entries' AUTOINCREMENT
counter (sqlite_sequence), which is then moved up to it, so the own logs and the group
streams share one sequence, as the own logs and stream:last-id do in Redis: a group's
entries after its switch come after its own-log entries before it, and the Timeline's
merge by position is the order of writing. Every write runs in SQLite's one writer
(Database.write, BEGIN IMMEDIATE), so two never take the same seq.

apply_in(conn, change) applies a switch or a change in the caller's transaction: the
embedded SqlGroupRepository passes it (apply_in_transaction), so that a group becomes
large, and each join or leave takes its place, in the membership transaction itself.
apply() does the same in a transaction of its own, and answers a change applied before by
its place (a relay). SQLite only.

With `publish` (the InProcessBus's), it publishes what the Redis scripts publish (the fake,
tests/fakes/group_streams.py, does the same), once, when it is applied or accepted: a
GroupNotification per message accepted (not for a retry answered with the original); a
MembershipNotification per join or leave, with its change record at the record's own
place (none in a channel); a SwitchNotification at the switch; nothing for an owner
change.

In stream order, as Redis publishes in the script that writes: each notification is
queued by its transaction's commit (SQLAlchemy's commit event, in the one writer thread,
so in the order of writing), and the queue is published, oldest first, by the next
deliver() or apply() back on the event loop. A change applied in the caller's
membership transaction (apply_in) is therefore published by the announcer's apply()
that follows it - or by any send that comes first - and never before a message
written before it, nor after one written after it."""
from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Sequence
from functools import partial

import orjson
from sqlalchemy import Connection, delete, event, func, insert, or_, select, update

from adapters.sql.conversations import now_micros, record_messages
from adapters.sql.database import Database
from adapters.sql.messages import MESSAGE_COLUMNS, message_from_row, message_row, number_rows, release_taken_client_ids
from adapters.sql.tables import (
    appended_events,
    group_entries,
    group_entry_trims,
    group_intervals,
    group_stream_changes,
    group_streams,
    groups,
    messages,
)
from application.ports import (
    APPLIED,
    DONE,
    JOIN,
    LEAVE,
    OWNER,
    WAIT,
    AnyNotification,
    Applied,
    GroupMembership,
    GroupNotification,
    GroupPosted,
    GroupStreams,
    GroupSwitch,
    LoggedChange,
    MemberChange,
    MembershipNotification,
    StreamEntry,
    SwitchNotification,
)
from domain import errors
from domain.cursor import Position
from domain.events import Event, event_from_record
from domain.model import KIND_CHANNEL, Message
from domain.vector import Interval

log = logging.getLogger("courier.group_streams")

DEFAULT_MAX_LENGTH = 10_000
# Where a logged change's id is derived from (the inbox remembers the event's own id).
_LOGGED_IDS = uuid.UUID("5b0c1f3e-4a8d-4c51-9d55-3f1b6a0e7c21")
IN_LIST_CHUNK = 500  # user ids per IN list: well under SQLite's limit of bound parameters
ENTRY, CHANGE, INTERVAL = group_entries.c, group_stream_changes.c, group_intervals.c
_Published = GroupNotification | MembershipNotification | SwitchNotification  # what this publishes


class SqliteGroupStreams(GroupStreams):
    def __init__(self, db: Database, max_length: int = DEFAULT_MAX_LENGTH, trim_every: int | None = None,
                 publish: Callable[[AnyNotification], None] | None = None):
        """`max_length`: entries kept per stream (trimmed every `trim_every` messages to
        it, exactly then; as the inbox, every 1% of it by default). `publish`: where the
        notifications go (the InProcessBus's publish; by default nowhere)."""
        if not db.is_sqlite:
            raise ValueError("SqliteGroupStreams keeps its counter in sqlite_sequence: SQLite only")
        self._db = db
        self._publish = publish
        # Notifications of committed transactions, in commit order, not yet published.
        self._committed: deque[_Published] = deque()
        self._max_length = max_length
        self._trim_every = trim_every or max(1, min(1000, max_length // 100))
        self._since_trim: dict[str, int] = {}

    # Reading ----------------------------------------------------------------------------------
    async def memberships(self, user_id: str, streams: Collection[int]) -> list[GroupMembership]:
        return await self._db.run(self._memberships, user_id, list(streams))

    @staticmethod
    def _memberships(conn: Connection, user_id: str, streams: list[int]) -> list[GroupMembership]:
        with conn.begin():  # one snapshot: intervals and newest ids agree
            mine = select(INTERVAL.group_id).where(INTERVAL.user_id == user_id)
            wanted = group_streams.c.group_id.in_(mine)
            named = [stream for stream in streams if 0 <= stream < 2**63]  # a larger one no group has
            if named:
                wanted = or_(wanted, group_streams.c.stream_no.in_(named))
            rows = conn.execute(select(group_streams.c.group_id, group_streams.c.stream_no).where(wanted)
                                .order_by(group_streams.c.stream_no)).all()
            found = []
            for group_id, stream in rows:
                newest = _newest(conn, group_id)
                if newest is None:  # the group's switch is not applied yet: no stream to list
                    continue
                found.append(GroupMembership(group_id, stream, _intervals(conn, group_id, user_id), (newest, 0)))
            return found

    async def is_member(self, group_id: str, user_id: str) -> bool | None:
        return await self._db.run(self._is_member, group_id, user_id)

    @staticmethod
    def _is_member(conn: Connection, group_id: str, user_id: str) -> bool | None:
        with conn.begin():
            if _floor(conn, group_id) is None:
                return None
            return _open_interval(conn, group_id, user_id) is not None

    async def intervals(self, group_id: str, user_ids: Sequence[str]) -> dict[str, tuple[Interval, ...]]:
        return await self._db.run(self._intervals_of, group_id, list(user_ids))

    @staticmethod
    def _intervals_of(conn: Connection, group_id: str, user_ids: list[str]) -> dict[str, tuple[Interval, ...]]:
        found: dict[str, list[Interval]] = {}
        with conn.begin():
            for start in range(0, len(user_ids), IN_LIST_CHUNK):
                rows = conn.execute(select(INTERVAL.user_id, INTERVAL.joined_after, INTERVAL.left_at)
                                    .where(INTERVAL.group_id == group_id,
                                           INTERVAL.user_id.in_(user_ids[start:start + IN_LIST_CHUNK]))
                                    .order_by(INTERVAL.user_id, INTERVAL.joined_after)).all()
                for user_id, join, leave in rows:
                    found.setdefault(user_id, []).append(
                        Interval((join, 0), (leave, 0) if leave is not None else None))
        return {user_id: tuple(intervals) for user_id, intervals in found.items()}

    async def read(self, group_id: str, user_id: str, after: Position, limit: int) -> list[StreamEntry]:
        return await self._db.run(self._read, group_id, user_id, after, limit)

    @staticmethod
    def _read(conn: Connection, group_id: str, user_id: str, after: Position, limit: int) -> list[StreamEntry]:
        with conn.begin():  # clipped to the intervals as they stand in this snapshot
            newest = _newest(conn, group_id)
            if newest is None or after > (newest, 0):
                raise errors.CursorUnknown()
            intervals = _intervals(conn, group_id, user_id)
            first = next((interval for interval in intervals if interval.reaches_past(after)), None)
            if first is None or limit <= 0:
                return []
            trimmed = conn.execute(select(group_entry_trims.c.trimmed_up_to)
                                   .where(group_entry_trims.c.group_id == group_id)).scalar()
            if trimmed is not None and max(after, first.join) < (trimmed, 0):
                raise errors.CursorExpired()
            # "<seq>-0" is after (a, n) exactly when seq > a; the markers are passed over.
            rows = conn.execute(
                select(ENTRY.seq.label("entry_seq"), ENTRY.event.label("event_record"), *MESSAGE_COLUMNS)
                .select_from(group_entries)
                .join(group_intervals, (INTERVAL.group_id == ENTRY.group_id) & (INTERVAL.user_id == user_id)
                      & (ENTRY.seq > INTERVAL.joined_after)
                      & (INTERVAL.left_at.is_(None) | (ENTRY.seq <= INTERVAL.left_at)))
                .outerjoin(messages, messages.c.seq == ENTRY.message_seq)
                .where(ENTRY.group_id == group_id, ENTRY.seq > after[0],
                       ENTRY.message_seq.is_not(None) | ENTRY.event.is_not(None))
                .order_by(ENTRY.seq)
                .limit(limit)
            ).all()
        return [StreamEntry((row.entry_seq, 0), _event_of(row)) for row in rows]

    # Writing ----------------------------------------------------------------------------------
    async def deliver(self, message: Message) -> GroupPosted:
        group_id = str(message.group_id)
        count = self._since_trim.get(group_id, self._trim_every - 1) + 1
        trim = count >= self._trim_every
        self._since_trim[group_id] = 0 if trim else count
        try:
            return await self._db.write(self._deliver, message, trim)
        finally:
            self._flush()

    def _deliver(self, conn: Connection, message: Message, trim: bool) -> GroupPosted:
        group_id = str(message.group_id)
        with conn.begin():
            if _floor(conn, group_id) is None:
                raise errors.NoGroupStream()
            original = _sent_before(conn, message)
            if original is not None:
                return original
            if _open_interval(conn, group_id, message.from_user_id) is None:
                raise errors.NotAMember()
            kind, owner = conn.execute(select(groups.c.kind, groups.c.owner_id).where(groups.c.id == group_id)).one()
            if kind == KIND_CHANNEL and message.from_user_id != owner:
                raise errors.NotAllowed()
            row = message_row(message)
            release_taken_client_ids(conn, [row])
            number_rows(conn, [row])  # the next seq of the group: the counter is the table
            message_seq = conn.execute(insert(messages).values(row)).inserted_primary_key[0]
            accepted = message.with_seq(row["conversation_seq"])
            record_messages(conn, [(accepted, now_micros())])
            position = _append(conn, group_id, message_seq=message_seq)
            if trim:
                self._trim(conn, group_id)
            self._publish_at_commit(conn, GroupNotification(accepted, group_id, (position, 0)))
        return GroupPosted(accepted, (position, 0))

    def _trim(self, conn: Connection, group_id: str) -> None:
        """Keep the newest max_length entries of the stream, and remember the last one dropped."""
        cutoff = conn.execute(select(ENTRY.seq).where(ENTRY.group_id == group_id).order_by(ENTRY.seq.desc())
                              .limit(1).offset(self._max_length)).scalar()
        if cutoff is None:
            return
        conn.execute(delete(group_entries).where(ENTRY.group_id == group_id, ENTRY.seq <= cutoff))
        trims = group_entry_trims.c
        if conn.execute(update(group_entry_trims).where(trims.group_id == group_id)
                        .values(trimmed_up_to=cutoff)).rowcount == 0:
            conn.execute(insert(group_entry_trims).values(group_id=group_id, trimmed_up_to=cutoff))

    async def apply(self, change: GroupSwitch | MemberChange | LoggedChange) -> Applied:
        try:
            return await self._db.write(self._apply, change)
        finally:
            self._flush()  # this change's notification, or the membership transaction's

    def _apply(self, conn: Connection, change: GroupSwitch | MemberChange | LoggedChange) -> Applied:
        with conn.begin():
            if isinstance(change, LoggedChange):
                return self._log(conn, change)
            return self.apply_in(conn, change)

    def _log(self, conn: Connection, change: LoggedChange) -> Applied:
        """A message's edit or deletion, or a rename: its event once in the stream (section 10)."""
        if _floor(conn, change.group_id) is None:
            return Applied(WAIT)
        remembered = str(uuid.uuid5(_LOGGED_IDS, change.event_id))
        if conn.execute(select(appended_events.c.event_id)
                        .where(appended_events.c.event_id == remembered)).first() is not None:
            return Applied(DONE)  # a retried PATCH or DELETE, or the relay: nothing again
        conn.execute(insert(appended_events).values(event_id=remembered, appended_at=int(time.time())))
        position = _append(conn, change.group_id, event=change.record)
        self._publish_at_commit(conn, GroupNotification(change.record, change.group_id, (position, 0)))
        return Applied(APPLIED, (position, 0))

    def _publish_at_commit(self, conn: Connection, notification: _Published | None) -> None:
        """Queue the notification when the transaction commits (in the writer thread, so
        in commit order); a rolled-back transaction queues nothing. The event fires just
        before SQLite's COMMIT: one that then fails would leave a notification of nothing
        written - a replay of the connections concerned, which reads nothing new."""
        if self._publish is not None and notification is not None:
            event.listen(conn, "commit", partial(_queue, self._committed, notification), once=True)

    def _flush(self) -> None:
        while self._committed:
            notification = self._committed.popleft()
            assert self._publish is not None
            try:
                self._publish(notification)
            except Exception:  # a subscriber's bug must not undo what is committed (as SqliteInbox)
                log.exception("a subscriber failed on a notification of group %s", notification.group_id)

    def apply_in(self, conn: Connection, change: GroupSwitch | MemberChange) -> Applied:
        """Apply the switch or the change in the caller's transaction (see the module);
        published when that transaction commits, if it was applied now."""
        if isinstance(change, GroupSwitch):
            fresh = _floor(conn, change.group_id) is None
            applied = _switch(conn, change)
        else:
            fresh = conn.execute(select(CHANGE.position).where(CHANGE.event_id == change.event_id)).scalar() is None
            applied = self._apply_change(conn, change)
        if fresh and applied.status == APPLIED:
            self._publish_at_commit(conn, _notification(conn, change, applied))
        return applied

    def _apply_change(self, conn: Connection, change: MemberChange) -> Applied:
        done = conn.execute(select(CHANGE.position).where(CHANGE.event_id == change.event_id)).scalar()
        if done is not None:
            return Applied(APPLIED, (done, 0))
        applied = conn.execute(select(func.max(CHANGE.version)).where(CHANGE.group_id == change.group_id)).scalar()
        if applied is None:  # the group's switch is not applied yet
            return Applied(WAIT)
        if change.version <= applied:
            return Applied(DONE)
        if change.version != applied + 1:
            return Applied(WAIT)
        channel = conn.execute(select(groups.c.kind).where(groups.c.id == change.group_id)).scalar() == KIND_CHANNEL
        record = None if channel else change.record
        group_id = change.group_id
        if change.kind == JOIN:
            # The joiner's interval starts at its member_added record: the others read it.
            position = _append(conn, group_id, event=record) if record is not None else _newest(conn, group_id)
            assert position is not None
            for user_id in change.user_ids:
                _open(conn, group_id, user_id, position)
        else:
            # A leave ends just before its member_removed record; an owner change is placed
            # at the newest entry.
            position = _newest(conn, group_id)
            assert position is not None
            if change.kind == LEAVE:
                conn.execute(update(group_intervals).where(
                    INTERVAL.group_id == group_id, INTERVAL.user_id.in_(change.user_ids), INTERVAL.left_at.is_(None)
                ).values(left_at=position))
                if record is not None:
                    _append(conn, group_id, event=record)
        if change.owner_id is not None:
            conn.execute(update(groups).where(groups.c.id == group_id).values(owner_id=change.owner_id))
        conn.execute(insert(group_stream_changes).values(group_id=group_id, version=change.version,
                                                         event_id=change.event_id, position=position))
        return Applied(APPLIED, (position, 0))


def _notification(conn: Connection, change: GroupSwitch | MemberChange,
                  applied: Applied) -> SwitchNotification | MembershipNotification | None:
    """What lg_change.lua publishes for the change, which is applied at `applied`."""
    assert applied.position is not None
    if isinstance(change, GroupSwitch):
        stream = conn.execute(select(group_streams.c.stream_no)
                              .where(group_streams.c.group_id == change.group_id)).scalar()
        return SwitchNotification(change.group_id, change.stream if stream is None else stream, applied.position,
                                  tuple(change.member_ids))
    if change.kind == OWNER or not change.user_ids:
        return None  # gateways do not need the owner
    return MembershipNotification(change.group_id, tuple(change.user_ids), change.kind, applied.position,
                                  _logged(conn, change, applied.position[0]))


def _logged(conn: Connection, change: MemberChange, position: int) -> GroupNotification | None:
    """The change's record as the other members read it, at its own place: a join's is
    the join itself, a leave's the group's next entry after the leave (section 15, item
    5: the change's transaction wrote both, nothing of the group came between). Found by
    that place (the index on group_id, seq) and confirmed by the record's event id; None
    when no record was logged (a channel, or none given) or it was trimmed away since."""
    if change.record is None:
        return None
    place = ENTRY.seq == position if change.kind == JOIN else ENTRY.seq > position
    row = conn.execute(select(ENTRY.seq, ENTRY.event).where(ENTRY.group_id == change.group_id, place)
                       .order_by(ENTRY.seq).limit(1)).first()
    if row is None or row.event is None:
        return None
    record = event_from_record(orjson.loads(row.event))
    if record.id != change.record.id:
        return None
    return GroupNotification(record, change.group_id, (row.seq, 0))


def _switch(conn: Connection, switch: GroupSwitch) -> Applied:
    """Start the group's stream, once: its marker is the floor, every member's join. The
    group_streams row is SQL's (SqlGroupRepository inserted it in this transaction); one
    missing is inserted with the switch's stream number."""
    floor = _floor(conn, switch.group_id)
    if floor is not None:
        return Applied(APPLIED, (floor, 0))
    if conn.execute(select(group_streams.c.stream_no)
                    .where(group_streams.c.group_id == switch.group_id)).first() is None:
        conn.execute(insert(group_streams).values(stream_no=switch.stream, group_id=switch.group_id,
                                                  large_at_version=switch.version))
    conn.execute(update(groups).where(groups.c.id == switch.group_id).values(
        owner_id=switch.owner_id, **({"kind": KIND_CHANNEL} if switch.channel else {})))
    floor = _append(conn, switch.group_id)
    if switch.member_ids:
        conn.execute(insert(group_intervals), [
            {"group_id": switch.group_id, "user_id": user_id, "joined_after": floor, "left_at": None}
            for user_id in dict.fromkeys(switch.member_ids)])
    conn.execute(insert(group_stream_changes).values(group_id=switch.group_id, version=switch.version,
                                                     event_id=switch.event_id, position=floor))
    return Applied(APPLIED, (floor, 0))


def _append(conn: Connection, group_id: str, *, message_seq: int | None = None, event: Event | None = None) -> int:
    """Append an entry (a message's, a change record, or with neither the switch's marker)
    at the next seq of the counter every log shares (see the module); answer its seq."""
    seq = _next_seq(conn)
    record = orjson.dumps(event.to_record()).decode() if event is not None else None
    conn.execute(insert(group_entries).values(seq=seq, group_id=group_id, message_seq=message_seq, event=record))
    return seq


def _next_seq(conn: Connection) -> int:
    """One more than every inbox entry's and every group entry's seq handed out, and the
    inbox's AUTOINCREMENT moved up to it, so its next entry comes after this one."""
    last = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'inbox_entries'").scalar()
    newest = conn.execute(select(func.max(ENTRY.seq))).scalar() or 0  # e.g. after a restore of inbox_entries
    seq = max(last or 0, newest) + 1
    if last is None:
        conn.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES ('inbox_entries', ?)", (seq,))
    else:
        conn.exec_driver_sql("UPDATE sqlite_sequence SET seq = ? WHERE name = 'inbox_entries'", (seq,))
    return seq


def _floor(conn: Connection, group_id: str) -> int | None:
    """The switch's place (None: the group's switch is not applied): its change row, the
    group's first, which trimming never removes."""
    return conn.execute(select(CHANGE.position).where(CHANGE.group_id == group_id)
                        .order_by(CHANGE.version).limit(1)).scalar()


def _newest(conn: Connection, group_id: str) -> int | None:
    """The seq of the stream's newest entry (the marker counts; trimming keeps the newest)."""
    return conn.execute(select(func.max(ENTRY.seq)).where(ENTRY.group_id == group_id)).scalar()


def _intervals(conn: Connection, group_id: str, user_id: str) -> tuple[Interval, ...]:
    rows = conn.execute(select(INTERVAL.joined_after, INTERVAL.left_at)
                        .where(INTERVAL.group_id == group_id, INTERVAL.user_id == user_id)
                        .order_by(INTERVAL.joined_after)).all()
    return tuple(Interval((join, 0), (leave, 0) if leave is not None else None) for join, leave in rows)


def _open_interval(conn: Connection, group_id: str, user_id: str) -> int | None:
    return conn.execute(select(INTERVAL.joined_after).where(
        INTERVAL.group_id == group_id, INTERVAL.user_id == user_id, INTERVAL.left_at.is_(None))).scalar()


def _open(conn: Connection, group_id: str, user_id: str, position: int) -> None:
    """A join: a new interval after `position`; an open interval stays as it is. In a
    channel a rejoin with nothing posted since the leave is at the leave's place: the
    interval (p, p] it closed is opened again (the key would repeat; both hold nothing)."""
    if _open_interval(conn, group_id, user_id) is not None:
        return
    reopened = conn.execute(update(group_intervals).where(
        INTERVAL.group_id == group_id, INTERVAL.user_id == user_id, INTERVAL.joined_after == position
    ).values(left_at=None)).rowcount
    if not reopened:
        conn.execute(insert(group_intervals).values(group_id=group_id, user_id=user_id, joined_after=position,
                                                    left_at=None))


def _sent_before(conn: Connection, message: Message) -> GroupPosted | None:
    """The message its sender accepted into this group before under the same client_msg_id
    (production: lg:{G}:sent:, a day; here as long as the row keeps it), as it was posted.
    One whose entry was trimmed away (or one of the group's small era: the retry of a send
    whose idempotency key expired) is answered at the trim mark (or the floor), which is
    at or after it: the original, never a second copy."""
    if message.client_msg_id is None:
        return None
    row = conn.execute(
        select(*MESSAGE_COLUMNS, ENTRY.seq.label("entry_seq"))
        .select_from(messages)
        .outerjoin(group_entries, ENTRY.message_seq == messages.c.seq)
        .where(messages.c.group_id == message.group_id, messages.c.from_user_id == message.from_user_id,
               messages.c.client_msg_id == message.client_msg_id)
    ).first()
    if row is None:
        return None
    position = row.entry_seq
    if position is None:
        trimmed = conn.execute(select(group_entry_trims.c.trimmed_up_to)
                               .where(group_entry_trims.c.group_id == message.group_id)).scalar()
        position = trimmed if trimmed is not None else _floor(conn, str(message.group_id))
    return GroupPosted(message_from_row(row), (position, 0), duplicate=True)


def _event_of(row) -> Event:
    if row.event_record is not None:
        return event_from_record(orjson.loads(row.event_record))
    return message_from_row(row)


def _queue(committed: deque, notification: _Published, _conn: Connection) -> None:
    committed.append(notification)
