"""SqlUserRepository and SqlGroupRepository against SQLite and MariaDB."""
from __future__ import annotations

import uuid

import pytest

from adapters.sql.groups import SqlGroupRepository
from adapters.sql.users import SqlUserRepository
from domain import errors
from domain.model import Group, User


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def users(db) -> SqlUserRepository:
    return SqlUserRepository(db)


@pytest.fixture
def groups(db) -> SqlGroupRepository:
    return SqlGroupRepository(db)


async def add_users(users: SqlUserRepository, *names: str) -> list[str]:
    ids = []
    for name in names:
        user = User(id=new_id(), username=name, password_hash="$argon2id$" + name)
        await users.add(user)
        ids.append(user.id)
    return ids


@pytest.mark.gen_test
async def test_add_and_get_a_user(users):
    user = User(id=new_id(), username="Alice_1", password_hash="$argon2id$v=19$m=65536,t=3,p=4$abc")
    await users.add(user)
    assert await users.get(user.id) == user
    assert await users.get(new_id()) is None


@pytest.mark.gen_test
async def test_usernames_are_found_and_unique_regardless_of_case(users):
    user = User(id=new_id(), username="Straße.Bob", password_hash="h")
    await users.add(user)
    assert await users.get_by_username("STRASSE.bob") == user
    assert (await users.get_by_username("straße.bob")).username == "Straße.Bob"  # kept as registered
    assert await users.get_by_username("nobody") is None
    with pytest.raises(errors.UsernameTaken):
        await users.add(User(id=new_id(), username="strasse.BOB", password_hash="h"))
    with pytest.raises(errors.UsernameTaken):
        await users.add(User(id=new_id(), username="Straße.Bob", password_hash="h"))


@pytest.mark.gen_test
async def test_accents_are_not_folded_away(users):
    # A *_ci collation would call these the same name; casefold does not.
    await users.add(User(id=new_id(), username="josé", password_hash="h"))
    await users.add(User(id=new_id(), username="jose", password_hash="h"))
    assert (await users.get_by_username("JOSÉ")).username == "josé"
    assert (await users.get_by_username("jose")).username == "jose"


@pytest.mark.gen_test
async def test_a_name_that_looks_like_a_taken_one_is_taken_and_finds_it(users):
    """Fullwidth and mathematical letters share the normalised key: its unique index refuses
    them (no look-up first here, as when a concurrent registration won), and they find alice."""
    alice = User(id=new_id(), username="alice", password_hash="h")
    await users.add(alice)
    for lookalike in ("ａｌｉｃｅ", "ＡＬＩＣＥ", "\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e"):
        with pytest.raises(errors.UsernameTaken):
            await users.add(User(id=new_id(), username=lookalike, password_hash="h"))
        assert await users.get_by_username(lookalike) == alice
    assert await users.get_by_username("\u0430lice") is None  # Cyrillic а: another name


@pytest.mark.gen_test
async def test_concurrent_registrations_of_lookalikes_make_one_account(users):
    import asyncio

    names = ["alice", "ａｌｉｃｅ", "ALICE", "ＡＬＩＣＥ", "\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e"]
    outcomes = await asyncio.gather(
        *(users.add(User(id=new_id(), username=name, password_hash="h")) for name in names), return_exceptions=True)
    assert sum(outcome is None for outcome in outcomes) == 1, outcomes
    assert all(isinstance(outcome, errors.UsernameTaken) for outcome in outcomes if outcome is not None)


@pytest.mark.gen_test
async def test_unicode_usernames_round_trip(users):
    user = User(id=new_id(), username="用户_😀", password_hash="h")
    await users.add(user)
    assert await users.get_by_username("用户_😀") == user


@pytest.mark.gen_test
async def test_ids_match_exactly(users):
    [user_id] = await add_users(users, "carol")
    assert await users.get(user_id.upper()) is None


@pytest.mark.gen_test
async def test_set_password_hash(users):
    [user_id] = await add_users(users, "dave")
    await users.set_password_hash(user_id, "$argon2id$new")
    assert (await users.get(user_id)).password_hash == "$argon2id$new"


@pytest.mark.gen_test
async def test_a_group_keeps_its_members_in_join_order(users, groups):
    owner, b, c, d = await add_users(users, "owner", "bob", "carol", "dave")
    group = Group(id=new_id(), name="Team 🚀 团队", owner_id=owner, member_ids=[owner, c, b])
    await groups.add(group)
    assert await groups.get(group.id) == group
    await groups.add_member(group.id, d)
    assert (await groups.get(group.id)).member_ids == [owner, c, b, d]
    assert await groups.get(new_id()) is None


@pytest.mark.gen_test
async def test_adding_a_member_twice_or_a_stranger(users, groups):
    owner, b = await add_users(users, "owner", "bob")
    group = Group(id=new_id(), name="g", owner_id=owner, member_ids=[owner])
    await groups.add(group)
    await groups.add_member(group.id, b)
    with pytest.raises(errors.AlreadyAMember):
        await groups.add_member(group.id, b)
    with pytest.raises(errors.UserNotFound):
        await groups.add_member(group.id, new_id())
    with pytest.raises(errors.GroupNotFound):
        await groups.add_member(new_id(), b)
    assert (await groups.get(group.id)).member_ids == [owner, b]


@pytest.mark.gen_test
async def test_remove_members_and_hand_over_ownership(users, groups):
    owner, b, c = await add_users(users, "owner", "bob", "carol")
    group = Group(id=new_id(), name="g", owner_id=owner, member_ids=[owner, b, c])
    await groups.add(group)
    await groups.remove_member(group.id, c, None)
    assert await groups.get(group.id) == Group(group.id, "g", owner, [owner, b])
    await groups.remove_member(group.id, owner, b)
    assert await groups.get(group.id) == Group(group.id, "g", b, [b])
    # A member who left and comes back joins at the end.
    await groups.add_member(group.id, owner)
    assert (await groups.get(group.id)).member_ids == [b, owner]


@pytest.mark.gen_test
async def test_list_for_member(users, groups):
    a, b, c = await add_users(users, "anna", "bob", "carol")
    first = Group(id=new_id(), name="first", owner_id=a, member_ids=[a, b])
    second = Group(id=new_id(), name="second", owner_id=b, member_ids=[b, c])
    third = Group(id=new_id(), name="third", owner_id=c, member_ids=[c, b, a])
    for group in (first, second, third):
        await groups.add(group)
    assert await groups.list_for_member(b) == [first, second, third]
    assert await groups.list_for_member(a) == [first, third]
    assert await groups.list_for_member(new_id()) == []


@pytest.mark.gen_test
async def test_a_large_group(users, groups):
    owner, *others = await add_users(users, *(f"user{i}" for i in range(30)))
    group = Group(id=new_id(), name="big", owner_id=owner, member_ids=[owner, *reversed(others)])
    await groups.add(group)
    assert (await groups.get(group.id)).member_ids == [owner, *reversed(others)]
