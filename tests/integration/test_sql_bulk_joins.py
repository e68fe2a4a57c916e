"""SqlGroupRepository.add_members, a bulk join (docs/design/large-groups.md, section 9),
against SQLite and MariaDB: a batch is one transaction, one member version and one
announcement; a batch with a member or an unknown user in it changes nothing; the joins
spend invitations and put the group in the joiners' lists. In the embedded mode, a
channel's batch is one change of its stream: every joiner reads the posts after it."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import insert

from adapters.sql.group_streams import SqliteGroupStreams
from adapters.sql.groups import SqlGroupRepository
from adapters.sql.outbox import SqlOutbox
from adapters.sql.tables import users
from adapters.sql.users import utcnow
from application.ports import JOIN, Announcement, MemberChange
from domain import errors
from domain.events import GROUP_INVITED, GROUP_UPDATED, GroupChange
from domain.model import KIND_CHANNEL, Group
from domain.vector import Interval
from tests.integration.test_sql_group_counts import new_id
from tests.integration.test_sql_group_streams import group_message, sqlite_db  # noqa: F401 - a fixture


async def many_people(db, count: int) -> list[str]:
    """`count` users in one statement (the repository adds them one by one)."""
    ids = [new_id() for _ in range(count)]
    rows = [{"id": user_id, "username": "b" + user_id[:12], "username_key": "b" + user_id[:12],
             "password_hash": "h", "created_at": utcnow()} for user_id in ids]

    def add(conn):
        with conn.begin():
            conn.execute(insert(users), rows)

    await db.write(add)
    return ids


def joined(group_id: str, user_ids: list[str], by: str) -> Announcement:
    event = GroupChange(GROUP_UPDATED, new_id(), group_id, by, 1_700_000_000, name="g")
    return Announcement(event, list(user_ids), int(time.time()))


@pytest.mark.gen_test
async def test_each_batch_is_one_version_and_one_announcement_and_a_bad_batch_changes_nothing(db):
    groups, outbox = SqlGroupRepository(db), SqlOutbox(db)
    owner, *others = await many_people(db, 1_201)
    group = Group(id=new_id(), name="g", owner_id=owner, member_ids=[owner])
    await groups.add(group)
    invited = GroupChange(GROUP_INVITED, new_id(), group.id, owner, 1, user_id=others[0], name="g")
    await groups.invite(group.id, others[0], owner, Announcement(invited, [others[0]], int(time.time())))
    await outbox.announced(invited.id)
    first, second = joined(group.id, others[:1_000], owner), joined(group.id, others[1_000:], owner)
    assert await groups.add_members(group.id, others[:1_000], first) is None  # a small group: no stream
    assert await groups.add_members(group.id, others[1_000:], second) is None
    got = await groups.get(group.id)
    assert (got.member_ids, got.member_count, got.member_version) == ([owner, *others], 1_201, 2)
    assert await outbox.announcements(0, 10) == [first, second]
    with pytest.raises(errors.NotAMember):  # the join spent the invitation
        await groups.add_member(group.id, new_id(), invited=True)
    # One member, or one unknown user, in a batch: nothing of it is stored.
    late = await many_people(db, 3)
    with pytest.raises(errors.AlreadyAMember):
        await groups.add_members(group.id, [late[0], others[5], late[1]], joined(group.id, late, owner))
    with pytest.raises(errors.UserNotFound):
        await groups.add_members(group.id, [*late, new_id()], joined(group.id, late, owner))
    got = await groups.get(group.id)
    assert (got.member_count, got.member_version) == (1_201, 2)
    assert len(await outbox.announcements(0, 10)) == 2
    page = await groups.list_for_member(others[-1], None, 10)  # in the joiners' lists
    assert [g.id for g in page.groups] == [group.id]


@pytest.mark.gen_test
async def test_a_channels_batch_is_one_stream_change_and_every_joiner_reads_on_from_it(sqlite_db):  # noqa: F811
    db = sqlite_db
    streams = SqliteGroupStreams(db)
    groups = SqlGroupRepository(db, large_group=3, apply_in_transaction=streams.apply_in)
    owner, *others = await many_people(db, 1_501)
    channel = Group(id=new_id(), name="news", owner_id=owner, member_ids=[owner], kind=KIND_CHANNEL)
    assert (await groups.add(channel)) is not None  # large from creation
    before = await streams.deliver(group_message(channel.id, owner, "before"))
    announced = joined(channel.id, others[:1_000], owner)
    change = await groups.add_members(channel.id, others[:1_000], announced)
    assert change == MemberChange(JOIN, channel.id, announced.event.id, 1, tuple(others[:1_000]), None)
    rest = await groups.add_members(channel.id, others[1_000:], joined(channel.id, others[1_000:], owner))
    assert isinstance(rest, MemberChange) and rest.version == 2
    after = await streams.deliver(group_message(channel.id, owner, "after"))
    with pytest.raises(errors.NotAllowed):
        await streams.deliver(group_message(channel.id, others[0], "me too"))
    for user_id in (others[0], others[999], others[1_000], others[-1]):
        (membership,) = await streams.memberships(user_id, ())
        (interval,) = membership.intervals
        # Open, from the stream's last entry then (a channel logs no record of a join).
        assert interval == Interval(interval.join) and interval.join >= before.position
        read = await streams.read(channel.id, user_id, interval.join, 10)
        assert [entry.event.id for entry in read] == [after.message.id]  # the post only: no joins logged
