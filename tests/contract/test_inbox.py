"""The Inbox port (application/ports.py), over every adapter: memory (the tests' fake),
SQL (the embedded mode's, on SQLite and MariaDB) and Redis (production), each with
the IdempotencyKeys it shares its store with. What the port promises: appends per
recipient, reads after a cursor, oldest first, bounded by `limit`; trimming from the
old end with CursorExpired and CursorUnknown; the confirm step of the sender's
idempotency key, taken with the append; each message's seq in its conversation, the
same numbering (1, 2, 3... per conversation) from every adapter; a message read as it
is now after an edit or a deletion (Store.change: as ChangeMessages makes it)."""
from __future__ import annotations

import dataclasses
import uuid

import pytest

from application.ports import Answer
from domain import errors
from domain.model import GROUP, PRIVATE, Message, cursor_position
from tests.contract.adapters import make_store


def private(sender: str, to: str, content: str = "hi", **kw) -> Message:
    return Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id=sender, to_user_id=to, content=content,
                   created_at=1_700_000_000, **kw)


def contents(deliveries) -> list[str]:
    return [d.event.content for d in deliveries]


@pytest.mark.gen_test(timeout=30)
async def test_deliver_then_read_oldest_first_with_increasing_cursors(kind, request, sql_database):
    store = await make_store(kind, request, sql_database)
    a, b, c, _ = store.people
    sent = [private(a, b, f"m{i}") for i in range(5)]
    accepted = [await store.inbox.deliver(m, [b]) for m in sent]
    cursors = [answer[b] for answer in accepted]
    numbered = [dataclasses.replace(m, seq=i) for i, m in enumerate(sent, 1)]
    assert [answer.message for answer in accepted] == numbered
    assert [answer.cursors for answer in accepted] == [{b: cursor} for cursor in cursors]
    got = await store.inbox.read(b, None, 100)
    assert [d.event for d in got] == numbered
    assert [d.cursor for d in got] == cursors
    assert [cursor_position(x) for x in cursors] == sorted(map(cursor_position, cursors))
    assert len(set(cursors)) == 5
    assert await store.inbox.read(c, None, 100) == []
    assert await store.inbox.last_cursor(b) == cursors[-1]
    assert await store.inbox.last_cursor(c) is None


@pytest.mark.gen_test(timeout=30)
async def test_a_read_after_a_cursor_is_exclusive_and_limited(kind, request, sql_database):
    store = await make_store(kind, request, sql_database)
    a, b, _, _ = store.people
    cursors = [(await store.inbox.deliver(private(a, b, f"m{i}"), [b]))[b] for i in range(5)]
    assert contents(await store.inbox.read(b, cursors[1], 2)) == ["m2", "m3"]
    assert contents(await store.inbox.read(b, cursors[1], 100)) == ["m2", "m3", "m4"]
    assert contents(await store.inbox.read(b, None, 2)) == ["m0", "m1"]
    assert await store.inbox.read(b, cursors[-1], 10) == []  # up to date


@pytest.mark.gen_test(timeout=30)
async def test_a_group_message_lands_once_in_every_recipients_inbox(kind, request, sql_database):
    store = await make_store(kind, request, sql_database)
    a, b, c, d = store.people
    message = Message(type=GROUP, id=str(uuid.uuid4()), from_user_id=a, group_id=str(uuid.uuid4()),
                      content="hi all", created_at=1_700_000_000)
    if store.database is not None:  # groups are rows there, refused unless they exist
        message = dataclasses.replace(message, group_id=await _sql_group(store.database, a, [b, c, d]))
    cursors = await store.inbox.deliver(message, [b, c, b, d])  # b listed twice
    assert set(cursors) == {b, c, d}
    assert cursors.message == dataclasses.replace(message, seq=1)
    for user in (b, c, d):
        [delivery] = await store.inbox.read(user, None, 10)
        assert delivery.event == cursors.message
        assert delivery.cursor == cursors[user]
    assert await store.inbox.read(a, None, 10) == []


async def _sql_group(database, owner: str, members: list[str]) -> str:
    from adapters.sql.groups import SqlGroupRepository
    from domain.model import Group

    group = Group(id=str(uuid.uuid4()), name="g", owner_id=owner, member_ids=[owner, *members])
    await SqlGroupRepository(database).add(group)
    return group.id


@pytest.mark.gen_test(timeout=30)
async def test_content_is_kept_byte_for_byte(kind, request, sql_database):
    store = await make_store(kind, request, sql_database)
    a, b, _, _ = store.people
    texts = ["  <b>hi</b> & bye \n", "émoji 🎉 \u202e", '"quoted" \\ back', "x" * 4000]
    for text in texts:
        await store.inbox.deliver(private(a, b, text), [b])
    assert contents(await store.inbox.read(b, None, 10)) == texts


@pytest.mark.gen_test(timeout=30)
async def test_trimming_keeps_the_newest_and_expires_cursors_before_them(kind, request, sql_database):
    store = await make_store(kind, request, sql_database, max_length=3)
    a, b, c, _ = store.people
    cursors = [(await store.inbox.deliver(private(a, b, f"m{i}"), [b, c]))[b] for i in range(6)]
    assert contents(await store.inbox.read(b, None, 50)) == ["m3", "m4", "m5"]
    for lost in cursors[:2]:  # entries after these were trimmed
        with pytest.raises(errors.CursorExpired):
            await store.inbox.read(b, lost, 50)
    # (The newest trimmed cursor, cursors[2], lost nothing after it: an adapter may
    # take it or answer CursorExpired - Redis cannot tell it from the older ones.)
    assert contents(await store.inbox.read(b, cursors[3], 50)) == ["m4", "m5"]
    assert await store.inbox.last_cursor(b) == cursors[5]
    assert contents(await store.inbox.read(c, None, 50)) == ["m3", "m4", "m5"]


@pytest.mark.gen_test(timeout=30)
async def test_a_cursor_after_the_newest_entry_is_unknown(kind, request, sql_database):
    store = await make_store(kind, request, sql_database)
    a, b, c, _ = store.people
    cursor = (await store.inbox.deliver(private(a, b), [b]))[b]
    major, minor = cursor_position(cursor)
    for made_up in (f"{major + 10**6}-0", f"{major}-{minor + 1}", "99999999999999999-0"):
        with pytest.raises(errors.CursorUnknown):
            await store.inbox.read(b, made_up, 10)
    with pytest.raises(errors.CursorUnknown):
        await store.inbox.read(c, cursor, 10)  # an empty inbox has no entry at or after any cursor
    assert issubclass(errors.CursorUnknown, errors.CursorExpired)


@pytest.mark.gen_test(timeout=30)
async def test_malformed_cursors_are_refused(kind, request, sql_database):
    store = await make_store(kind, request, sql_database)
    a, b, _, _ = store.people
    await store.inbox.deliver(private(a, b), [b])
    for bad in ("", "abc", "1-", "-1", "1-2-3"):
        with pytest.raises(errors.InvalidCursor):
            await store.inbox.read(b, bad, 10)


# the confirm step of the sender's idempotency key ---------------------------------------
@pytest.mark.gen_test(timeout=30)
async def test_deliver_marks_the_pending_answer_delivered(kind, request, sql_database):
    store = await make_store(kind, request, sql_database)
    a, b, _, _ = store.people
    first = private(a, b, client_msg_id="k1")
    assert await store.keys.remember(a, "k1", first) is None
    accepted = await store.inbox.deliver(first, [b])
    # No confirm() was called (the sender's process may have died right here).
    retry = private(a, b, client_msg_id="k1")
    # The answer is the message as accepted: a retry gets its seq too.
    assert await store.keys.remember(a, "k1", retry) == Answer(dataclasses.replace(first, seq=1), delivered=True)
    assert accepted.message.seq == 1


@pytest.mark.gen_test(timeout=30)
async def test_deliver_marks_a_free_key_delivered(kind, request, sql_database):
    """What IdempotencyKeys.confirm does with a free key (the pending answer expired and
    nobody took the key): the message is remembered, delivered."""
    store = await make_store(kind, request, sql_database)
    a, b, _, _ = store.people
    sent = private(a, b, client_msg_id="free")
    await store.inbox.deliver(sent, [b])
    answer = await store.keys.remember(a, "free", private(a, b, client_msg_id="free"))
    assert answer == Answer(dataclasses.replace(sent, seq=1), True)


@pytest.mark.gen_test(timeout=30)
async def test_a_message_without_a_key_leaves_the_keys_alone(kind, request, sql_database):
    store = await make_store(kind, request, sql_database)
    a, b, _, _ = store.people
    pending = private(a, b, client_msg_id="k")
    assert await store.keys.remember(a, "k", pending) is None
    await store.inbox.deliver(private(a, b), [b])
    assert await store.keys.remember(a, "k", private(a, b, client_msg_id="k")) == Answer(pending, False)


@pytest.mark.gen_test(timeout=30)
async def test_a_late_first_attempt_whose_key_a_retry_took_appends_nothing(kind, request, sql_database):
    store = await make_store(kind, request, sql_database)
    a, b, _, _ = store.people
    retry = private(a, b, "the retry", client_msg_id="k")
    assert await store.keys.remember(a, "k", retry) is None  # the first attempt's answer had expired
    late = private(a, b, "the late first attempt", client_msg_id="k")
    with pytest.raises(errors.SendSuperseded):
        await store.inbox.deliver(late, [b])
    assert await store.inbox.read(b, None, 10) == []
    assert await store.keys.remember(a, "k", late) == Answer(retry, delivered=False)  # left alone
    accepted = await store.inbox.deliver(retry, [b])
    # The superseded attempt took no seq: the retry is the conversation's first.
    assert accepted.message == dataclasses.replace(retry, seq=1)
    assert [d.event.public() for d in await store.inbox.read(b, None, 10)] == [accepted.message.public()]
    assert await store.keys.remember(a, "k", late) == Answer(accepted.message, delivered=True)


# seq: each message's place in its conversation ---------------------------------------
@pytest.mark.gen_test(timeout=30)
async def test_seq_counts_each_conversation_on_its_own_whichever_way_a_message_goes(kind, request, sql_database):
    store = await make_store(kind, request, sql_database)
    a, b, c, _ = store.people

    async def send(message: Message) -> int | None:
        return (await store.inbox.deliver(message, [message.to_user_id])).message.seq

    assert [await send(private(a, b)), await send(private(b, a)), await send(private(a, b))] == [1, 2, 3]
    assert [await send(private(a, c)), await send(private(c, a))] == [1, 2]  # another pair
    assert await send(private(b, a)) == 4
    # Every recipient reads the seq the sender was answered with.
    assert [d.event.seq for d in await store.inbox.read(b, None, 10)] == [1, 3]
    assert [d.event.seq for d in await store.inbox.read(a, None, 10)] == [2, 2, 4]  # from b, c, b
    assert [d.event.seq for d in await store.inbox.read(c, None, 10)] == [1]


@pytest.mark.gen_test(timeout=30)
async def test_group_changes_and_messages_share_one_log_in_order(kind, request, sql_database):
    from domain.events import MEMBER_ADDED, GroupChange

    store = await make_store(kind, request, sql_database)
    a, b, c, _ = store.people
    group_id = str(uuid.uuid4())
    added = GroupChange(type=MEMBER_ADDED, id=str(uuid.uuid4()), group_id=group_id, by_user_id=a,
                        created_at=1_700_000_000, user_id=c)
    before = private(a, b, "before")
    after = private(a, b, "after")
    first = (await store.inbox.deliver(before, [b]))[b]
    cursors = await store.inbox.append(added, [a, b, c, b])  # b listed twice: one entry
    last = (await store.inbox.deliver(after, [b]))[b]
    assert set(cursors) == {a, b, c}
    assert [d.event.id for d in await store.inbox.read(b, None, 10)] == [before.id, added.id, after.id]
    assert [d.event for d in await store.inbox.read(b, None, 10)][1] == added
    assert [d.cursor for d in await store.inbox.read(b, None, 10)] == [first, cursors[b], last]
    for user in (a, c):
        [delivery] = await store.inbox.read(user, None, 10)
        assert delivery.event == added and delivery.cursor == cursors[user]


@pytest.mark.gen_test(timeout=30)
async def test_a_group_change_is_appended_once_per_id(kind, request, sql_database):
    # A relay may append a change again (its gateway died after the append, before it
    # marked the announcement done): every adapter appends one id once only.
    from domain.events import GROUP_UPDATED, GroupChange

    store = await make_store(kind, request, sql_database)
    a, b, _, _ = store.people
    renamed = GroupChange(type=GROUP_UPDATED, id=str(uuid.uuid4()), group_id=str(uuid.uuid4()), by_user_id=a,
                          created_at=1_700_000_000, name="team")
    first = await store.inbox.append(renamed, [a, b])
    assert set(first) == {a, b}
    assert await store.inbox.append(renamed, [a, b]) == {}
    for user in (a, b):
        assert [d.event for d in await store.inbox.read(user, None, 10)] == [renamed]


# a message as it is now: edited, or a tombstone -----------------------------------------
def edited(message: Message, content: str, at: int):
    from domain.events import MESSAGE_UPDATED, MessageChange, edit_event_id

    changed = dataclasses.replace(message, content=content, edited_at=at)
    return MessageChange(MESSAGE_UPDATED, edit_event_id(message.id, content, at), changed)


def deleted(message: Message, at: int):
    from domain.events import MESSAGE_DELETED, MessageChange, delete_event_id

    return MessageChange(MESSAGE_DELETED, delete_event_id(message.id), dataclasses.replace(message, content="",
                                                                                             deleted_at=at))


@pytest.mark.gen_test(timeout=30)
async def test_a_read_shows_an_edited_message_with_its_latest_content(kind, request, sql_database):
    store = await make_store(kind, request, sql_database)
    a, b, _, _ = store.people
    accepted = await store.inbox.deliver(private(a, b, "helo", client_msg_id="k"), [b, a])
    other = await store.inbox.deliver(private(a, b, "untouched"), [b, a])
    message = accepted.message
    first = edited(message, "hello", 1_700_000_010)
    later = edited(message, "hello!", 1_700_000_020)
    await store.change(first, [a, b])
    await store.change(later, [a, b])
    # A relay appends an older edit last (its first append had failed): it changes
    # nothing (the store holds the latest already; an inbox keeps the latest too).
    await store.inbox.append(edited(message, "stale", 1_700_000_015), [a, b])
    shown = {**message.public(), "content": "hello!", "edited_at": 1_700_000_020}
    for user in (a, b):
        page = await store.inbox.read(user, None, 10)
        assert [d.event.type for d in page] == ["private", "private"] + ["message_updated"] * 3
        assert page[0].event.public() == shown
        assert page[0].cursor == accepted[user]  # in its place in the log, at its seq
        assert page[1].event.public() == other.message.public()
        # Each change event stays as it was appended.
        assert [d.event.message.content for d in page[2:]] == ["hello", "hello!", "stale"]
        # So does a page after a cursor.
        [after] = await store.inbox.read(user, accepted[user], 1)
        assert after.event.public() == other.message.public()
    # The sender's own entry keeps its client_msg_id (the event view shows it).
    own = (await store.inbox.read(a, None, 1))[0]
    assert own.event.client_msg_id == "k"
    assert own.public_for(a) == {**shown, "cursor": accepted[a], "client_msg_id": "k"}


@pytest.mark.gen_test(timeout=30)
async def test_a_read_shows_a_deleted_message_as_a_tombstone(kind, request, sql_database):
    store = await make_store(kind, request, sql_database)
    a, b, c, _ = store.people
    group_id = str(uuid.uuid4())
    if store.database is not None:
        group_id = await _sql_group(store.database, a, [b, c])
    sent = Message(type=GROUP, id=str(uuid.uuid4()), from_user_id=b, group_id=group_id, content="oops",
                   created_at=1_700_000_000)
    accepted = await store.inbox.deliver(sent, [a, b, c])
    message = accepted.message
    await store.change(edited(message, "oops!", 1_700_000_010), [a, b, c])
    await store.change(deleted(message, 1_700_000_020), [a, b, c])
    await store.inbox.append(deleted(message, 1_700_000_020), [a, b, c])  # a second DELETE: nothing new
    # A later edit relayed after the deletion does not bring the content back.
    await store.inbox.append(edited(message, "back", 1_700_000_030), [a, b, c])
    for user in (a, b, c):
        page = await store.inbox.read(user, None, 10)
        assert [d.event.type for d in page] == ["group", "message_updated", "message_deleted", "message_updated"]
        assert page[0].public() == {"type": "group", "id": message.id, "group_id": group_id, "from_user_id": b,
                                    "created_at": message.created_at, "seq": 1, "deleted": True,
                                    "cursor": accepted[user]}
        assert page[0].event.content == ""
