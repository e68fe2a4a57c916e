"""Groups: create, list, get, add a member, leave, remove, ownership passing on."""
from __future__ import annotations

import pytest

from domain import errors

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@pytest.mark.gen_test
async def test_create_a_group_with_members(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "team", [bob.id, carol.id])
    assert group.public() == {
        "group_id": group.id,
        "name": "team",
        "owner_id": alice.id,
        "member_ids": [alice.id, bob.id, carol.id],
        "kind": "group",
        "member_count": 3,
    }
    assert (await courier.groups_repo.get(group.id)).member_ids == [alice.id, bob.id, carol.id]


@pytest.mark.gen_test
@pytest.mark.parametrize("kind", [None, "group"])
async def test_a_group_is_of_kind_group_unless_asked_otherwise(courier, kind):
    alice = await courier.user("alice")
    group = await courier.groups.create(alice.id, "team", [], kind)
    assert group.kind == "group"
    assert (await courier.groups_repo.get(group.id)).kind == "group"


@pytest.mark.gen_test
@pytest.mark.parametrize("kind", ["Channel", "", "broadcast", 1, ["channel"], {}])
async def test_any_other_kind_is_invalid_input_and_creates_nothing(courier, kind):
    courier.groups.channels = True
    alice = await courier.user("alice")
    with pytest.raises(errors.InvalidInput, match="kind"):
        await courier.groups.create(alice.id, "team", [], kind)
    assert courier.groups_repo.by_id == {}


@pytest.mark.gen_test
async def test_a_channel_is_refused_while_large_groups_are_off(courier):
    # The default build runs with COURIER_LARGE_GROUP=0: nothing would deliver its posts.
    alice = await courier.user("alice")
    assert courier.groups.channels is False
    with pytest.raises(errors.InvalidInput, match="COURIER_LARGE_GROUP"):
        await courier.groups.create(alice.id, "news", [], "channel")
    assert courier.groups_repo.by_id == {}


@pytest.mark.gen_test
async def test_a_channel_is_created_while_large_groups_are_on(courier):
    courier.groups.channels = True
    alice, bob = await courier.users_named("alice", "bob")
    group = await courier.groups.create(alice.id, "news", [bob.id], "channel")
    assert group.public()["kind"] == "channel"
    assert (await courier.groups_repo.get(group.id)).kind == "channel"


@pytest.mark.gen_test
@pytest.mark.parametrize("member_ids", [None, []])
async def test_create_a_group_alone(courier, member_ids):
    alice = await courier.user("alice")
    group = await courier.groups.create(alice.id, "just me", member_ids)
    assert group.member_ids == [alice.id]


@pytest.mark.gen_test
async def test_create_dedupes_members_and_the_owner(courier):
    alice, bob = await courier.users_named("alice", "bob")
    group = await courier.groups.create(alice.id, "team", [bob.id, alice.id, bob.id])
    assert group.member_ids == [alice.id, bob.id]


@pytest.mark.gen_test
async def test_create_with_an_unknown_member_is_not_found_and_creates_nothing(courier):
    alice, bob = await courier.users_named("alice", "bob")
    with pytest.raises(errors.UserNotFound):
        await courier.groups.create(alice.id, "team", [bob.id, UNKNOWN_ID])
    assert courier.groups_repo.by_id == {}


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("name", "member_ids"),
    [("", []), ("x" * 101, []), (None, []), ("team", "not a list"), ("team", ["not-a-uuid"]), ("team", [5])],
)
async def test_create_refuses_invalid_input(courier, name, member_ids):
    alice = await courier.user("alice")
    with pytest.raises(errors.InvalidInput):
        await courier.groups.create(alice.id, name, member_ids)
    assert courier.groups_repo.by_id == {}


@pytest.mark.gen_test
async def test_list_mine_returns_only_the_callers_groups(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    g1 = await courier.groups.create(alice.id, "one", [bob.id])
    g2 = await courier.groups.create(bob.id, "two", [])
    await courier.groups.create(carol.id, "three", [])
    assert [g.id for g in (await courier.groups.list_mine(bob.id)).groups] == [g2.id, g1.id]  # newest first
    assert [g.id for g in (await courier.groups.list_mine(alice.id)).groups] == [g1.id]


@pytest.mark.gen_test
async def test_get_is_for_members_only(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "team", [bob.id])
    assert (await courier.groups.get(bob.id, group.id)).id == group.id
    with pytest.raises(errors.NotAMember):
        await courier.groups.get(carol.id, group.id)
    with pytest.raises(errors.GroupNotFound):
        await courier.groups.get(alice.id, UNKNOWN_ID)
    with pytest.raises(errors.InvalidInput):
        await courier.groups.get(alice.id, "nope")


@pytest.mark.gen_test
async def test_any_member_may_add_a_member(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "team", [bob.id])
    updated = await courier.groups.add_member(bob.id, group.id, carol.id)  # bob is not the owner
    assert updated.member_ids == [alice.id, bob.id, carol.id]
    assert (await courier.groups_repo.get(group.id)).member_ids == [alice.id, bob.id, carol.id]


@pytest.mark.gen_test
async def test_add_member_errors(courier):
    alice, bob, carol, dave = await courier.users_named("alice", "bob", "carol", "dave")
    group = await courier.groups.create(alice.id, "team", [bob.id])
    with pytest.raises(errors.AlreadyAMember):
        await courier.groups.add_member(alice.id, group.id, bob.id)
    with pytest.raises(errors.NotAMember):
        await courier.groups.add_member(carol.id, group.id, dave.id)  # outsiders may not add
    with pytest.raises(errors.NotAMember):
        await courier.groups.add_member(carol.id, group.id, carol.id)  # nor add themselves
    with pytest.raises(errors.UserNotFound):
        await courier.groups.add_member(alice.id, group.id, UNKNOWN_ID)
    with pytest.raises(errors.GroupNotFound):
        await courier.groups.add_member(alice.id, UNKNOWN_ID, carol.id)
    with pytest.raises(errors.InvalidInput):
        await courier.groups.add_member(alice.id, group.id, "nope")
    assert (await courier.groups_repo.get(group.id)).member_ids == [alice.id, bob.id]


@pytest.mark.gen_test
async def test_a_member_may_leave(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "team", [bob.id, carol.id])
    await courier.groups.remove_member(bob.id, group.id, bob.id)
    stored = await courier.groups_repo.get(group.id)
    assert stored.member_ids == [alice.id, carol.id]
    assert stored.owner_id == alice.id
    assert (await courier.groups.list_mine(bob.id)).groups == []
    with pytest.raises(errors.NotAMember):
        await courier.groups.get(bob.id, group.id)


@pytest.mark.gen_test
async def test_the_owner_may_remove_a_member(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "team", [bob.id, carol.id])
    await courier.groups.remove_member(alice.id, group.id, carol.id)
    stored = await courier.groups_repo.get(group.id)
    assert stored.member_ids == [alice.id, bob.id]
    assert stored.owner_id == alice.id


@pytest.mark.gen_test
async def test_a_member_may_not_remove_another(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "team", [bob.id, carol.id])
    with pytest.raises(errors.Forbidden):
        await courier.groups.remove_member(bob.id, group.id, carol.id)
    with pytest.raises(errors.Forbidden):
        await courier.groups.remove_member(bob.id, group.id, alice.id)  # not even the owner
    assert (await courier.groups_repo.get(group.id)).member_ids == [alice.id, bob.id, carol.id]


@pytest.mark.gen_test
async def test_remove_errors(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "team", [bob.id])
    with pytest.raises(errors.NotAMember):
        await courier.groups.remove_member(carol.id, group.id, carol.id)  # an outsider cannot leave
    with pytest.raises(errors.NotAMember):
        await courier.groups.remove_member(carol.id, group.id, bob.id)
    with pytest.raises(errors.NotFound):
        await courier.groups.remove_member(alice.id, group.id, carol.id)  # not a member to remove
    with pytest.raises(errors.GroupNotFound):
        await courier.groups.remove_member(alice.id, UNKNOWN_ID, bob.id)
    with pytest.raises(errors.InvalidInput):
        await courier.groups.remove_member(alice.id, group.id, "nope")


@pytest.mark.gen_test
async def test_the_owner_leaving_passes_ownership_to_the_longest_standing_member(courier):
    alice, bob, carol, dave = await courier.users_named("alice", "bob", "carol", "dave")
    group = await courier.groups.create(alice.id, "team", [carol.id])
    await courier.groups.add_member(alice.id, group.id, bob.id)
    await courier.groups.add_member(alice.id, group.id, dave.id)
    await courier.groups.remove_member(alice.id, group.id, alice.id)
    stored = await courier.groups_repo.get(group.id)
    assert stored.owner_id == carol.id  # carol joined before bob
    assert stored.member_ids == [carol.id, bob.id, dave.id]
    # the new owner has the owner's rights, the old one none
    await courier.groups.remove_member(carol.id, group.id, dave.id)
    with pytest.raises(errors.NotAMember):
        await courier.groups.get(alice.id, group.id)


@pytest.mark.gen_test
async def test_the_last_member_leaving(courier):
    alice = await courier.user("alice")
    group = await courier.groups.create(alice.id, "solo", [])
    await courier.groups.remove_member(alice.id, group.id, alice.id)
    assert (await courier.groups_repo.get(group.id)).member_ids == []
    assert (await courier.groups.list_mine(alice.id)).groups == []


@pytest.mark.gen_test
async def test_a_returned_group_is_not_the_stored_one(courier):
    alice, bob = await courier.users_named("alice", "bob")
    group = await courier.groups.create(alice.id, "team", [])
    fetched = await courier.groups.get(alice.id, group.id)
    fetched.member_ids.append(bob.id)
    assert (await courier.groups_repo.get(group.id)).member_ids == [alice.id]


# --- how fast one user may change groups (COURIER_GROUP_CHANGES) ------------------

@pytest.mark.gen_test
async def test_creations_and_additions_share_one_allowance_per_user(make_courier):
    courier = make_courier(group_changes_per_minute=3)
    alice, bob, carol, dave = await courier.users_named("alice", "bob", "carol", "dave")
    first = await courier.groups.create(alice.id, "one", [bob.id])
    await courier.groups.create(alice.id, "two", [])
    await courier.groups.add_member(alice.id, first.id, carol.id)  # the third change: the burst is spent
    stored = {g.id: list(g.member_ids) for g in courier.groups_repo.by_id.values()}
    with pytest.raises(errors.RateLimited) as refused:
        await courier.groups.create(alice.id, "three", [dave.id])
    assert refused.value.retry_after == pytest.approx(20.0)  # 3 a minute: one more every 20 s
    with pytest.raises(errors.RateLimited):
        await courier.groups.add_member(alice.id, first.id, dave.id)
    # Nothing was written, and dave is in no group.
    assert {g.id: list(g.member_ids) for g in courier.groups_repo.by_id.values()} == stored
    assert (await courier.groups.list_mine(dave.id)).groups == []
    # Another user has an allowance of their own, and leaving is never limited.
    await courier.groups.add_member(bob.id, first.id, dave.id)
    await courier.groups.remove_member(alice.id, first.id, bob.id)
    courier.clock.advance(20)
    await courier.groups.create(alice.id, "three", [])


@pytest.mark.gen_test
async def test_a_malformed_change_spends_nothing(make_courier):
    courier = make_courier(group_changes_per_minute=1)
    alice, bob = await courier.users_named("alice", "bob")
    for name, members in (("", []), ("x", "nope"), ("x", ["not-a-uuid"])):
        with pytest.raises(errors.InvalidInput):
            await courier.groups.create(alice.id, name, members)
    with pytest.raises(errors.InvalidInput):
        await courier.groups.add_member(alice.id, "not-a-uuid", bob.id)
    group = await courier.groups.create(alice.id, "team", [])
    with pytest.raises(errors.RateLimited):
        await courier.groups.add_member(alice.id, group.id, bob.id)


@pytest.mark.gen_test
async def test_no_allowance_when_the_setting_is_0(make_courier):
    courier = make_courier(group_changes_per_minute=0)
    alice = await courier.user("alice")
    for number in range(100):
        await courier.groups.create(alice.id, f"group {number}", [])


# --- the caller's groups, paged (GET /groups) ------------------------------------

@pytest.mark.gen_test
async def test_list_mine_pages_newest_joined_first(courier):
    alice, bob = await courier.users_named("alice", "bob")
    made = [await courier.groups.create(alice.id, f"g{n}", []) for n in range(5)]
    joined_last = await courier.groups.create(bob.id, "bob's", [])
    await courier.groups.add_member(bob.id, joined_last.id, alice.id)
    expected = [joined_last.id] + [g.id for g in reversed(made)]
    pages, before = [], None
    while True:
        page = await courier.groups.list_mine(alice.id, before, "2")
        pages.append([g.id for g in page.groups])
        before = page.next_before
        if before is None:
            break
        assert isinstance(before, str)
    assert pages == [expected[0:2], expected[2:4], expected[4:6]]
    everything = await courier.groups.list_mine(alice.id)  # 50 by default
    assert [g.id for g in everything.groups] == expected and everything.next_before is None


@pytest.mark.gen_test
@pytest.mark.parametrize("limit", ["0", "201", "-1", "x", "1.5", "9" * 30, "٣"])
async def test_list_mine_refuses_a_bad_limit(courier, limit):
    alice = await courier.user("alice")
    with pytest.raises(errors.InvalidInput):
        await courier.groups.list_mine(alice.id, None, limit)


@pytest.mark.gen_test
@pytest.mark.parametrize("before", [
    "x", "%%%", "123", "é", "a" * 500,
    "MTIzOm5vdC1hLXV1aWQ",  # base64 of "123:not-a-uuid"
    "LTE6MDAwMDAwMDAtMDAwMC00MDAwLTgwMDAtMDAwMDAwMDAwMDAw",  # "-1:<uuid>"
    "_-8",  # base64 of bytes that are not ASCII
])
async def test_list_mine_refuses_a_before_it_did_not_give_out(courier, before):
    alice = await courier.user("alice")
    with pytest.raises(errors.InvalidInput):
        await courier.groups.list_mine(alice.id, before, None)


def test_a_position_survives_its_token():
    from application.group_pages import parse_position, position_token
    from application.ports import GroupPosition

    for position in (GroupPosition(0, UNKNOWN_ID), GroupPosition(10**19, UNKNOWN_ID),
                     GroupPosition(1_764_850_000_123_456, "6f1d2c3b-0a9e-4d8c-b7a6-958473625140")):
        token = position_token(position)
        assert token.isascii() and "=" not in token
        assert parse_position(token) == position
    assert parse_position(None) is None and parse_position("") is None


@pytest.mark.gen_test
async def test_only_the_owner_posts_in_a_channel_even_by_the_small_path(courier):
    # The unit build has no streams (large groups off): the send goes by the small path,
    # which must refuse as the stream's script does (a channel whose switch is on its way).
    courier.groups.channels = True
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "news", [bob.id], "channel")
    with pytest.raises(errors.NotAllowed) as refused:
        await courier.send_group(bob.id, group.id, {"content": "me too"})
    assert refused.value.code == "not_allowed"
    with pytest.raises(errors.NotAMember):
        await courier.send_group(carol.id, group.id, {"content": "hello?"})
    posted = await courier.send_group(alice.id, group.id, {"content": "news"})
    assert posted.seq == 1
