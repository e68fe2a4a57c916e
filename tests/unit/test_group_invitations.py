"""Invitations (docs/design/large-groups.md, section 9): the owner invites a user, who is
told in its own log (group_invited, exactly once: through the outbox) and joins by adding
itself; the join spends the invitation."""
from __future__ import annotations

import pytest

from domain import errors
from domain.events import GroupChange, in_original_view
from tests.unit.courier import Courier

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def changes_in_log(courier: Courier, user_id: str) -> list[GroupChange]:
    return [d.event for d in courier.inbox._streams.get(user_id, []) if isinstance(d.event, GroupChange)]


@pytest.mark.gen_test
async def test_the_owner_invites_and_the_invitee_joins_by_adding_itself(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "news", [bob.id])
    invitation = await courier.groups.invite(alice.id, group.id, carol.id)
    assert invitation.new
    assert invitation.public() == {"group_id": group.id, "user_id": carol.id, "invited_by": alice.id}
    [told] = changes_in_log(courier, carol.id)
    assert told.public() == {"type": "group_invited", "id": told.id, "group_id": group.id, "user_id": carol.id,
                             "name": "news", "by_user_id": alice.id, "created_at": told.created_at}
    assert not in_original_view(told, carol.id)
    assert [c.type for c in changes_in_log(courier, bob.id)] == ["group_updated"]  # the members are not told
    assert courier.outbox.stored == {}
    joined = await courier.groups.add_member(carol.id, group.id, carol.id)
    assert joined.member_ids == [alice.id, bob.id, carol.id] and joined.member_count == 3
    assert [(c.type, c.by_user_id) for c in changes_in_log(courier, carol.id)] == [
        ("group_invited", alice.id), ("member_added", carol.id)]
    assert courier.groups_repo.invitations == {}  # spent by the join
    await courier.groups.remove_member(carol.id, group.id, carol.id)
    with pytest.raises(errors.NotAMember):  # once out, it needs another invitation
        await courier.groups.add_member(carol.id, group.id, carol.id)


@pytest.mark.gen_test
async def test_inviting_again_tells_nothing_again(courier):
    alice, bob = await courier.users_named("alice", "bob")
    group = await courier.groups.create(alice.id, "news", [])
    assert (await courier.groups.invite(alice.id, group.id, bob.id)).new
    assert not (await courier.groups.invite(alice.id, group.id, bob.id)).new
    assert [c.type for c in changes_in_log(courier, bob.id)] == ["group_invited"]


@pytest.mark.gen_test
async def test_a_join_by_a_member_spends_the_invitation_too(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "news", [bob.id])
    await courier.groups.invite(alice.id, group.id, carol.id)
    await courier.groups.add_member(bob.id, group.id, carol.id)
    assert courier.groups_repo.invitations == {}


@pytest.mark.gen_test
async def test_who_may_invite_and_whom(courier):
    alice, bob, carol, dave = await courier.users_named("alice", "bob", "carol", "dave")
    group = await courier.groups.create(alice.id, "news", [bob.id])
    with pytest.raises(errors.Forbidden) as refused:  # a member, not the owner
        await courier.groups.invite(bob.id, group.id, carol.id)
    assert refused.value.code == "forbidden"
    with pytest.raises(errors.NotAMember):
        await courier.groups.invite(dave.id, group.id, carol.id)
    with pytest.raises(errors.AlreadyAMember):
        await courier.groups.invite(alice.id, group.id, bob.id)
    with pytest.raises(errors.UserNotFound):
        await courier.groups.invite(alice.id, group.id, UNKNOWN_ID)
    with pytest.raises(errors.GroupNotFound):
        await courier.groups.invite(alice.id, UNKNOWN_ID, carol.id)
    with pytest.raises(errors.InvalidInput):
        await courier.groups.invite(alice.id, group.id, "not-an-id")
    assert courier.groups_repo.invitations == {}
    assert courier.outbox.stored == {}
    assert changes_in_log(courier, carol.id) == []


@pytest.mark.gen_test
async def test_without_an_invitation_a_stranger_adds_neither_itself_nor_others(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "news", [])
    await courier.groups.invite(alice.id, group.id, carol.id)
    with pytest.raises(errors.NotAMember):
        await courier.groups.add_member(bob.id, group.id, bob.id)
    with pytest.raises(errors.NotAMember):  # an invitee adds only itself
        await courier.groups.add_member(carol.id, group.id, bob.id)
    assert (await courier.groups.get(alice.id, group.id)).member_ids == [alice.id]
    assert list(courier.groups_repo.invitations) == [(group.id, carol.id)]
    assert courier.outbox.stored == {}


@pytest.mark.gen_test
async def test_an_invitation_whose_event_could_not_be_appended_is_relayed_once(courier):
    alice, bob = await courier.users_named("alice", "bob")
    group = await courier.groups.create(alice.id, "news", [])
    courier.inbox.fail_next = errors.ServiceUnavailable("the log's store is down")
    await courier.groups.invite(alice.id, group.id, bob.id)
    assert changes_in_log(courier, bob.id) == []
    assert await courier.relay_due() == 1
    assert [c.type for c in changes_in_log(courier, bob.id)] == ["group_invited"]
    assert await courier.relay_due() == 0


# --- bulk joins (ManageGroups.add_members: tests and seeding) ----------------------


@pytest.mark.gen_test
async def test_a_bulk_join_goes_in_batches_each_one_version_and_one_announcement(courier):
    alice, bob, *others = await courier.users_named("alice", "bob", "cat1", "cat2", "cat3", "cat4", "cat5")
    group = await courier.groups.create(alice.id, "news", [bob.id])
    await courier.groups.invite(alice.id, group.id, others[0].id)
    ids = [u.id for u in others]
    added = await courier.groups.add_members(alice.id, group.id, [*ids, bob.id, ids[0]], batch=2)
    assert added == 5  # bob is a member already; c1 once
    got = await courier.groups_repo.get(group.id)
    assert got.member_ids == [alice.id, bob.id, *ids]
    assert (got.member_count, got.member_version) == (7, 3)  # three batches: 2, 2, 1
    assert courier.groups_repo.invitations == {}
    assert courier.outbox.stored == {}
    # Each joiner finds the group as a creation's first members do; the others are not told.
    for user in others:
        assert [c.type for c in changes_in_log(courier, user.id) if c.type != "group_invited"] == ["group_updated"]
    assert [c.type for c in changes_in_log(courier, bob.id)] == ["group_updated"]
    assert await courier.groups.add_members(alice.id, group.id, ids) == 0


@pytest.mark.gen_test
async def test_a_bulk_join_with_an_unknown_user_adds_no_one(courier):
    alice, bob = await courier.users_named("alice", "bob")
    group = await courier.groups.create(alice.id, "news", [])
    with pytest.raises(errors.UserNotFound):
        await courier.groups.add_members(alice.id, group.id, [bob.id, UNKNOWN_ID])
    with pytest.raises(errors.NotAMember):
        await courier.groups.add_members(bob.id, group.id, [bob.id])
    with pytest.raises(errors.InvalidInput):
        await courier.groups.add_members(alice.id, group.id, ["nope"])
    assert (await courier.groups_repo.get(group.id)).member_ids == [alice.id]
