"""The conversation list and read markers (ListConversations, MarkRead) through the
container, over the fake ConversationStore (tests/fakes/conversations.py) kept by the
fake inbox and group store as the embedded mode's transactions keep the SQL one."""
from __future__ import annotations

import pytest

from application.conversations import private_conversation
from domain import errors
from domain.events import ReadMarker
from tests.unit.courier import build


async def send(courier, sender, recipient, content="hi"):
    return await courier.send_private(sender.id, {"to_user_id": recipient.id, "content": content})


def summary(page):
    return [(s.conversation, s.name, s.last_message.content if s.last_message else None, s.last_seq, s.read_seq,
             s.unread_count) for s in page.conversations]


@pytest.mark.gen_test
async def test_the_list_holds_chats_where_the_caller_only_sent_and_new_groups_most_recent_first():
    courier = build()
    ann, bob, cid = await courier.users_named("ann", "bob", "cid")
    await send(courier, ann, bob, "one")
    await send(courier, ann, bob, "two")
    group = await courier.groups.create(cid.id, "team", [ann.id])
    page = await courier.list_conversations(ann.id, None, None)
    assert summary(page) == [
        ("g:" + group.id, "team", None, 0, 0, 0),
        (private_conversation(ann.id, bob.id), "bob", "two", 2, 2, 0),
    ]
    assert summary(await courier.list_conversations(bob.id, None, None)) == [
        (private_conversation(ann.id, bob.id), "ann", "two", 2, 0, 2)]
    await courier.send_group(cid.id, group.id, {"content": "hey"})
    bob_page = await courier.list_conversations(ann.id, None, None)
    assert summary(bob_page)[0] == ("g:" + group.id, "team", "hey", 1, 0, 1)


@pytest.mark.gen_test
async def test_pages_follow_next_before_and_a_bad_before_is_refused():
    courier = build()
    me, *peers = await courier.users_named("mee", "peer1", "peer2", "peer3", "peer4", "peer5")
    for peer in peers:
        await send(courier, peer, me)
    seen, before = [], None
    while True:
        page = await courier.list_conversations(me.id, before, "2")
        seen += [s.peer_id for s in page.conversations]
        if page.next_before is None:
            break
        before = f"{page.next_before.activity}_{page.next_before.conversation}"
    assert seen == [p.id for p in reversed(peers)]
    with pytest.raises(errors.InvalidInput):
        await courier.list_conversations(me.id, "nonsense", "2")


@pytest.mark.gen_test
async def test_mark_read_moves_forward_only_and_tells_the_readers_devices_once():
    courier = build()
    ann, bob = await courier.users_named("ann", "bob")
    for text in ("a", "b", "c"):
        await send(courier, ann, bob, text)
    result = await courier.mark_read.private(bob.id, ann.id, {"seq": 2})
    assert (result.read_seq, result.unread_count) == (2, 1)
    again = await courier.mark_read.private(bob.id, ann.id, {"seq": 2})  # a retry
    lower = await courier.mark_read.private(bob.id, ann.id, {"seq": 1})
    assert (again.read_seq, again.unread_count) == (lower.read_seq, lower.unread_count) == (2, 1)
    with pytest.raises(errors.InvalidInput):
        await courier.mark_read.private(bob.id, ann.id, {"seq": 4})
    with pytest.raises(errors.InvalidInput):
        await courier.mark_read.private(bob.id, ann.id, {"seq": True})
    with pytest.raises(errors.UserNotFound):
        await courier.mark_read.private(bob.id, "0" * 8 + "-0000-4000-8000-" + "0" * 12, {"seq": 1})
    events = [d.event for d in await courier.inbox.read(bob.id, None, 100) if isinstance(d.event, ReadMarker)]
    assert [(e.seq, e.conversation_id, e.user_id) for e in events] == [(2, ann.id, bob.id)]
    # The other user of the chat gets the same event once, as a read receipt.
    assert [d.event for d in await courier.inbox.read(ann.id, None, 100) if isinstance(d.event, ReadMarker)] == events
    (state,) = (await courier.list_conversations(bob.id, None, None)).conversations
    assert (state.read_seq, state.unread_count) == (2, 1)
    # Sending moves the sender's own marker to its message: no read event of its own.
    await send(courier, bob, ann, "d")
    (state,) = (await courier.list_conversations(bob.id, None, None)).conversations
    assert (state.last_seq, state.read_seq, state.unread_count) == (4, 4, 0)
    assert len([d for d in await courier.inbox.read(bob.id, None, 100) if isinstance(d.event, ReadMarker)]) == 1


@pytest.mark.gen_test
async def test_group_markers_members_only_and_a_joiner_starts_with_nothing_unread():
    courier = build()
    owner, ann, late, outsider = await courier.users_named("owner", "ann", "late", "outsider")
    group = await courier.groups.create(owner.id, "g", [ann.id])
    for text in ("1", "2"):
        await courier.send_group(owner.id, group.id, {"content": text})
    result = await courier.mark_read.group(ann.id, group.id, {"seq": 1})
    assert (result.read_seq, result.unread_count) == (1, 1)
    with pytest.raises(errors.NotAMember):
        await courier.mark_read.group(outsider.id, group.id, {"seq": 1})
    with pytest.raises(errors.GroupNotFound):
        await courier.mark_read.group(ann.id, "0" * 8 + "-0000-4000-8000-" + "0" * 12, {"seq": 1})
    await courier.groups.add_member(owner.id, group.id, late.id)
    (state,) = (await courier.list_conversations(late.id, None, None)).conversations
    assert (state.last_seq, state.read_seq, state.unread_count) == (2, 2, 0)
    await courier.groups.remove_member(owner.id, group.id, ann.id)
    assert (await courier.list_conversations(ann.id, None, None)).conversations == []


@pytest.mark.gen_test
async def test_the_list_shows_an_edit_and_a_tombstone_once_stored():
    courier = build()
    ann, bob = await courier.users_named("ann", "bob")
    message = await send(courier, ann, bob, "helo")
    await courier.persist_all()
    change = courier.container.change_messages()
    await change.edit(ann.id, message.id, {"content": "hello"})
    (state,) = (await courier.list_conversations(bob.id, None, None)).conversations
    assert state.last_message.content == "hello" and state.last_message.edited_at is not None
    await change.delete(ann.id, message.id)
    (state,) = (await courier.list_conversations(bob.id, None, None)).conversations
    assert state.last_message.deleted_at is not None and not state.last_message.content
