"""The outbox in SQL: announcements stored by the changing stores in their own
transactions (store_announcement: groups, messages, conversations), listed and
forgotten through the Outbox port (application/announcements.py).

The table is still called group_announcements, after the first kind of change it held;
it holds every kind alike (the event's record names its type), so a rename would buy a
migration and nothing else."""
from __future__ import annotations

import time

import orjson
from sqlalchemy import Connection, delete, insert, select

from adapters.sql.database import Database
from adapters.sql.stream_changes import stream_change_from_text, stream_change_text
from adapters.sql.tables import group_announcements
from application.ports import Announcement, Outbox
from domain.events import Appended, event_from_record


def store_announcement(conn: Connection, announce: Announcement | None) -> None:
    """The change's announcement, in the change's own transaction, with its
    stream_change (a large group's; adapters/sql/stream_changes.py)."""
    if announce is None:
        return
    conn.execute(insert(group_announcements).values(
        event_id=announce.event.id,
        record=orjson.dumps(announce.event.to_record()).decode(),
        recipient_ids=orjson.dumps(announce.recipient_ids).decode(),
        created_at=announce.created_at,
        stream_change=stream_change_text(announce.stream_change, announce.event),
    ))


def announcement_stored(conn: Connection, event_id: str) -> bool:
    """Is the announcement of this event stored and not yet announced?"""
    found = conn.execute(select(group_announcements.c.event_id).where(group_announcements.c.event_id == event_id))
    return found.first() is not None


class SqlOutbox(Outbox):
    def __init__(self, db: Database):
        self._db = db

    async def announcements(self, older_than: float, limit: int) -> list[Announcement]:
        return await self._db.run(self._announcements, int(time.time() - older_than), limit)

    @staticmethod
    def _announcements(conn: Connection, before: int, limit: int) -> list[Announcement]:
        row = group_announcements.c
        with conn.begin():
            rows = conn.execute(
                select(row.record, row.recipient_ids, row.created_at, row.stream_change)
                .where(row.created_at <= before).order_by(row.seq).limit(limit)
            ).all()
        return [_announcement(r) for r in rows]

    async def announced(self, event_id: str) -> None:
        await self._db.write(self._announced, event_id)

    @staticmethod
    def _announced(conn: Connection, event_id: str) -> None:
        with conn.begin():
            conn.execute(delete(group_announcements).where(group_announcements.c.event_id == event_id))


def _announcement(row) -> Announcement:
    event = _appended(orjson.loads(row.record))
    return Announcement(event, orjson.loads(row.recipient_ids), int(row.created_at),
                        stream_change_from_text(row.stream_change, event))


def _appended(record: dict) -> Appended:
    event = event_from_record(record)
    if not isinstance(event, Appended):  # a message is never announced: it has its own path
        raise ValueError(f"an announcement of a {event.type!r}, which no store announces")
    return event
