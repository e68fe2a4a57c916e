"""SqlGroupRepository's member count and version, and the switch to large (docs/design/
large-groups.md, sections 2.2 and 4.2), against SQLite and MariaDB: every add and remove
moves them under the group's row lock, so concurrent changes get versions 1, 2, 3...
without a gap or a repeat; a group that is not large switches once it passes the
threshold, in the change's transaction, with the members at that version; a large group's
changes answer their MemberChange; 0 never switches. The announcement stored with each
change carries what it answered (stream_change), for the relay: SqlOutbox lists it so."""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import select

from adapters.sql.groups import SqlGroupRepository
from adapters.sql.outbox import SqlOutbox
from adapters.sql.tables import group_streams
from adapters.sql.users import SqlUserRepository
from application.ports import JOIN, LEAVE, Announcement, GroupSwitch, MemberChange
from domain import errors
from domain.events import GROUP_UPDATED, MEMBER_ADDED, MEMBER_REMOVED, GroupChange
from domain.model import KIND_CHANNEL, Group, User


def new_id() -> str:
    return str(uuid.uuid4())


async def people(db, count: int) -> list[str]:
    users = SqlUserRepository(db)
    ids = [new_id() for _ in range(count)]
    for user_id in ids:
        await users.add(User(id=user_id, username="u" + user_id[:8], password_hash="h"))
    return ids


def announcement(kind: str, group_id: str, user_id: str) -> Announcement:
    return Announcement(GroupChange(kind, new_id(), group_id, user_id, 1_700_000_000, user_id=user_id), [user_id],
                        int(time.time()))


async def new_group(groups: SqlGroupRepository, members: list[str], kind: str = "group"):
    group = Group(id=new_id(), name="g", owner_id=members[0], member_ids=list(members), kind=kind)
    return group, await groups.add(group)


@pytest.mark.gen_test
async def test_every_add_and_remove_moves_the_count_and_the_version(db):
    groups = SqlGroupRepository(db)
    a, b, c, d = await people(db, 4)
    group, switch = await new_group(groups, [a, b, c])
    assert switch is None
    got = await groups.get(group.id)
    assert (got.kind, got.stream, got.member_count, got.member_version, got.members_loaded) == (
        "group", None, 3, 0, True)
    assert await groups.add_member(group.id, d, announcement(MEMBER_ADDED, group.id, d)) is None  # small
    assert (await groups.remove_member(group.id, b, None)) is None
    got = await groups.get(group.id)
    assert (got.member_ids, got.member_count, got.member_version) == ([a, c, d], 3, 2)
    await groups.remove_member(group.id, b, None)  # not a member: no change, no version
    with pytest.raises(errors.AlreadyAMember):
        await groups.add_member(group.id, d)
    got = await groups.get(group.id)
    assert (got.member_count, got.member_version) == (3, 2)


@pytest.mark.gen_test
async def test_concurrent_changes_take_every_version_once(db):
    groups = SqlGroupRepository(db)
    owner, *others = await people(db, 9)
    group, _ = await new_group(groups, [owner])
    await asyncio.gather(*(groups.add_member(group.id, user_id) for user_id in others))
    await asyncio.gather(*(groups.remove_member(group.id, user_id, None) for user_id in others[:4]))
    got = await groups.get(group.id)
    assert (got.member_count, got.member_version) == (5, 12)
    assert len(got.member_ids) == got.member_count


@pytest.mark.gen_test
async def test_a_group_passing_the_threshold_switches_once_with_its_members_at_that_version(db):
    groups = SqlGroupRepository(db, large_group=3)
    a, b, c, d, e = await people(db, 5)
    group, switch = await new_group(groups, [a, b, c])
    assert switch is None  # 3 is not more than 3
    join = announcement(MEMBER_ADDED, group.id, d)
    switch = await groups.add_member(group.id, d, join)
    assert isinstance(switch, GroupSwitch)
    assert (switch.group_id, switch.event_id, switch.version, switch.owner_id, switch.channel,
            switch.member_ids) == (group.id, join.event.id, 1, a, False, (a, b, c, d))
    got = await groups.get(group.id)
    assert (got.stream, got.large, got.member_count, got.member_version) == (switch.stream, True, 4, 1)
    # Large from now on: each change is the streams' to apply, at its version.
    added = announcement(MEMBER_ADDED, group.id, e)
    change = await groups.add_member(group.id, e, added)
    assert change == MemberChange(JOIN, group.id, added.event.id, 2, (e,), added.event)
    removed = announcement(MEMBER_REMOVED, group.id, a)
    change = await groups.remove_member(group.id, a, b, removed)
    assert change == MemberChange(LEAVE, group.id, removed.event.id, 3, (a,), removed.event, b)
    for user_id in (b, c, d):  # down to 1 member: a group never switches back
        assert isinstance(await groups.remove_member(group.id, user_id, None), MemberChange)
    got = await groups.get(group.id)
    assert (got.stream, got.member_count, got.member_version, got.owner_id) == (switch.stream, 1, 6, b)

    def rows(conn):
        return conn.execute(select(group_streams.c.stream_no, group_streams.c.large_at_version)
                            .where(group_streams.c.group_id == group.id)).all()

    assert [tuple(row) for row in await db.run(rows)] == [(switch.stream, 1)]


@pytest.mark.gen_test
async def test_concurrent_joins_past_the_threshold_switch_exactly_once(db):
    groups = SqlGroupRepository(db, large_group=4)
    owner, *others = await people(db, 9)
    group, _ = await new_group(groups, [owner])
    answers = await asyncio.gather(*(groups.add_member(group.id, user_id) for user_id in others))
    switches = [answer for answer in answers if isinstance(answer, GroupSwitch)]
    assert len(switches) == 1
    (switch,) = switches
    assert switch.version == 4 and len(switch.member_ids) == 5 and switch.member_ids[0] == owner
    later = sorted(answer.version for answer in answers if isinstance(answer, MemberChange))
    assert later == [5, 6, 7, 8]
    assert sum(answer is None for answer in answers) == 3


@pytest.mark.gen_test
async def test_a_group_created_large_or_as_a_channel_switches_at_creation_and_0_never_switches(db):
    members = await people(db, 4)
    _, switch = await new_group(SqlGroupRepository(db, large_group=3), members)
    assert isinstance(switch, GroupSwitch) and (switch.version, switch.member_ids) == (0, tuple(members))
    channel, switch = await new_group(SqlGroupRepository(db), members[:1], kind=KIND_CHANNEL)
    assert isinstance(switch, GroupSwitch) and switch.channel and switch.member_ids == (members[0],)
    assert (await SqlGroupRepository(db).get(channel.id)).kind == KIND_CHANNEL
    never = SqlGroupRepository(db)  # the default: 0
    group, switch = await new_group(never, members[:1])
    assert switch is None
    for user_id in members[1:]:
        assert await never.add_member(group.id, user_id) is None
    assert (await never.get(group.id)).stream is None


def created(group: Group) -> Announcement:
    return Announcement(GroupChange(GROUP_UPDATED, new_id(), group.id, group.owner_id, 1_700_000_000,
                                    name=group.name), list(group.member_ids), int(time.time()))


async def new_announced_group(groups: SqlGroupRepository, members: list[str], kind: str = "group"):
    group = Group(id=new_id(), name="g", owner_id=members[0], member_ids=list(members), kind=kind)
    announce = created(group)
    return group, announce, await groups.add(group, announce)


@pytest.mark.gen_test
async def test_the_join_that_makes_a_group_large_stores_its_switch_with_its_announcement(db):
    """What the relay reads back is the announcement as stored, with the very GroupSwitch
    the join answered; the group's creation, small, carries none."""
    groups, outbox = SqlGroupRepository(db, large_group=3), SqlOutbox(db)
    a, b, c, d = await people(db, 4)
    group, creation, answered = await new_announced_group(groups, [a, b, c])
    assert answered is None
    join = announcement(MEMBER_ADDED, group.id, d)
    switch = await groups.add_member(group.id, d, join)
    assert isinstance(switch, GroupSwitch)
    stored = await outbox.announcements(0, 10)
    assert stored == [creation, replace(join, stream_change=switch)]
    assert stored[0].stream_change is None and stored[1].stream_change == switch


@pytest.mark.gen_test
async def test_a_group_or_a_channel_large_from_creation_stores_its_switch_with_the_creation(db):
    members = await people(db, 4)
    outbox = SqlOutbox(db)
    _, creation, switch = await new_announced_group(SqlGroupRepository(db, large_group=3), members)
    channel, channel_creation, channel_switch = await new_announced_group(SqlGroupRepository(db), members[:2],
                                                                          kind=KIND_CHANNEL)
    assert isinstance(switch, GroupSwitch) and isinstance(channel_switch, GroupSwitch) and channel_switch.channel
    assert await outbox.announcements(0, 10) == [replace(creation, stream_change=switch),
                                                 replace(channel_creation, stream_change=channel_switch)]


@pytest.mark.gen_test
async def test_the_joins_and_leaves_of_a_large_group_store_their_member_changes(db):
    """A join's and a leave's MemberChange, each with its record (the announcement's event)
    and, when the leaving owner hands the group on, the new owner."""
    groups, outbox = SqlGroupRepository(db, large_group=2), SqlOutbox(db)
    a, b, c, d = await people(db, 4)
    group, _, switch = await new_announced_group(groups, [a, b, c])
    assert isinstance(switch, GroupSwitch)
    await outbox.announced(switch.event_id)
    joined = announcement(MEMBER_ADDED, group.id, d)
    join = await groups.add_member(group.id, d, joined)
    owner_left = announcement(MEMBER_REMOVED, group.id, a)
    handed_on = await groups.remove_member(group.id, a, b, owner_left)
    left = announcement(MEMBER_REMOVED, group.id, c)
    leave = await groups.remove_member(group.id, c, None, left)
    assert join == MemberChange(JOIN, group.id, joined.event.id, 1, (d,), joined.event)
    assert handed_on == MemberChange(LEAVE, group.id, owner_left.event.id, 2, (a,), owner_left.event, b)
    assert leave == MemberChange(LEAVE, group.id, left.event.id, 3, (c,), left.event)
    stored = await outbox.announcements(0, 10)
    assert [x.stream_change for x in stored] == [join, handed_on, leave]
    assert stored == [replace(joined, stream_change=join), replace(owner_left, stream_change=handed_on),
                      replace(left, stream_change=leave)]
    assert stored[1].stream_change.owner_id == b and stored[2].stream_change.owner_id is None


@pytest.mark.gen_test
async def test_a_small_groups_announcements_carry_no_stream_change(db):
    """Below the threshold (and with none, 0), whatever the caller put in the announcement:
    the repository decides it."""
    groups, outbox = SqlGroupRepository(db, large_group=5), SqlOutbox(db)
    a, b, c = await people(db, 3)
    group, creation, _ = await new_announced_group(groups, [a, b])
    bogus = MemberChange(JOIN, group.id, new_id(), 9, (c,))
    joined = replace(announcement(MEMBER_ADDED, group.id, c), stream_change=bogus)
    assert await groups.add_member(group.id, c, joined) is None
    left = announcement(MEMBER_REMOVED, group.id, b)
    assert await groups.remove_member(group.id, b, None, left) is None
    not_a_member = announcement(MEMBER_REMOVED, group.id, b)  # no change of membership: stored all the same
    assert await groups.remove_member(group.id, b, None, not_a_member) is None
    stored = await outbox.announcements(0, 10)
    assert stored == [creation, replace(joined, stream_change=None), left, not_a_member]
    assert [x.stream_change for x in stored] == [None] * 4
