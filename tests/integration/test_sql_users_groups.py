"""SqlUserRepository and SqlGroupRepository against SQLite and MariaDB."""
from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from adapters.sql.groups import SqlGroupRepository
from adapters.sql.users import SqlUserRepository
from application.ports import GroupPosition
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
async def test_add_many_writes_every_user_in_statements_and_refuses_a_taken_name(users):
    many = [User(id=new_id(), username=f"seed-{i:04d}", password_hash="shared") for i in range(25)]
    await users.add_many(many, per_statement=10)
    assert await users.existing([u.id for u in many]) == {u.id for u in many}
    assert await users.get_by_username("SEED-0024") == many[-1]
    later = [User(id=new_id(), username="seed-late", password_hash="h"),
             User(id=new_id(), username="Seed-0003", password_hash="h")]
    with pytest.raises(errors.UsernameTaken):
        await users.add_many(later)
    assert await users.get_by_username("seed-late") is None  # one statement: all of it or none


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
async def test_a_group_of_an_unknown_owner_or_member_is_not_stored(users, groups):
    """No foreign key to users since revision 0016 (another shard): the repository checks."""
    owner, b = await add_users(users, "owner", "bob")
    for members in ([new_id(), b], [owner, b, new_id()]):
        group = Group(id=new_id(), name="g", owner_id=members[0], member_ids=members)
        with pytest.raises(errors.UserNotFound):
            await groups.add(group)
        assert await groups.get(group.id) is None
    page = await groups.list_for_member(b, None, 10)
    assert page.groups == []


@pytest.mark.gen_test
async def test_remove_members_and_hand_over_ownership(users, groups):
    owner, b, c = await add_users(users, "owner", "bob", "carol")
    group = Group(id=new_id(), name="g", owner_id=owner, member_ids=[owner, b, c])
    await groups.add(group)
    await groups.remove_member(group.id, c, None)
    # Each removal is a new member version (adapters/sql/groups.py), and the count follows.
    assert await groups.get(group.id) == Group(group.id, "g", owner, [owner, b], member_version=1)
    await groups.remove_member(group.id, owner, b)
    assert await groups.get(group.id) == Group(group.id, "g", b, [b], member_version=2)
    # A member who left and comes back joins at the end.
    await groups.add_member(group.id, owner)
    assert (await groups.get(group.id)).member_ids == [b, owner]


async def all_pages(groups, user_id: str, limit: int) -> list[list[str]]:
    """The ids of every page of the user's groups, following next_before."""
    pages, before = [], None
    while True:
        page = await groups.list_for_member(user_id, before, limit)
        pages.append([group.id for group in page.groups])
        before = page.next_before
        if before is None:
            return pages


@pytest.mark.gen_test
async def test_list_for_member_pages_newest_joined_first(users, groups):
    a, b, c = await add_users(users, "anna", "bob", "carol")
    first = Group(id=new_id(), name="first", owner_id=a, member_ids=[a, b])
    early = Group(id=new_id(), name="early", owner_id=c, member_ids=[c])  # b joins it last
    second = Group(id=new_id(), name="second", owner_id=b, member_ids=[b, c])
    third = Group(id=new_id(), name="third", owner_id=c, member_ids=[c, b, a])
    for group in (first, early, second, third):
        await groups.add(group)
    await groups.add_member(early.id, b)
    whole = await groups.list_for_member(b, None, 10)
    assert whole.next_before is None
    assert whole.groups == [Group(early.id, "early", c, [c, b], member_version=1), third, second, first]
    assert await all_pages(groups, b, 2) == [[early.id, third.id], [second.id, first.id]]
    assert await all_pages(groups, b, 3) == [[early.id, third.id, second.id], [first.id]]
    assert await all_pages(groups, b, 4) == [[early.id, third.id, second.id, first.id]]
    assert await all_pages(groups, a, 1) == [[third.id], [first.id]]
    empty = await groups.list_for_member(new_id(), None, 50)
    assert empty.groups == [] and empty.next_before is None


@pytest.mark.gen_test
async def test_a_group_joined_while_paging_comes_first_not_inside(users, groups):
    a, b = await add_users(users, "anna", "bob")
    older = [Group(id=new_id(), name=f"g{n}", owner_id=a, member_ids=[a]) for n in range(4)]
    for group in older:
        await groups.add(group)
    page = await groups.list_for_member(a, None, 2)
    assert [g.id for g in page.groups] == [older[3].id, older[2].id]
    joined = Group(id=new_id(), name="new", owner_id=b, member_ids=[b, a])
    await groups.add(joined)
    await groups.remove_member(older[3].id, a, None)  # leaving one already listed changes nothing either
    rest = await groups.list_for_member(a, page.next_before, 2)
    assert [g.id for g in rest.groups] == [older[1].id, older[0].id] and rest.next_before is None
    assert await all_pages(groups, a, 10) == [[joined.id, older[2].id, older[1].id, older[0].id]]


@pytest.mark.gen_test
async def test_groups_joined_in_the_same_microsecond_are_ordered_by_id(db, users, groups):
    from sqlalchemy import update

    from adapters.sql.tables import group_members

    (a,) = await add_users(users, "anna")
    ids = []
    for n in range(5):
        group = Group(id=new_id(), name=f"g{n}", owner_id=a, member_ids=[a])
        await groups.add(group)
        ids.append(group.id)

    def same_time(conn):
        with conn.begin():
            conn.execute(update(group_members).values(joined_at=datetime(2026, 12, 4, 12, 0, 0, 123456)))

    await db.write(same_time)
    by_id = sorted(ids, reverse=True)
    assert await all_pages(groups, a, 2) == [by_id[:2], by_id[2:4], by_id[4:]]
    assert await all_pages(groups, a, 1) == [[group_id] for group_id in by_id]


@pytest.mark.gen_test
async def test_a_position_from_far_away_is_no_error(users, groups):
    (a,) = await add_users(users, "anna")
    group = Group(id=new_id(), name="g", owner_id=a, member_ids=[a])
    await groups.add(group)
    for joined in (10**19, 0):
        page = await groups.list_for_member(a, GroupPosition(joined, "ffffffff-ffff-4fff-bfff-ffffffffffff"), 5)
        assert [g.id for g in page.groups] == ([group.id] if joined else []), joined


@pytest.mark.gen_test
async def test_a_page_reads_one_range_of_the_members_index(db, users, groups):
    """O(page): the adapter's query walks the (user_id, joined_at, group_id) index,
    however many groups the user is in; it never sorts all of them."""
    from sqlalchemy import event

    (a,) = await add_users(users, "anna")
    for n in range(3):
        await groups.add(Group(id=new_id(), name=f"g{n}", owner_id=a, member_ids=[a]))
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "FROM group_members" in statement and "joined_at DESC" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        first = await groups.list_for_member(a, None, 1)
        await groups.list_for_member(a, first.next_before, 1)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(seen) == 2

    def plan(conn, statement, parameters):
        explain = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
        return [" ".join(str(v) for v in row) for row in conn.exec_driver_sql(explain + statement, parameters)]

    for statement, parameters in seen:
        lines = await db.run(plan, statement, parameters)
        assert any("ix_group_members_user_id_joined_at_group_id" in line for line in lines), lines
        assert not any("TEMP B-TREE" in line or "filesort" in line for line in lines), lines


@pytest.mark.gen_test
async def test_a_large_group(users, groups):
    owner, *others = await add_users(users, *(f"user{i}" for i in range(30)))
    group = Group(id=new_id(), name="big", owner_id=owner, member_ids=[owner, *reversed(others)])
    await groups.add(group)
    assert (await groups.get(group.id)).member_ids == [owner, *reversed(others)]


@pytest.mark.gen_test
async def test_existing_answers_which_users_exist_in_one_question(users):
    ids = await add_users(users, *(f"user{index}" for index in range(3)))
    unknown = [new_id() for _ in range(700)]  # more than one IN (...) list
    assert await users.existing([*unknown, *ids, ids[0]]) == set(ids)
    assert await users.existing([]) == set()
