"""Edit and delete against fakes: a message the persister has not stored yet (found in
the log), its edit kept and applied when it is stored, and events exactly once."""
from __future__ import annotations

import pytest

from application.announcements import AnnouncementSteps, Announcer
from application.edits import ChangeMessages
from application.ports import RecentMessages
from domain import errors
from domain.events import MessageChange, event_from_record
from domain.model import GROUP, PRIVATE, Group, Message
from tests.fakes.group_streams import MemoryGroupStreams
from tests.fakes.repositories import MemoryGroupRepository, MemoryMessageStore


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


class Log(RecentMessages):
    def __init__(self, *messages: Message) -> None:
        self.messages = {m.id: m for m in messages}

    async def find(self, user_id: str, message_id: str) -> Message | None:
        return self.messages.get(message_id)


class Appends:
    """Inbox.append once per id, as the real inboxes."""

    def __init__(self) -> None:
        self.appended: list[tuple[MessageChange, list[str]]] = []
        self.ids: set[str] = set()

    async def append(self, change, recipient_ids):
        if change.id in self.ids:
            return {}
        self.ids.add(change.id)
        self.appended.append((change, list(recipient_ids)))
        return dict.fromkeys(recipient_ids, "1-0")


M1 = "5a0c3e6e-1f0b-4f43-9a55-6b2f8a1c0d01"
MESSAGE = Message(type=PRIVATE, id=M1, from_user_id="a", content="helo", created_at=1000, to_user_id="b", seq=3)


def use_case(store, log, inbox, clock, window=100):
    announcer = Announcer(AnnouncementSteps(inbox, store.outbox))  # type: ignore[arg-type]
    return ChangeMessages(store, log, MemoryGroupRepository(), announcer, clock, 4000, window)


@pytest.mark.gen_test
async def test_an_edit_before_the_persister_stores_the_message_ends_in_the_store():
    store, inbox, clock = MemoryMessageStore(), Appends(), Clock()
    edits = use_case(store, Log(MESSAGE), inbox, clock)
    clock.t = 1010
    edited = await edits.edit("a", M1, {"content": "hello"})
    assert edited.content == "hello" and edited.edited_at == 1010
    again = await edits.edit("a", M1, {"content": "hello"})  # a retry, still not stored: the same edit
    assert again == edited
    await store.save([MESSAGE])  # the persister, late
    assert (await store.get(M1)).content == "hello"
    [(change, recipients)] = inbox.appended
    assert change.type == "message_updated" and recipients == ["a", "b"]
    assert event_from_record(change.to_record()) == change
    assert store.outbox.stored == {}  # stored with the edit, then marked announced


@pytest.mark.gen_test
async def test_rules_window_and_delete_once():
    store, inbox, clock = MemoryMessageStore(), Appends(), Clock()
    await store.save([MESSAGE])
    edits = use_case(store, Log(), inbox, clock)
    with pytest.raises(errors.NotYourMessage):
        await edits.edit("b", M1, {"content": "x"})
    with pytest.raises(errors.MessageNotFound):
        await edits.delete("c", M1)
    clock.t = 1101
    with pytest.raises(errors.EditWindowClosed):
        await edits.edit("a", M1, {"content": "x"})
    await edits.delete("a", M1)
    await edits.delete("a", M1)
    assert [c.type for c, _ in inbox.appended] == ["message_deleted"]
    stored = await store.get(M1)
    assert stored.content == "" and stored.public()["deleted"] is True and "content" not in stored.public()


@pytest.mark.gen_test
async def test_edits_back_and_forth_within_one_second_are_each_an_event():
    store, inbox, clock = MemoryMessageStore(), Appends(), Clock()
    await store.save([MESSAGE])
    edits = use_case(store, Log(), inbox, clock)
    clock.t = 1010.2
    for content in ("hello", "helo", "hello"):
        await edits.edit("a", M1, {"content": content})
    updates = [change for change, _ in inbox.appended if change.type == "message_updated"]
    assert [u.message.content for u in updates] == ["hello", "helo", "hello"]
    assert [u.message.edited_at for u in updates] == [1010, 1011, 1012]  # later each time
    assert (await store.get(M1)).content == "hello"


class RacedStore(MemoryMessageStore):
    """Another request (a retry sent before the first answer) stores the same change
    between this one's read of the message and its own store."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    async def change(self, message, announce):
        if not self.raced:
            self.raced = True
            await super().change(message, announce)  # the other request's, not announced yet
        await super().change(message, announce)


@pytest.mark.gen_test
async def test_the_same_delete_or_edit_stored_meanwhile_by_another_request_is_a_retry():
    store, inbox, clock = RacedStore(), Appends(), Clock()
    await store.save([MESSAGE])
    edits = use_case(store, Log(), inbox, clock)
    clock.t = 1010
    edited = await edits.edit("a", M1, {"content": "hello"})  # not a ChangedMeanwhile: decided again
    assert (edited.content, edited.edited_at) == ("hello", 1010)
    store.raced = False
    await edits.delete("a", M1)
    assert [c.type for c, _ in inbox.appended] == ["message_updated", "message_deleted"]  # each once
    assert (await store.get(M1)).deleted_at == 1010


class StoredMeanwhile(RecentMessages):
    """The persister stores the message while the log is searched (and so it is no
    longer waiting to be stored when the search gets there)."""

    def __init__(self, store: MemoryMessageStore, message: Message) -> None:
        self.store, self.message = store, message

    async def find(self, user_id: str, message_id: str) -> Message | None:
        await self.store.save([self.message])
        return None


@pytest.mark.gen_test
async def test_a_message_stored_while_it_is_looked_for_is_found():
    store, clock = MemoryMessageStore(), Clock()
    edits = use_case(store, StoredMeanwhile(store, MESSAGE), Appends(), clock)
    clock.t = 1010
    edited = await edits.edit("a", M1, {"content": "hello"})
    assert (edited.content, edited.edited_at) == ("hello", 1010)
    assert (await store.get(M1)).content == "hello"


G1 = "5a0c3e6e-1f0b-4f43-9a55-6b2f8a1c0d02"


def group_message(sender: str) -> Message:
    return Message(type=GROUP, id=M1, from_user_id=sender, content="helo", created_at=1000, group_id=G1, seq=1)


async def large_group(streams: MemoryGroupStreams, members: list[str], large_groups: bool = True):
    """A group past the threshold (stream set), its stream switched, and the use case."""
    store, inbox, clock = MemoryMessageStore(), Appends(), Clock()
    groups = MemoryGroupRepository()
    await groups.add(Group(G1, "g", members[0], list(members), stream=1))
    streams.switch(G1, members)
    announcer = Announcer(AnnouncementSteps(inbox, store.outbox, streams))  # type: ignore[arg-type]
    edits = ChangeMessages(store, Log(), groups, announcer, clock, 4000, 100, large_groups=large_groups)
    return edits, store, inbox, clock, groups


@pytest.mark.gen_test
async def test_a_large_groups_edit_and_delete_go_once_into_its_stream_and_no_own_log():
    published: list = []
    streams = MemoryGroupStreams(iter(range(1, 1000)).__next__, publish=published.append)
    edits, store, inbox, clock, _ = await large_group(streams, ["a", "b", "c"])
    await store.save([group_message("a")])
    published.clear()
    clock.t = 1010
    await edits.edit("a", M1, {"content": "hello"})
    await edits.edit("a", M1, {"content": "hello"})  # a retried PATCH
    await edits.delete("a", M1)
    await edits.delete("a", M1)  # a second DELETE
    assert inbox.appended == []  # no member's own log
    assert [(n.group_id, n.event.type) for n in published] == [(G1, "message_updated"), (G1, "message_deleted")]
    assert [e.type for _, e in streams.entries(G1)] == ["message_updated", "message_deleted"]
    assert store.outbox.stored == {}  # each announced


@pytest.mark.gen_test
async def test_a_sender_who_left_a_large_group_gets_its_own_copy_and_large_groups_off_fan_out():
    streams = MemoryGroupStreams(iter(range(1, 1000)).__next__)
    edits, store, inbox, clock, groups = await large_group(streams, ["b", "c"])
    await store.save([group_message("a")])  # a left the group since
    clock.t = 1010
    await edits.edit("a", M1, {"content": "hello"})
    assert [(c.type, r) for c, r in inbox.appended] == [("message_updated", ["a"])]
    assert [e.type for _, e in streams.entries(G1)] == ["message_updated"]

    streams = MemoryGroupStreams(iter(range(1, 1000)).__next__)
    edits, store, inbox, clock, groups = await large_group(streams, ["a", "b", "c"], large_groups=False)
    await store.save([group_message("a")])
    clock.t = 1010
    await edits.edit("a", M1, {"content": "hello"})
    assert [(c.type, r) for c, r in inbox.appended] == [("message_updated", ["a", "b", "c"])]
    assert streams.entries(G1) == []
