"""SqlGroupRepository's invitations (docs/design/large-groups.md, section 9), against SQLite
and MariaDB: an invitation is stored with its announcement in one transaction, once; a
join spends it in the join's transaction; a join by invitation without one changes
nothing."""
from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select

from adapters.sql.groups import SqlGroupRepository
from adapters.sql.outbox import SqlOutbox
from adapters.sql.tables import group_invitations
from application.ports import JOIN, Announcement, MemberChange
from domain import errors
from domain.events import GROUP_INVITED, MEMBER_ADDED, GroupChange
from domain.model import KIND_CHANNEL
from tests.integration.test_sql_group_counts import announcement, new_group, new_id, people


def invited(group_id: str, user_id: str, by: str) -> Announcement:
    event = GroupChange(GROUP_INVITED, new_id(), group_id, by, 1_700_000_000, user_id=user_id, name="g")
    return Announcement(event, [user_id], int(time.time()))


async def invitations(db) -> int:
    return await db.run(lambda conn: conn.execute(select(func.count()).select_from(group_invitations)).scalar())


@pytest.mark.gen_test
async def test_an_invitation_is_stored_once_with_its_announcement_and_a_join_spends_it(db):
    groups, outbox = SqlGroupRepository(db, large_group=3), SqlOutbox(db)
    owner, bob, carol = await people(db, 3)
    group, _ = await new_group(groups, [owner, bob], kind=KIND_CHANNEL)  # large: the join answers its change
    first = invited(group.id, carol, owner)
    assert await groups.invite(group.id, carol, owner, first) is True
    assert await groups.invite(group.id, carol, owner, invited(group.id, carol, owner)) is False
    assert await outbox.announcements(0, 10) == [first]
    assert await invitations(db) == 1
    joined = announcement(MEMBER_ADDED, group.id, carol)
    change = await groups.add_member(group.id, carol, joined, invited=True)
    assert change == MemberChange(JOIN, group.id, joined.event.id, 1, (carol,), joined.event)
    assert await invitations(db) == 0
    assert (await groups.get(group.id)).member_ids == [owner, bob, carol]


@pytest.mark.gen_test
async def test_a_join_by_invitation_without_one_changes_nothing(db):
    groups, outbox = SqlGroupRepository(db), SqlOutbox(db)
    owner, bob = await people(db, 2)
    group, _ = await new_group(groups, [owner])
    with pytest.raises(errors.NotAMember):
        await groups.add_member(group.id, bob, announcement(MEMBER_ADDED, group.id, bob), invited=True)
    got = await groups.get(group.id)
    assert (got.member_ids, got.member_count, got.member_version) == ([owner], 1, 0)
    assert await outbox.announcements(0, 10) == []


@pytest.mark.gen_test
async def test_an_added_member_spends_its_invitation_and_a_member_is_not_invited(db):
    groups, outbox = SqlGroupRepository(db), SqlOutbox(db)
    owner, bob = await people(db, 2)
    group, _ = await new_group(groups, [owner])
    await groups.invite(group.id, bob, owner)
    await groups.add_member(group.id, bob)  # added by a member: the invitation goes too
    assert await invitations(db) == 0
    with pytest.raises(errors.AlreadyAMember):
        await groups.invite(group.id, bob, owner, invited(group.id, bob, owner))
    with pytest.raises(errors.UserNotFound):
        await groups.invite(group.id, new_id(), owner, invited(group.id, bob, owner))
    with pytest.raises(errors.GroupNotFound):
        await groups.invite(new_id(), bob, owner, invited(group.id, bob, owner))
    assert await outbox.announcements(0, 10) == [] and await invitations(db) == 0


@pytest.mark.gen_test
async def test_concurrent_invitations_of_one_user_store_one(db):
    groups, outbox = SqlGroupRepository(db), SqlOutbox(db)
    owner, bob = await people(db, 2)
    group, _ = await new_group(groups, [owner])
    answers = await asyncio.gather(*(groups.invite(group.id, bob, owner, invited(group.id, bob, owner))
                                     for _ in range(4)), return_exceptions=True)
    assert sorted(answers, key=str) == [False, False, False, True]
    assert len(await outbox.announcements(0, 10)) == 1 and await invitations(db) == 1
