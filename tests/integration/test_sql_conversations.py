"""The conversation list's state in SQL (SQLite and MariaDB): kept by the worker's
save exactly once, whatever the order and however often a message is handed out."""
from __future__ import annotations

import time

import pytest

from adapters.sql.conversations import SqlConversationStore
from adapters.sql.groups import SqlGroupRepository
from adapters.sql.messages import SqlMessageStore
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
    assert await conversations.mark_read(carol, "g:" + group, 1, group_id=group) == (1, 1)
    assert await conversations.mark_read(carol, "g:" + group, 0, group_id=group) == (1, 1)  # never back
    assert await conversations.mark_read(anna, "g:" + group, 2, group_id=group) == (2, 0)
    groups = SqlGroupRepository(db)
    await groups.remove_member(group, carol, None)
    assert (await conversations.list(carol, None, 10)).conversations == []
    await groups.add_member(group, carol)
    (back,) = (await conversations.list(carol, None, 10)).conversations
    assert back.read_seq == 2 and back.unread_count == 0  # what came before joining is not unread


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
