"""The steps of an announcement with a large group's stream change
(application/announcements.py; docs/design/large-groups.md section 4.3): the change is
applied to the streams first; a change of a large group's membership goes to the own
logs of the users it is about only; WAIT leaves everything stored for the relay, which
takes the rest of its batch and comes back to it."""
from __future__ import annotations

import pytest

from application.announcements import RELAY_BATCH, AnnouncementSteps, Announcer, RelayAnnouncements
from application.ports import APPLIED, JOIN, WAIT, Announcement, Applied, GroupSwitch, MemberChange
from domain.events import MEMBER_ADDED, GroupChange
from tests.fakes.outbox import MemoryOutbox

GROUP = "g"
MEMBERS = ["a", "b", "c", "d"]


class Appends:
    def __init__(self):
        self.appended: list[tuple[str, list[str]]] = []

    async def append(self, event, recipient_ids):
        self.appended.append((event.id, list(recipient_ids)))
        return dict.fromkeys(recipient_ids, "1-0")


class Streams:
    """apply answers WAIT for the versions listed in `waiting`, APPLIED otherwise."""

    def __init__(self, waiting=()):
        self.waiting = set(waiting)
        self.applied: list[str] = []

    async def apply(self, change):
        if change.version in self.waiting:
            return Applied(WAIT)
        self.applied.append(change.event_id)
        return Applied(APPLIED, (1, 0))


def join(event_id: str, user_id: str, version: int, recipients=MEMBERS) -> Announcement:
    record = GroupChange(type=MEMBER_ADDED, id=event_id, group_id=GROUP, by_user_id="a", created_at=0,
                         user_id=user_id)
    change = MemberChange(JOIN, GROUP, event_id, version, (user_id,), record)
    return Announcement(record, list(recipients), 0, stream_change=change)


def steps(streams, outbox, inbox) -> AnnouncementSteps:
    return AnnouncementSteps(inbox, outbox, streams)  # type: ignore[arg-type]


@pytest.mark.gen_test
async def test_a_join_of_a_large_group_is_applied_then_appended_to_the_joiner_only():
    outbox, inbox, streams = MemoryOutbox(), Appends(), Streams()
    announcement = join("e1", "d", 5)
    outbox.store(announcement)
    await Announcer(steps(streams, outbox, inbox)).announce(announcement)
    assert streams.applied == ["e1"]
    assert inbox.appended == [("e1", ["d"])]
    assert outbox.stored == {}


@pytest.mark.gen_test
async def test_a_switch_keeps_every_recipient_of_its_announcement():
    outbox, inbox, streams = MemoryOutbox(), Appends(), Streams()
    record = GroupChange(type=MEMBER_ADDED, id="e1", group_id=GROUP, by_user_id="a", created_at=0, user_id="d")
    switch = GroupSwitch(GROUP, "e1", 4, 1, "a", False, tuple(MEMBERS))
    announcement = Announcement(record, MEMBERS, 0, stream_change=switch)
    outbox.store(announcement)
    assert await steps(streams, outbox, inbox).take(announcement)
    assert inbox.appended == [("e1", MEMBERS)]


@pytest.mark.gen_test
async def test_a_change_waiting_for_an_earlier_one_is_left_stored_and_appended_by_the_relay_once_in():
    outbox, inbox, streams = MemoryOutbox(), Appends(), Streams(waiting={6})
    later = join("e2", "c", 6)
    outbox.store(later)
    await Announcer(steps(streams, outbox, inbox)).announce(later)
    assert inbox.appended == [] and "e2" in outbox.stored
    streams.waiting.clear()  # the earlier change was applied meanwhile
    relay = RelayAnnouncements(steps(streams, outbox, inbox), after=0)
    assert await relay.once() == 1
    assert inbox.appended == [("e2", ["c"])] and outbox.stored == {}


@pytest.mark.gen_test
async def test_the_relay_takes_what_it_can_and_does_not_spin_on_a_full_batch_that_waits():
    outbox, inbox, streams = MemoryOutbox(), Appends(), Streams(waiting={1})
    for n in range(RELAY_BATCH):
        outbox.store(join(f"w{n}", "c", 1))  # all waiting
    outbox.store(join("ok", "d", 2))
    relay = RelayAnnouncements(steps(streams, outbox, inbox), after=0)
    assert await relay.once() == 0  # the first batch is all WAIT: this round ends
    assert len(outbox.stored) == RELAY_BATCH + 1
    streams.waiting.clear()
    assert await relay.once() == RELAY_BATCH + 1


@pytest.mark.gen_test
async def test_without_large_groups_a_stored_change_is_appended_as_before():
    outbox, inbox = MemoryOutbox(), Appends()
    announcement = join("e1", "d", 5)
    outbox.store(announcement)
    assert await steps(None, outbox, inbox).take(announcement)
    assert inbox.appended == [("e1", MEMBERS)]


class SwitchPending:
    """Answers WAIT until `switched` (a LoggedChange waits for its group's switch only)."""

    def __init__(self):
        self.switched = False
        self.applied: list[str] = []

    async def apply(self, change):
        if not self.switched:
            return Applied(WAIT)
        self.applied.append(change.event_id)
        return Applied(APPLIED, (2, 0))


@pytest.mark.gen_test
async def test_a_large_groups_edit_goes_to_the_stream_and_to_no_own_log_and_waits_for_the_switch():
    from application.ports import LoggedChange
    from domain.events import MESSAGE_UPDATED, MessageChange
    from domain.model import Message

    message = Message(type="group", id="m1", from_user_id="a", content="x", created_at=0, group_id=GROUP, seq=1,
                      edited_at=5)
    change = MessageChange(MESSAGE_UPDATED, "e9", message)
    announcement = Announcement(change, [], 0, stream_change=LoggedChange(GROUP, change))
    outbox, inbox, streams = MemoryOutbox(), Appends(), SwitchPending()
    outbox.store(announcement)
    await Announcer(steps(streams, outbox, inbox)).announce(announcement)
    assert streams.applied == [] and await outbox.announcements(0, 10) == [announcement]  # left to the relay
    streams.switched = True
    assert await RelayAnnouncements(steps(streams, outbox, inbox), after=0).once() == 1
    assert streams.applied == ["e9"] and inbox.appended == [] and await outbox.announcements(0, 10) == []


@pytest.mark.gen_test
async def test_a_large_groups_rename_goes_to_its_stream_and_to_no_own_log():
    from application.group_events import GroupEvents
    from application.ports import LoggedChange
    from domain.events import GROUP_UPDATED
    from domain.model import Group

    class Ids:
        def new_id(self):
            return "e7"

    class Clock:
        def now(self):
            return 10.0

    outbox, inbox, streams = MemoryOutbox(), Appends(), SwitchPending()
    streams.switched = True
    events = GroupEvents(Announcer(steps(streams, outbox, inbox)), Ids(), Clock())
    small = Group(id=GROUP, name="team", owner_id="a", member_ids=list(MEMBERS))
    assert events.renamed(small, "a", "x").recipient_ids == MEMBERS  # a small group: every member's log
    large = Group(id=GROUP, name="team", owner_id="a", member_ids=list(MEMBERS), stream=7)
    announcement = events.renamed(large, "a", "the team")
    assert isinstance(announcement.event, GroupChange) and announcement.event.type == GROUP_UPDATED
    assert announcement.recipient_ids == []
    assert announcement.stream_change == LoggedChange(GROUP, announcement.event)
    outbox.store(announcement)
    await events.announce(announcement)
    assert streams.applied == ["e7"] and inbox.appended == [] and await outbox.announcements(0, 10) == []
