"""One suite over the ConversationStore's adapters: the fake the unit tests use
(tests/fakes/conversations.py) and SqlConversationStore on SQLite and MariaDB. The
state is set up as each mode keeps it: messages stored (SqlMessageStore.save, which
records them in its transaction; the fake: record()), groups created, joined and left
(the group store's transactions); then the port's answers must agree."""
from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass

import pytest

from adapters.sql.conversations import SqlConversationStore
from adapters.sql.groups import SqlGroupRepository
from adapters.sql.messages import SqlMessageStore
from adapters.sql.users import SqlUserRepository
from application.ports import ConversationStore, GroupRepository, MessageStore, UserRepository
from domain.model import GROUP, PRIVATE, Group, Message, User
from tests.fakes.conversations import MemoryConversationStore
from tests.fakes.repositories import MemoryGroupRepository, MemoryMessageStore, MemoryUserRepository

KINDS = [pytest.param("memory"), pytest.param("sqlite"), pytest.param("mysql", marks=pytest.mark.mysql)]


@dataclass
class World:
    store: ConversationStore
    users: UserRepository
    groups: GroupRepository
    messages: MessageStore
    fake: MemoryConversationStore | None
    people: list[str]
    seqs: dict[str, int]
    clock: itertools.count

    async def save(self, *messages: Message) -> list[Message]:
        numbered = []
        for message in messages:
            seq = self.seqs[message.conversation] = self.seqs.get(message.conversation, 0) + 1
            numbered.append(message.with_seq(seq))
        await self.messages.save(numbered)
        if self.fake is not None:  # what SqlMessageStore.save does in its transaction
            self.fake.record([(m, self.fake.now()) for m in numbered])
        return numbered

    def private(self, sender: int, recipient: int, content: str = "hi") -> Message:
        return Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id=self.people[sender], content=content,
                       created_at=next(self.clock), to_user_id=self.people[recipient])

    def group(self, sender: int, group_id: str, content: str = "hi") -> Message:
        return Message(type=GROUP, id=str(uuid.uuid4()), from_user_id=self.people[sender], content=content,
                       created_at=next(self.clock), group_id=group_id)

    def pair(self, a: int, b: int) -> str:
        low, high = sorted((self.people[a], self.people[b]))
        return f"p:{low}:{high}"


@pytest.fixture(params=KINDS)
def store_kind(request) -> str:
    return request.param


async def make_world(kind: str, sql_database) -> World:
    people = [str(uuid.uuid4()) for _ in range(4)]
    fake = None
    if kind == "memory":
        users, groups, messages = MemoryUserRepository(), MemoryGroupRepository(), MemoryMessageStore()
        fake = MemoryConversationStore()
        groups.conversations = fake

        async def names(peer_id, group_id):
            if group_id is not None:
                group = await groups.get(group_id)
                return group.name if group else None
            user = await users.get(peer_id)
            return user.username if user else None

        fake._names = names
        store: ConversationStore = fake
    else:
        database = sql_database(kind)
        users, groups, messages = SqlUserRepository(database), SqlGroupRepository(database), SqlMessageStore(database)
        store = SqlConversationStore(database)
    for index, user_id in enumerate(people):
        await users.add(User(id=user_id, username=f"user{index}", password_hash="h"))
    return World(store, users, groups, messages, fake, people, {}, itertools.count(1_700_000_000))


def view(page):
    return [(s.conversation, s.name, s.last_message.id if s.last_message else None, s.last_seq, s.read_seq,
             s.unread_count) for s in page.conversations]


@pytest.mark.gen_test
async def test_private_chats_for_both_sides_with_the_senders_marker_moved(store_kind, sql_database):
    world = await make_world(store_kind, sql_database)
    first, second = await world.save(world.private(0, 1, "a"), world.private(0, 1, "b"))
    reply, = await world.save(world.private(1, 0, "c"))
    assert view(await world.store.list(world.people[0], None, 10)) == [
        (world.pair(0, 1), "user1", reply.id, 3, 2, 1)]
    assert view(await world.store.list(world.people[1], None, 10)) == [
        (world.pair(0, 1), "user0", reply.id, 3, 3, 0)]
    assert await world.store.last_seq(world.pair(0, 1)) == 3
    assert await world.store.last_seq(world.pair(2, 3)) == 0
    assert view(await world.store.list(world.people[2], None, 10)) == []


@pytest.mark.gen_test
async def test_groups_created_joined_left_and_most_recent_first(store_kind, sql_database):
    world = await make_world(store_kind, sql_database)
    group = Group(id=str(uuid.uuid4()), name="team", owner_id=world.people[0],
                  member_ids=[world.people[0], world.people[1]])
    await world.groups.add(group)
    await world.save(world.private(2, 1, "x"))
    assert view(await world.store.list(world.people[1], None, 10)) == [
        (world.pair(1, 2), "user2", view(await world.store.list(world.people[2], None, 1))[0][2], 1, 0, 1),
        ("g:" + group.id, "team", None, 0, 0, 0),
    ]
    m1, m2 = await world.save(world.group(0, group.id), world.group(0, group.id))
    await world.groups.add_member(group.id, world.people[3])
    assert view(await world.store.list(world.people[3], None, 10)) == [("g:" + group.id, "team", m2.id, 2, 2, 0)]
    assert view(await world.store.list(world.people[1], None, 10))[0] == ("g:" + group.id, "team", m2.id, 2, 0, 2)
    await world.groups.remove_member(group.id, world.people[1], None)
    assert [s[0] for s in view(await world.store.list(world.people[1], None, 10))] == [world.pair(1, 2)]


@pytest.mark.gen_test
async def test_markers_move_forward_only(store_kind, sql_database):
    world = await make_world(store_kind, sql_database)
    await world.save(*(world.private(0, 1) for _ in range(4)))
    pair = world.pair(0, 1)
    assert await world.store.mark_read(world.people[1], pair, 2, peer_id=world.people[0]) == (2, 2, False)
    assert await world.store.mark_read(world.people[1], pair, 1, peer_id=world.people[0]) == (2, 2, False)
    assert await world.store.mark_read(world.people[1], pair, 4, peer_id=world.people[0]) == (4, 0, False)
    assert view(await world.store.list(world.people[1], None, 10))[0][3:] == (4, 4, 0)


@pytest.mark.gen_test
async def test_a_marker_before_the_first_message_is_stored_is_kept(store_kind, sql_database):
    world = await make_world(store_kind, sql_database)
    pair = world.pair(2, 3)  # production: the worker has not stored it yet
    assert await world.store.mark_read(world.people[3], pair, 2, peer_id=world.people[2]) == (2, 0, False)
    await world.save(*(world.private(2, 3) for _ in range(3)))
    assert view(await world.store.list(world.people[3], None, 10))[0][1:] == (
        "user2", view(await world.store.list(world.people[2], None, 10))[0][2], 3, 2, 1)


@pytest.mark.gen_test
async def test_pages_cover_every_conversation_once_in_order(store_kind, sql_database):
    world = await make_world(store_kind, sql_database)
    for peer in (1, 2, 3):
        await world.save(world.private(peer, 0))
    await world.save(world.private(0, 2))  # 2 moves to the top
    seen, before = [], None
    while True:
        page = await world.store.list(world.people[0], before, 1)
        seen += [s.peer_id for s in page.conversations]
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == [world.people[2], world.people[3], world.people[1]]
