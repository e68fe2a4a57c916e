"""One suite over the Outbox's adapters: the fake the unit tests use (tests/fakes/outbox.py,
shared by the store fakes) and SqlOutbox on SQLite and MariaDB. Announcements are
stored as each mode stores them, by the changing store in the change's own transaction
- a group change (GroupRepository), a message's edit or deletion (MessageStore.change),
a moved read marker (ConversationStore.mark_read) - and the Outbox lists them, oldest
first, by age, until they are announced()."""
from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass

import pytest

from adapters.sql.conversations import SqlConversationStore
from adapters.sql.groups import SqlGroupRepository
from adapters.sql.messages import SqlMessageStore
from adapters.sql.outbox import SqlOutbox
from adapters.sql.users import SqlUserRepository
from application.ports import (
    Announcement,
    ConversationStore,
    GroupRepository,
    LoggedChange,
    MessageStore,
    Outbox,
    UserRepository,
)
from domain import errors
from domain.events import (
    GROUP_UPDATED,
    MEMBER_ADDED,
    MESSAGE_DELETED,
    MESSAGE_UPDATED,
    GroupChange,
    MessageChange,
    ReadMarker,
    delete_event_id,
    edit_event_id,
    read_marker_id,
)
from domain.model import GROUP, PRIVATE, Group, Message, User
from tests.fakes.conversations import MemoryConversationStore
from tests.fakes.outbox import MemoryOutbox
from tests.fakes.repositories import MemoryGroupRepository, MemoryMessageStore, MemoryUserRepository

KINDS = [pytest.param("memory"), pytest.param("sqlite"), pytest.param("mysql", marks=pytest.mark.mysql)]


@dataclass
class Stores:
    outbox: Outbox
    users: UserRepository
    groups: GroupRepository
    messages: MessageStore
    conversations: ConversationStore
    people: list[str]


@pytest.fixture(params=KINDS)
def store_kind(request) -> str:
    return request.param


async def make_stores(kind: str, sql_database) -> Stores:
    if kind == "memory":
        fake_groups, fake_messages = MemoryGroupRepository(), MemoryMessageStore()
        fake_conversations, outbox = MemoryConversationStore(), MemoryOutbox()
        fake_groups.outbox = fake_messages.outbox = fake_conversations.outbox = outbox  # one table in SQL
        fake_groups.conversations = fake_conversations
        made = Stores(outbox, MemoryUserRepository(), fake_groups, fake_messages, fake_conversations, [])
    else:
        database = sql_database(kind)
        made = Stores(SqlOutbox(database), SqlUserRepository(database), SqlGroupRepository(database),
                      SqlMessageStore(database), SqlConversationStore(database), [])
    for index in range(3):
        user = User(id=str(uuid.uuid4()), username=f"user{index}", password_hash="h")
        await made.users.add(user)
        made.people.append(user.id)
    return made


def group_change(kind: str, group_id: str, by: str, recipients: list[str], created_at: int,
                 **fields) -> Announcement:
    change = GroupChange(type=kind, id=str(uuid.uuid4()), group_id=group_id, by_user_id=by,
                         created_at=created_at, **fields)
    return Announcement(change, recipients, created_at)


def read_marker(reader: str, peer: str, seq: int, recipients: list[str], created_at: int) -> Announcement:
    low, high = sorted((reader, peer))
    marker = ReadMarker(id=read_marker_id(reader, f"p:{low}:{high}", seq), user_id=reader,
                        conversation_type=PRIVATE, conversation_id=peer, seq=seq)
    return Announcement(marker, recipients, created_at)


def pair(a: str, b: str) -> str:
    low, high = sorted((a, b))
    return f"p:{low}:{high}"


@pytest.mark.gen_test
async def test_every_kind_of_change_is_listed_with_its_event_oldest_first(store_kind, sql_database):
    stores = await make_stores(store_kind, sql_database)
    owner, bob, cleo = stores.people
    now = int(time.time())
    group = Group(id=str(uuid.uuid4()), name="g", owner_id=owner, member_ids=[owner])
    created = group_change(GROUP_UPDATED, group.id, owner, [owner], now - 60, name="g")
    await stores.groups.add(group, created)
    added = group_change(MEMBER_ADDED, group.id, owner, [owner, bob], now - 50, user_id=bob)
    await stores.groups.add_member(group.id, bob, added)
    message = Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id=owner, content="helo",
                      created_at=now - 100, to_user_id=bob, seq=1)
    await stores.messages.save([message])
    edited = dataclasses.replace(message, content="hello", edited_at=now - 40)
    edit = MessageChange(MESSAGE_UPDATED, edit_event_id(message.id, "hello", now - 40), edited)
    await stores.messages.change(edited, Announcement(edit, [owner, bob], edit.created_at))
    deleted = dataclasses.replace(message, content="", deleted_at=now - 30)  # (its record has no edited_at)
    deletion = MessageChange(MESSAGE_DELETED, delete_event_id(message.id), deleted)
    await stores.messages.change(deleted, Announcement(deletion, [owner, bob], deletion.created_at))
    read = read_marker(bob, owner, 1, [bob, owner], now - 20)
    assert await stores.conversations.mark_read(bob, pair(bob, owner), 1, peer_id=owner, announce=read) == (1, 0, True)
    every = [created, added, Announcement(edit, [owner, bob], now - 40),
             Announcement(deletion, [owner, bob], now - 30), read]
    assert await stores.outbox.announcements(0, 10) == every  # each event as it was, with its recipients
    assert [type(a.event) for a in every] == [GroupChange, GroupChange, MessageChange, MessageChange, ReadMarker]
    assert await stores.outbox.announcements(35, 10) == every[:3]  # made 35 s ago or more
    assert await stores.outbox.announcements(0, 2) == every[:2]
    assert await stores.outbox.announcements(120, 10) == []
    assert cleo not in {user for a in every for user in a.recipient_ids}


@pytest.mark.gen_test
async def test_a_large_groups_edit_comes_back_with_its_logged_change(store_kind, sql_database):
    """An edit of a large group's message: no own-log recipients, the change for its stream."""
    stores = await make_stores(store_kind, sql_database)
    owner, bob, _ = stores.people
    now = int(time.time())
    group = Group(id=str(uuid.uuid4()), name="g", owner_id=owner, member_ids=[owner, bob])
    await stores.groups.add(group)
    message = Message(type=GROUP, id=str(uuid.uuid4()), from_user_id=bob, content="helo", created_at=now - 100,
                      group_id=group.id, seq=1)
    await stores.messages.save([message])
    edited = dataclasses.replace(message, content="hello", edited_at=now - 40)
    edit = MessageChange(MESSAGE_UPDATED, edit_event_id(message.id, "hello", now - 40), edited)
    announcement = Announcement(edit, [], edit.created_at, LoggedChange(group.id, edit))
    await stores.messages.change(edited, announcement)
    [listed] = await stores.outbox.announcements(0, 10)
    assert listed == announcement
    assert isinstance(listed.stream_change, LoggedChange) and listed.stream_change.record == listed.event


@pytest.mark.gen_test
async def test_announced_forgets_one_and_an_unknown_id_is_no_error(store_kind, sql_database):
    stores = await make_stores(store_kind, sql_database)
    owner, bob, _ = stores.people
    now = int(time.time())
    group = Group(id=str(uuid.uuid4()), name="g", owner_id=owner, member_ids=[owner, bob])
    created = group_change(GROUP_UPDATED, group.id, owner, [owner, bob], now - 10, name="g")
    await stores.groups.add(group, created)
    renamed = group_change(GROUP_UPDATED, group.id, owner, [owner, bob], now - 5, name="h")
    await stores.groups.rename(group.id, "h", renamed)
    await stores.outbox.announced(created.event.id)
    await stores.outbox.announced(created.event.id)  # twice (a relay racing the use case): nothing more
    await stores.outbox.announced(str(uuid.uuid4()))  # never stored
    assert await stores.outbox.announcements(0, 10) == [renamed]
    await stores.outbox.announced(renamed.event.id)
    assert await stores.outbox.announcements(0, 10) == []


@pytest.mark.gen_test
async def test_a_change_refused_or_a_marker_that_does_not_move_stores_nothing(store_kind, sql_database):
    stores = await make_stores(store_kind, sql_database)
    owner, bob, cleo = stores.people
    now = int(time.time())
    group = Group(id=str(uuid.uuid4()), name="g", owner_id=owner, member_ids=[owner, bob])
    await stores.groups.add(group)  # a change may come without an announcement
    with pytest.raises(errors.AlreadyAMember):
        await stores.groups.add_member(group.id, bob, group_change(MEMBER_ADDED, group.id, owner, [owner], now,
                                                                   user_id=bob))
    with pytest.raises(errors.GroupNotFound):
        await stores.groups.rename(str(uuid.uuid4()), "x", group_change(GROUP_UPDATED, group.id, owner, [owner],
                                                                         now, name="x"))
    # A marker stored before the chat's first message (production: the worker lags) moves.
    first = read_marker(cleo, owner, 2, [cleo], now)
    assert await stores.conversations.mark_read(cleo, pair(cleo, owner), 2, peer_id=owner,
                                                announce=first) == (2, 0, True)
    # The same seq again, or a lower one: the marker stays, and so does the outbox. The
    # same seq's event is still pending (a retry may append it now); the lower one's is not.
    again = read_marker(cleo, owner, 2, [cleo], now)
    assert await stores.conversations.mark_read(cleo, pair(cleo, owner), 2, peer_id=owner,
                                                announce=again) == (2, 0, True)
    lower = read_marker(cleo, owner, 1, [cleo], now)
    assert await stores.conversations.mark_read(cleo, pair(cleo, owner), 1, peer_id=owner,
                                                announce=lower) == (2, 0, False)
    assert await stores.outbox.announcements(0, 10) == [first]
