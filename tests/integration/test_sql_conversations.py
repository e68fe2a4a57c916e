"""The conversation list's state in SQL (SQLite and MariaDB): kept by the worker's
save exactly once, whatever the order and however often a message is handed out; and
the group members' markers for GET /groups/{id}/reads (group_reads, GroupReads)."""
from __future__ import annotations

import time
from datetime import datetime

import pytest
from sqlalchemy import insert

from adapters.sql.batches import IN_CHUNK
from adapters.sql.conversations import SqlConversationStore
from adapters.sql.groups import SqlGroupRepository
from adapters.sql.messages import SqlMessageStore
from adapters.sql.tables import users
from adapters.sql.users import SqlReceiptPreferences, SqlUserRepository
from application.conversations import GroupReads
from domain import errors
from domain.model import Group, User
from tests.integration.test_sql_messages import group_message, new_id, numbered, people, private  # noqa: F401

MS = int(time.time() * 1000) + 86_400_000  # a day ahead: after the group's creation
T0 = MS << 20  # a stream:persist order: (ms << 20) | n


@pytest.fixture
def store(db) -> SqlMessageStore:
    return SqlMessageStore(db)


@pytest.mark.gen_test(timeout=30)
async def test_saving_again_or_out_of_order_changes_nothing_twice(db, store, people):  # noqa: F811 - the fixture imported above
    anna, bob = people["anna"], people["bob"]
    one, two, three = numbered([private(bob, anna, "1"), private(bob, anna, "2"), private(anna, bob, "3")])
    await store.save([three], [T0 + 3])  # stored first: a late batch of older ones must not move it back
    await store.save([one, two], [T0 + 1, T0 + 2])
    await store.save([one, two, three], [T0 + 1, T0 + 2, T0 + 3])  # handed out again
    conversations = SqlConversationStore(db)
    (mine,) = [c for c in (await conversations.list(anna, None, 10)).conversations if c.peer_id]
    assert mine.peer_id == bob and mine.name == "bob"
    assert mine.last_seq == 3 and mine.last_message is not None and mine.last_message.content == "3"
    assert mine.read_seq == 3 and mine.unread_count == 0  # anna's own send moved her marker
    (theirs,) = [c for c in (await conversations.list(bob, None, 10)).conversations if c.peer_id]
    assert theirs.read_seq == 2 and theirs.unread_count == 1
    assert mine.activity == theirs.activity == MS * 1000 + 3


@pytest.mark.gen_test(timeout=30)
async def test_groups_and_markers(db, store, people):  # noqa: F811 - the fixture imported above
    anna, bob, carol, group = people["anna"], people["bob"], people["carol"], people["group"]
    conversations = SqlConversationStore(db)
    (empty,) = (await conversations.list(carol, None, 10)).conversations
    assert empty.group_id == group and empty.last_message is None and empty.last_seq == 0
    await store.save(numbered([group_message(anna, group), group_message(bob, group)]), [T0 + 1, T0 + 2])
    assert await conversations.last_seq("g:" + group) == 2
    assert await conversations.mark_read(carol, "g:" + group, 1, group_id=group) == (1, 1, False)
    assert await conversations.mark_read(carol, "g:" + group, 0, group_id=group) == (1, 1, False)  # never back
    assert await conversations.mark_read(anna, "g:" + group, 2, group_id=group) == (2, 0, False)
    groups = SqlGroupRepository(db)
    await groups.remove_member(group, carol, None)
    assert (await conversations.list(carol, None, 10)).conversations == []
    await groups.add_member(group, carol)
    (back,) = (await conversations.list(carol, None, 10)).conversations
    assert back.read_seq == 2 and back.unread_count == 0  # what came before joining is not unread


@pytest.mark.gen_test(timeout=30)
async def test_one_batch_of_every_kind_written_from_the_rows_inserted(db, store, people):  # noqa: F811 - the fixture imported above
    """Private chats, a note to oneself and a group in one batch: one upsert for the
    conversations, one for the private chats' member rows, the group's members updated."""
    anna, bob, group = people["anna"], people["bob"], people["group"]
    to_bob, note, in_group = private(anna, bob).with_seq(1), private(anna, anna).with_seq(1), group_message(bob, group)
    # entry n = 1500 of its millisecond: counted as its 999th microsecond, as accepted_micros did
    await store.save([to_bob, note, in_group.with_seq(1)], [T0 + 1500, T0 + 1501, (MS + 1 << 20) + 7])
    conversations = SqlConversationStore(db)
    listed = {(c.peer_id or c.group_id): c for c in (await conversations.list(anna, None, 10)).conversations}
    assert listed[bob].activity == MS * 1000 + 999 and listed[bob].read_seq == 1 and listed[bob].unread_count == 0
    assert listed[anna].activity == MS * 1000 + 999 and listed[anna].read_seq == 1  # notes to self: one row
    assert listed[group].activity == (MS + 1) * 1000 + 7 and listed[group].unread_count == 1
    theirs = {(c.peer_id or c.group_id): c for c in (await conversations.list(bob, None, 10)).conversations}
    assert theirs[anna].read_seq == 0 and theirs[anna].unread_count == 1
    assert theirs[group].read_seq == 1 and theirs[group].activity == listed[group].activity
    assert [c.peer_id or c.group_id for c in (await conversations.list(anna, None, 10)).conversations][0] == group


@pytest.mark.gen_test(timeout=30)
async def test_rows_saved_without_an_order_take_the_clock(db, store, people):  # noqa: F811 - the fixture imported above
    anna, bob, carol = people["anna"], people["bob"], people["carol"]
    before = time.time_ns() // 1000
    await store.save([private(anna, bob).with_seq(1), private(anna, carol).with_seq(1)])
    after = time.time_ns() // 1000
    first, second = (await SqlConversationStore(db).list(anna, None, 10)).conversations[:2]
    assert second.activity < first.activity  # in the order of the table's numbers
    assert before <= second.activity and first.activity <= after + 10
    assert {first.peer_id, second.peer_id} == {bob, carol} and first.peer_id == carol


@pytest.mark.gen_test(timeout=30)
async def test_pages_follow_activity(db, store, people):  # noqa: F811 - the fixture imported above
    anna, bob, carol = people["anna"], people["bob"], people["carol"]
    await store.save([private(bob, anna).with_seq(1)], [T0 + 10])
    await store.save([private(carol, anna).with_seq(1)], [T0 + 20])
    conversations = SqlConversationStore(db)
    first = await conversations.list(anna, None, 1)
    assert [c.peer_id for c in first.conversations] == [carol]
    second = await conversations.list(anna, first.next_before, 1)
    third = await conversations.list(anna, second.next_before, 1)
    assert [c.peer_id for c in second.conversations] == [bob]
    assert [c.group_id for c in third.conversations] == [people["group"]] and third.next_before is None


@pytest.mark.gen_test(timeout=30)
async def test_group_reads_answers_each_members_marker_and_whether_it_sends_receipts(db, store, people):  # noqa: F811 - the fixture imported above
    anna, bob, carol, group = people["anna"], people["bob"], people["carol"], people["group"]
    conversation = "g:" + group
    conversations = SqlConversationStore(db)
    await store.save(numbered([group_message(anna, group, "1"), group_message(bob, group, "2"),
                               group_message(anna, group, "3")]), [T0 + 1, T0 + 2, T0 + 3])
    assert await conversations.mark_read(carol, conversation, 2, group_id=group) == (2, 1, False)
    await SqlReceiptPreferences(db).set_sends_receipts(bob, False)
    # The senders' own sends moved their markers; carol's POST moved hers; bob turned receipts off.
    expected = {anna: (3, True), bob: (2, False), carol: (2, True)}
    assert await conversations.group_reads(conversation, [anna, bob, carol]) == expected
    # Only the ids asked for, and only those that are users: a user with no marker there reads 0.
    dora = new_id()
    await SqlUserRepository(db).add(User(id=dora, username="dora", password_hash="h"))
    assert await conversations.group_reads(conversation, [carol, new_id(), dora]) == {carol: (2, True),
                                                                                       dora: (0, True)}
    assert await conversations.group_reads(conversation, []) == {}


@pytest.mark.gen_test(timeout=30)
async def test_group_reads_as_each_member_sees_them_members_only(db, store, people):  # noqa: F811 - the fixture imported above
    anna, bob, carol, group = people["anna"], people["bob"], people["carol"], people["group"]
    await store.save(numbered([group_message(anna, group, "1"), group_message(anna, group, "2")]), [T0 + 1, T0 + 2])
    conversations, groups = SqlConversationStore(db), SqlGroupRepository(db)
    await conversations.mark_read(bob, "g:" + group, 1, group_id=group)
    await SqlReceiptPreferences(db).set_sends_receipts(bob, False)
    reads = GroupReads(conversations, groups)

    async def seen_by(user_id: str) -> list[tuple[str, int | None]]:
        return [(member.user_id, member.read_seq) for member in await reads(user_id, group)]

    # In the group's member order; bob's marker is hidden (None) from all but bob.
    assert await seen_by(anna) == [(anna, 2), (bob, None), (carol, 0)]
    assert await seen_by(carol) == [(anna, 2), (bob, None), (carol, 0)]
    assert await seen_by(bob) == [(anna, 2), (bob, 1), (carol, 0)]
    dora = new_id()
    await SqlUserRepository(db).add(User(id=dora, username="dora", password_hash="h"))
    with pytest.raises(errors.NotAMember):
        await reads(dora, group)
    with pytest.raises(errors.GroupNotFound):
        await reads(anna, new_id())
    await groups.remove_member(group, carol, None)
    assert await seen_by(anna) == [(anna, 2), (bob, None)]  # a member no more: not listed
    with pytest.raises(errors.NotAMember):
        await reads(carol, group)


@pytest.mark.gen_test(timeout=60)
async def test_group_reads_of_a_group_larger_than_one_in_list(db, store, people):  # noqa: F811 - the fixture imported above
    """More members than one IN (...) list holds (adapters/sql/batches.py's IN_CHUNK)."""
    anna = people["anna"]
    members = [anna] + [new_id() for _ in range(IN_CHUNK + 20)]
    await db.write(_add_users, members[1:])
    group = new_id()
    await SqlGroupRepository(db).add(Group(id=group, name="big", owner_id=anna, member_ids=members))
    await store.save(numbered([group_message(anna, group, str(n)) for n in range(3)]), [T0 + 1, T0 + 2, T0 + 3])
    conversations = SqlConversationStore(db)
    last = members[-1]
    await conversations.mark_read(last, "g:" + group, 2, group_id=group)
    await SqlReceiptPreferences(db).set_sends_receipts(last, False)
    reads = await conversations.group_reads("g:" + group, members)
    assert len(reads) == len(members)
    assert reads[anna] == (3, True) and reads[last] == (2, False) and reads[members[1]] == (0, True)


def _add_users(conn, user_ids: list[str]) -> None:
    with conn.begin():
        conn.execute(insert(users), [dict(id=user_id, username=f"u{index}", username_key=f"u{index}",
                                          password_hash="h", created_at=datetime(2026, 1, 1),
                                          normalised_key=f"u{index}")
                                     for index, user_id in enumerate(user_ids)])


@pytest.mark.gen_test(timeout=30)
async def test_a_large_groups_messages_write_no_member_row_and_the_list_places_it_by_its_activity(
        db, store, people):  # noqa: F811 - the fixture imported above
    """Design section 10: a large group's member rows keep their join activity (a message
    to 100,000 members writes none of their rows); the list places the group by its
    conversation's activity, merged with the ordinary rows, paging across both."""
    from sqlalchemy import select

    from adapters.sql.tables import conversation_members

    anna, bob, carol, small = people["anna"], people["bob"], people["carol"], people["group"]
    big = new_id()
    # large_group=3: a group of four is large from creation (the switch marks its rows).
    await SqlGroupRepository(db, large_group=3).add(
        Group(id=big, name="big", owner_id=anna, member_ids=[anna, bob, carol, await one_more(db)]))
    await store.save(numbered([group_message(bob, small)]), [T0 + 1])
    await store.save([private(anna, bob, "p").with_seq(1)], [T0 + 2])
    await store.save(numbered([group_message(bob, big, "newest")]), [T0 + 3])

    def activities(conn):
        m = conversation_members.c
        return dict(conn.execute(select(m.user_id, m.activity).where(m.conversation == "g:" + big)).all())

    joined = await db.run(activities)
    assert all(activity < MS * 1000 for activity in joined.values())  # untouched by the message
    conversations = SqlConversationStore(db)
    listed = (await conversations.list(carol, None, 10)).conversations
    assert [c.group_id for c in listed] == [big, small]
    assert listed[0].activity == MS * 1000 + 3 and listed[0].unread_count == 1
    assert listed[0].last_message is not None and listed[0].last_message.content == "newest"
    # Anna's list pages across both kinds of row, each once, most recent first.
    first = await conversations.list(anna, None, 1)
    assert [c.group_id for c in first.conversations] == [big]
    second = await conversations.list(anna, first.next_before, 1)
    assert [c.peer_id for c in second.conversations] == [bob]
    third = await conversations.list(anna, second.next_before, 5)
    assert [c.group_id for c in third.conversations] == [small] and third.next_before is None


async def one_more(db) -> str:
    user_id = new_id()
    await SqlUserRepository(db).add(User(id=user_id, username="u" + user_id[:8], password_hash="h"))
    return user_id
