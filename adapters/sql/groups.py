"""Groups and their members in SQL (groups, group_members); each change with its
announcement (adapters/sql/outbox.py), in one transaction."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, exc, func, insert, or_, select, update

from adapters.sql import conversations
from adapters.sql.batches import chunks
from adapters.sql.database import Database
from adapters.sql.outbox import store_announcement
from adapters.sql.tables import group_members, groups
from adapters.sql.users import utcnow
from application.ports import Announcement, GroupPage, GroupPosition, GroupRepository
from domain import errors
from domain.model import Group

# A GroupPosition's `joined` is group_members.joined_at (naive UTC) in microseconds.
EPOCH = datetime(1970, 1, 1)
MICROSECOND = timedelta(microseconds=1)


def joined_micros(joined_at: datetime) -> int:
    return (joined_at - EPOCH) // MICROSECOND


def joined_at(micros: int) -> datetime:
    try:
        return EPOCH + micros * MICROSECOND
    except OverflowError:  # a made-up position past year 9999: after every row
        return datetime.max


def _load(conn: Connection, group_ids: list[str]) -> list[Group]:
    """The groups with these ids, oldest first, each with its members in join order."""
    rows = []
    for chunk in chunks(group_ids):
        rows.extend(conn.execute(select(groups).where(groups.c.id.in_(chunk))))
    rows.sort(key=lambda row: (row.created_at, row.id))
    found = {row.id: Group(id=row.id, name=row.name, owner_id=row.owner_id, member_ids=[]) for row in rows}
    for chunk in chunks(list(found)):
        members = conn.execute(
            select(group_members.c.group_id, group_members.c.user_id)
            .where(group_members.c.group_id.in_(chunk))
            .order_by(group_members.c.group_id, group_members.c.position)
        )
        for group_id, user_id in members:
            found[group_id].member_ids.append(user_id)
    return list(found.values())


class SqlGroupRepository(GroupRepository):
    def __init__(self, db: Database):
        self._db = db

    async def add(self, group: Group, announce: Announcement | None = None) -> None:
        await self._db.write(self._add, group, announce)

    @staticmethod
    def _add(conn: Connection, group: Group, announce: Announcement | None) -> None:
        now = utcnow()
        with conn.begin():
            store_announcement(conn, announce)
            conn.execute(
                insert(groups).values(id=group.id, name=group.name, owner_id=group.owner_id, created_at=now)
            )
            if group.member_ids:
                conn.execute(
                    insert(group_members),
                    [
                        {"group_id": group.id, "user_id": user_id, "position": position, "joined_at": now}
                        for position, user_id in enumerate(group.member_ids, start=1)
                    ],
                )
            conversations.group_created(conn, group.id, group.member_ids)

    async def get(self, group_id: str) -> Group | None:
        found = await self._db.run(self._get, [group_id])
        return found[0] if found else None

    async def list_for_member(self, user_id: str, before: GroupPosition | None, limit: int) -> GroupPage:
        return await self._db.run(self._list_for_member, user_id, before, limit)

    @staticmethod
    def _get(conn: Connection, group_ids: list[str]) -> list[Group]:
        with conn.begin():  # one snapshot: the group and its members agree
            return _load(conn, group_ids)

    @staticmethod
    def _list_for_member(conn: Connection, user_id: str, before: GroupPosition | None, limit: int) -> GroupPage:
        """A range of the (user_id, joined_at, group_id) index, newest first; one row
        more than asked tells whether there is a next page."""
        member = group_members.c
        query = select(member.group_id, member.joined_at).where(member.user_id == user_id)
        if before is not None:
            at = joined_at(before.joined)
            # "<= at" alone bounds the index range; the OR then breaks the tie.
            query = query.where(member.joined_at <= at, or_(member.joined_at < at, member.group_id < before.group_id))
        query = query.order_by(member.joined_at.desc(), member.group_id.desc()).limit(limit + 1)
        with conn.begin():
            rows = conn.execute(query).all()
            more = len(rows) > limit
            rows = rows[:limit]
            found = {group.id: group for group in _load(conn, [row.group_id for row in rows])}
        last = rows[-1] if more else None
        return GroupPage(
            [found[row.group_id] for row in rows],
            GroupPosition(joined_micros(last.joined_at), last.group_id) if last is not None else None,
        )

    async def add_member(self, group_id: str, user_id: str, announce: Announcement | None = None) -> None:
        await self._db.write(self._add_member, group_id, user_id, announce)

    @staticmethod
    def _add_member(conn: Connection, group_id: str, user_id: str, announce: Announcement | None) -> None:
        with conn.begin():
            store_announcement(conn, announce)
            # Locking the group row (MySQL; SQLite has one writer) serialises joins
            # to one group, so two never take the same position.
            locked = conn.execute(select(groups.c.id).where(groups.c.id == group_id).with_for_update()).first()
            if locked is None:
                raise errors.GroupNotFound()
            member = group_members.c
            already = conn.execute(
                select(member.user_id).where(member.group_id == group_id, member.user_id == user_id)
            ).first()
            if already is not None:
                raise errors.AlreadyAMember()
            last = conn.execute(select(func.max(member.position)).where(member.group_id == group_id)).scalar()
            try:
                conn.execute(
                    insert(group_members).values(
                        group_id=group_id, user_id=user_id, position=(last or 0) + 1, joined_at=utcnow()
                    )
                )
            except exc.IntegrityError as e:  # the group exists and the row did not: the user does not
                raise errors.UserNotFound() from e
            conversations.group_joined(conn, group_id, user_id)

    async def rename(self, group_id: str, name: str, announce: Announcement | None = None) -> None:
        await self._db.write(self._rename, group_id, name, announce)

    @staticmethod
    def _rename(conn: Connection, group_id: str, name: str, announce: Announcement | None) -> None:
        with conn.begin():
            store_announcement(conn, announce)
            if conn.execute(update(groups).where(groups.c.id == group_id).values(name=name)).rowcount == 0:
                # MySQL counts rows changed, not matched: the same name again is 0 as well.
                if conn.execute(select(groups.c.id).where(groups.c.id == group_id)).first() is None:
                    raise errors.GroupNotFound()

    async def remove_member(self, group_id: str, user_id: str, new_owner_id: str | None,
                            announce: Announcement | None = None) -> None:
        await self._db.write(self._remove_member, group_id, user_id, new_owner_id, announce)

    @staticmethod
    def _remove_member(conn: Connection, group_id: str, user_id: str, new_owner_id: str | None,
                       announce: Announcement | None) -> None:
        with conn.begin():
            store_announcement(conn, announce)
            member = group_members.c
            conn.execute(delete(group_members).where(member.group_id == group_id, member.user_id == user_id))
            conversations.group_left(conn, group_id, user_id)
            if new_owner_id is not None:
                conn.execute(update(groups).where(groups.c.id == group_id).values(owner_id=new_owner_id))
