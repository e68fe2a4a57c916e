"""Groups and their members in SQL (groups, group_members); each change with its
announcement (adapters/sql/outbox.py), in one transaction.

Large groups (docs/design/large-groups.md, sections 2.2 and 4.2): every add and remove
moves groups.member_count and member_version under the group's row lock, so versions
follow the order of the changes. A group that is not large and passes `large_group`
members becomes large in that transaction: its group_streams row (the authority for its
stream number) is inserted, and the change answers the GroupSwitch, with the members at
that version read in the same transaction. A change of a large group answers its
MemberChange. Applying them to the streams is the caller's (the announcer's, step 6),
except where `apply_in_transaction` is given: the embedded mode's SqliteGroupStreams then
applies each one inside the membership transaction itself (section 8).

A membership change (add, add_member, remove_member) stores its announcement last in its
transaction, carrying what it answers as the announcement's stream_change, so that the
relay applies the same change if the announcer never does. Stored under the group's row
lock, a group's announcements also follow its member versions in the outbox's order."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from adapters.sql import conversations
from adapters.sql.batches import IN_CHUNK, chunks
from adapters.sql.database import Database
from adapters.sql.messages import last_seq
from adapters.sql.outbox import store_announcement
from adapters.sql.tables import group_invitations, group_members, group_streams, groups, users
from adapters.sql.users import utcnow
from application.ports import (
    JOIN,
    LEAVE,
    Announcement,
    GroupPage,
    GroupPosition,
    GroupRepository,
    GroupSwitch,
    MemberChange,
)
from domain import errors
from domain.events import GroupChange
from domain.model import KIND_CHANNEL, Group

# Applies a switch or a change to the streams in the caller's transaction (embedded mode).
ApplyInTransaction = Callable[[Connection, GroupSwitch | MemberChange], object]

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
        rows.extend(conn.execute(
            select(groups, group_streams.c.stream_no)
            .outerjoin_from(groups, group_streams, group_streams.c.group_id == groups.c.id)
            .where(groups.c.id.in_(chunk))
        ))
    rows.sort(key=lambda row: (row.created_at, row.id))
    found = {row.id: Group(id=row.id, name=row.name, owner_id=row.owner_id, member_ids=[], kind=row.kind,
                           stream=row.stream_no, member_count=row.member_count,
                           member_version=row.member_version) for row in rows}
    for chunk in chunks(list(found)):
        members = conn.execute(
            select(group_members.c.group_id, group_members.c.user_id)
            .where(group_members.c.group_id.in_(chunk))
            .order_by(group_members.c.group_id, group_members.c.position)
        )
        for group_id, user_id in members:
            found[group_id].member_ids.append(user_id)
    return list(found.values())


def _event_id(announce: Announcement | None) -> str:
    """A change's event id: its announcement's (the relay applies it once by that id)."""
    return announce.event.id if announce is not None else str(uuid.uuid4())


def _record(announce: Announcement | None) -> GroupChange | None:
    return announce.event if announce is not None and isinstance(announce.event, GroupChange) else None


def _require_users(conn: Connection, user_ids: Sequence[str]) -> None:
    """UserNotFound unless every one of these users is stored: what the foreign keys from
    groups, group_members and group_invitations to users refused until revision 0016
    (users lie on other shards of a sharded MySQL; docs/design/mysql-sharding.md). Users
    are never deleted, so a user found here stays."""
    wanted = set(user_ids)
    found: set[str] = set()
    for chunk in chunks(sorted(wanted)):
        found.update(conn.execute(select(users.c.id).where(users.c.id.in_(chunk))).scalars())
    if found != wanted:
        raise errors.UserNotFound()


def _store(conn: Connection, announce: Announcement | None, change: GroupSwitch | MemberChange | None) -> None:
    """The announcement with the stream change the transaction decided (the relay's to
    apply, should the announcer not), in that transaction."""
    store_announcement(conn, replace(announce, stream_change=change) if announce is not None else None)


class SqlGroupRepository(GroupRepository):
    def __init__(self, db: Database, large_group: int = 0, apply_in_transaction: ApplyInTransaction | None = None):
        """`large_group`: a group with more members becomes large (0: never; channels are
        large from creation whatever it is)."""
        self._db = db
        self._large_group = large_group
        self._apply = apply_in_transaction

    async def add(self, group: Group, announce: Announcement | None = None) -> GroupSwitch | None:
        return await self._db.write(self._add, group, announce)

    def _add(self, conn: Connection, group: Group, announce: Announcement | None) -> GroupSwitch | None:
        now = utcnow()
        with conn.begin():
            _require_users(conn, [group.owner_id, *group.member_ids])
            conn.execute(
                insert(groups).values(id=group.id, name=group.name, owner_id=group.owner_id, created_at=now,
                                      kind=group.kind, member_count=len(group.member_ids), member_version=0)
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
            switch = None
            # Large from creation: a channel, or more initial members than the threshold.
            if group.kind == KIND_CHANNEL or self._passes(len(group.member_ids)):
                switch = self._switch(conn, group.id, 0, _event_id(announce))
            _store(conn, announce, switch)
            return switch

    def _passes(self, member_count: int) -> bool:
        return 0 < self._large_group < member_count

    def _switch(self, conn: Connection, group_id: str, version: int, event_id: str) -> GroupSwitch:
        """Make the group large at this version (the caller holds its row lock): its stream
        number, and what the switch needs, all read in this transaction."""
        stream = conn.execute(insert(group_streams).values(group_id=group_id, large_at_version=version))
        row = conn.execute(select(groups.c.owner_id, groups.c.kind).where(groups.c.id == group_id)).one()
        member = group_members.c
        members = conn.execute(
            select(member.user_id).where(member.group_id == group_id).order_by(member.position)
        ).scalars()
        switch = GroupSwitch(group_id, event_id, version, stream.inserted_primary_key[0], row.owner_id,
                             row.kind == KIND_CHANNEL, tuple(members))
        conversations.group_became_large(conn, group_id)
        if self._apply is not None:
            self._apply(conn, switch)
        return switch

    def _changed(self, conn: Connection, group_id: str, change: MemberChange) -> MemberChange | None:
        """The change of a large group (None for a small one), applied here when embedded."""
        large = conn.execute(select(group_streams.c.stream_no).where(group_streams.c.group_id == group_id)).first()
        if large is None:
            return None
        if self._apply is not None:
            self._apply(conn, change)
        return change

    async def large_groups(self, after: int | None, limit: int) -> list[tuple[GroupSwitch, int]]:
        """A page of the large groups, by stream number (at most `limit`, after the stream
        `after`; None: from the first), each as the switch that would make it large now -
        its member version, owner, kind and members, read in one transaction - with the
        highest seq the database holds of it. What `courier worker` rebuilds a large
        group's Redis state from when Redis lost its data (design, section 7.3;
        adapters/redis/seq_counters.py). The switches' event ids are empty: the rebuild
        gives its own. A page shorter than `limit` is the last."""
        return await self._db.run(self._large_groups, after, limit)

    @staticmethod
    def _large_groups(conn: Connection, after: int | None, limit: int) -> list[tuple[GroupSwitch, int]]:
        member = group_members.c
        query = (select(group_streams.c.stream_no, groups.c.id, groups.c.owner_id, groups.c.kind,
                        groups.c.member_version)
                 .join_from(group_streams, groups, groups.c.id == group_streams.c.group_id))
        if after is not None:
            query = query.where(group_streams.c.stream_no > after)
        found = []
        with conn.begin():  # one snapshot: each group's version agrees with its members
            for row in conn.execute(query.order_by(group_streams.c.stream_no).limit(limit)).all():
                members = conn.execute(
                    select(member.user_id).where(member.group_id == row.id).order_by(member.position)
                ).scalars()
                switch = GroupSwitch(row.id, "", row.member_version, row.stream_no, row.owner_id,
                                     row.kind == KIND_CHANNEL, tuple(members))
                found.append((switch, last_seq(conn, "g:" + row.id)))
        return found

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

    async def add_member(self, group_id: str, user_id: str, announce: Announcement | None = None,
                         invited: bool = False) -> GroupSwitch | MemberChange | None:
        return await self._db.write(self._add_member, group_id, user_id, announce, invited)

    def _add_member(self, conn: Connection, group_id: str, user_id: str, announce: Announcement | None,
                    invited: bool) -> GroupSwitch | MemberChange | None:
        with conn.begin():
            # Locking the group row (MySQL; SQLite has one writer) serialises joins and
            # leaves of one group: two never take the same position or member version.
            locked = _lock(conn, group_id)
            if locked is None:
                raise errors.GroupNotFound()
            member = group_members.c
            already = conn.execute(
                select(member.user_id).where(member.group_id == group_id, member.user_id == user_id)
            ).first()
            if already is not None:
                raise errors.AlreadyAMember()
            # A join spends the user's invitation, whoever adds it; a join by invitation
            # needs one (raising here rolls the transaction back).
            spent = conn.execute(delete(group_invitations).where(
                group_invitations.c.group_id == group_id, group_invitations.c.user_id == user_id)).rowcount
            if invited and not spent:
                raise errors.NotAMember("you are not a member of this group, nor invited to it")
            _require_users(conn, [user_id])
            last = conn.execute(select(func.max(member.position)).where(member.group_id == group_id)).scalar()
            conn.execute(
                insert(group_members).values(
                    group_id=group_id, user_id=user_id, position=(last or 0) + 1, joined_at=utcnow()
                )
            )
            conversations.group_joined(conn, group_id, user_id)
            count, version = _count(conn, group_id, locked, +1)
            event_id = _event_id(announce)
            change: GroupSwitch | MemberChange | None = self._changed(
                conn, group_id, MemberChange(JOIN, group_id, event_id, version, (user_id,), _record(announce)))
            if change is None and self._passes(count):
                change = self._switch(conn, group_id, version, event_id)  # the joiner is among its members
            _store(conn, announce, change)
            return change

    async def add_members(self, group_id: str, user_ids: Sequence[str],
                          announce: Announcement | None = None) -> GroupSwitch | MemberChange | None:
        return await self._db.write(self._add_members, group_id, list(user_ids), announce)

    def _add_members(self, conn: Connection, group_id: str, user_ids: list[str],
                     announce: Announcement | None) -> GroupSwitch | MemberChange | None:
        """_add_member for many users in a few statements (the caller keeps the batch to
        about a thousand: one transaction, one lock of the group row)."""
        with conn.begin():
            locked = _lock(conn, group_id)
            if locked is None:
                raise errors.GroupNotFound()
            member = group_members.c
            for chunk in chunks(user_ids):
                if conn.execute(select(member.user_id).where(member.group_id == group_id,
                                                             member.user_id.in_(chunk)).limit(1)).first():
                    raise errors.AlreadyAMember()
            last = conn.execute(select(func.max(member.position)).where(member.group_id == group_id)).scalar() or 0
            _require_users(conn, user_ids)
            now = utcnow()
            for start in range(0, len(user_ids), IN_CHUNK):
                conn.execute(insert(group_members), [
                    {"group_id": group_id, "user_id": user_id, "position": last + start + offset, "joined_at": now}
                    for offset, user_id in enumerate(user_ids[start:start + IN_CHUNK], start=1)
                ])
            for chunk in chunks(user_ids):
                conn.execute(delete(group_invitations).where(group_invitations.c.group_id == group_id,
                                                             group_invitations.c.user_id.in_(chunk)))
            conversations.group_joined_by(conn, group_id, user_ids)
            count, version = _count(conn, group_id, locked, len(user_ids))
            event_id = _event_id(announce)
            # No record: one event cannot tell of a thousand joins (the joiners are told
            # in their own logs; the other members are not).
            change: GroupSwitch | MemberChange | None = self._changed(
                conn, group_id, MemberChange(JOIN, group_id, event_id, version, tuple(user_ids), None))
            if change is None and self._passes(count):
                change = self._switch(conn, group_id, version, event_id)
            _store(conn, announce, change)
            return change

    async def invite(self, group_id: str, user_id: str, invited_by: str,
                     announce: Announcement | None = None) -> bool:
        return await self._db.write(self._invite, group_id, user_id, invited_by, announce)

    @staticmethod
    def _invite(conn: Connection, group_id: str, user_id: str, invited_by: str,
                announce: Announcement | None) -> bool:
        with conn.begin():
            # Under the group's row lock, as joins: an invitee who joins meanwhile is a
            # member here, never a member with an invitation left over.
            if _lock(conn, group_id) is None:
                raise errors.GroupNotFound()
            member = group_members.c
            if conn.execute(select(member.user_id).where(member.group_id == group_id,
                                                         member.user_id == user_id)).first() is not None:
                raise errors.AlreadyAMember()
            invitation = group_invitations.c
            if conn.execute(select(invitation.user_id).where(invitation.group_id == group_id,
                                                             invitation.user_id == user_id)).first() is not None:
                return False  # invited before: that invitation (and its event) stands
            _require_users(conn, [user_id, invited_by])
            conn.execute(insert(group_invitations).values(group_id=group_id, user_id=user_id,
                                                          invited_by=invited_by, created_at=utcnow()))
            store_announcement(conn, announce)
            return True

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
                            announce: Announcement | None = None) -> MemberChange | None:
        return await self._db.write(self._remove_member, group_id, user_id, new_owner_id, announce)

    def _remove_member(self, conn: Connection, group_id: str, user_id: str, new_owner_id: str | None,
                       announce: Announcement | None) -> MemberChange | None:
        with conn.begin():
            locked = _lock(conn, group_id)  # as _add_member: the version follows the order of changes
            member = group_members.c
            removed = conn.execute(delete(group_members).where(member.group_id == group_id,
                                                               member.user_id == user_id)).rowcount
            conversations.group_left(conn, group_id, user_id)
            if new_owner_id is not None:
                conn.execute(update(groups).where(groups.c.id == group_id).values(owner_id=new_owner_id))
            change = None  # no change of membership: no new version (a large group never switches back)
            if locked is not None and removed:
                _, version = _count(conn, group_id, locked, -1)
                change = self._changed(conn, group_id, MemberChange(LEAVE, group_id, _event_id(announce), version,
                                                                    (user_id,), _record(announce), new_owner_id))
            _store(conn, announce, change)
            return change


def _lock(conn: Connection, group_id: str):
    """The group's row, locked (FOR UPDATE; SQLite: the one writer), with its counts."""
    return conn.execute(
        select(groups.c.member_count, groups.c.member_version).where(groups.c.id == group_id).with_for_update()
    ).first()


def _count(conn: Connection, group_id: str, locked, delta: int) -> tuple[int, int]:
    """Move the group's member count by `delta` and its version by one: (count, version) after."""
    count, version = locked.member_count + delta, locked.member_version + 1
    conn.execute(update(groups).where(groups.c.id == group_id).values(member_count=count, member_version=version))
    return count, version
