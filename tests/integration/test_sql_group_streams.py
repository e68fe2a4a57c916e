"""The embedded mode's large groups end to end below the use cases (docs/design/
large-groups.md, section 8): SqlGroupRepository applies the switch and every later change
to SqliteGroupStreams inside the membership transaction; the SqliteInbox refuses a group
that became large (GroupIsLarge, nothing written) and the message goes to the stream; the
own logs and the streams share one sequence, so the group's stream comes after its small
era; sends racing the switch keep seqs 1..N, each message once."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from adapters.memory.bus import InProcessBus
from adapters.sql import migrate
from adapters.sql.database import Database
from adapters.sql.group_streams import SqliteGroupStreams
from adapters.sql.groups import SqlGroupRepository
from adapters.sql.inbox import SqliteInbox
from adapters.sql.users import SqlUserRepository
from application.ports import (
    APPLIED,
    JOIN,
    LEAVE,
    Announcement,
    AnyNotification,
    Applied,
    GroupNotification,
    GroupSwitch,
    MemberChange,
    MembershipNotification,
    SwitchNotification,
)
from domain import errors
from domain.events import MEMBER_ADDED, MEMBER_REMOVED, GroupChange
from domain.model import GROUP, PRIVATE, Group, Message, User
from domain.vector import Interval


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def sqlite_db(sqlite_url):
    migrate.upgrade(sqlite_url)
    database = Database(sqlite_url, workers=2)
    yield database
    database.close()


async def people(db, count: int) -> list[str]:
    ids = [new_id() for _ in range(count)]
    for user_id in ids:
        await SqlUserRepository(db).add(User(id=user_id, username="u" + user_id[:12], password_hash="h"))
    return ids


def group_message(group_id: str, sender: str, content: str = "hi") -> Message:
    return Message(type=GROUP, id=new_id(), from_user_id=sender, content=content, created_at=1_700_000_000,
                   group_id=group_id)


def change(kind: str, group_id: str, user_id: str) -> Announcement:
    return Announcement(GroupChange(kind, new_id(), group_id, user_id, 1_700_000_000, user_id=user_id), [user_id],
                        int(time.time()))


def position(cursor: str) -> tuple[int, int]:
    ms, n = cursor.split("-")
    return int(ms), int(n)


def taken(published: list[AnyNotification]) -> list[AnyNotification]:
    """What was published since the last look."""
    taken, published[:] = list(published), []
    return taken


async def send(inbox: SqliteInbox, streams: SqliteGroupStreams, message: Message, members: list[str]):
    """The send path of step 6: the small path, and on GroupIsLarge the large one."""
    try:
        return "small", (await inbox.deliver(message, members)).message
    except errors.GroupIsLarge:
        return "large", (await streams.deliver(message)).message


@pytest.mark.gen_test
async def test_the_switch_and_later_changes_are_applied_in_the_membership_transaction(sqlite_db):
    db = sqlite_db
    published: list[AnyNotification] = []
    inbox, streams = SqliteInbox(db, InProcessBus()), SqliteGroupStreams(db, publish=published.append)
    repository = SqlGroupRepository(db, large_group=2, apply_in_transaction=streams.apply_in)
    a, b, c, d = await people(db, 4)
    group = Group(id=new_id(), name="g", owner_id=a, member_ids=[a, b])
    await repository.add(group)
    small = await inbox.deliver(group_message(group.id, a, "small"), [a, b])
    assert small.message.seq == 1

    switch = await repository.add_member(group.id, c, change(MEMBER_ADDED, group.id, c))
    assert isinstance(switch, GroupSwitch) and switch.member_ids == (a, b, c)
    (membership,) = await streams.memberships(c, ())
    floor = membership.intervals[0].join
    assert membership.intervals == (Interval(floor),) and membership.stream == switch.stream
    assert floor > position(small[a])  # after the group's small era in the own logs
    assert published == []  # queued at the membership transaction's commit (apply_in), not yet published
    assert await streams.apply(switch) == Applied(APPLIED, floor)  # the announcer finds it applied
    assert taken(published) == [SwitchNotification(group.id, switch.stream, floor, (a, b, c))]

    with pytest.raises(errors.GroupIsLarge):
        await inbox.deliver(group_message(group.id, a, "refused"), [a, b, c])
    assert [d.event.content for d in await inbox.read(b, None, 10)] == ["small"]  # nothing written
    posted = await streams.deliver(group_message(group.id, b, "large"))
    assert posted.message.seq == 2 and posted.position > floor
    assert taken(published) == [GroupNotification(posted.message, group.id, posted.position)]
    private = await inbox.deliver(Message(type=PRIVATE, id=new_id(), from_user_id=a, to_user_id=d,
                                          content="later", created_at=1_700_000_000), [a, d])
    assert position(private[d]) > posted.position  # one sequence for the own logs and the streams

    joined = await repository.add_member(group.id, d, change(MEMBER_ADDED, group.id, d))
    assert isinstance(joined, MemberChange) and joined.version == 2
    (membership,) = await streams.memberships(d, ())
    assert published == []
    applied = await streams.apply(joined)  # the announcer's call finds it applied, at the join
    assert applied.status == APPLIED and membership.intervals == (Interval(applied.position),)
    assert await streams.read(group.id, d, applied.position, 10) == []
    # The others read the member_added record at the join itself: it rides along.
    assert joined.record is not None and applied.position is not None
    assert taken(published) == [MembershipNotification(group.id, (d,), JOIN, applied.position,
                                                       GroupNotification(joined.record, group.id, applied.position))]
    left = await repository.remove_member(group.id, b, None, change(MEMBER_REMOVED, group.id, b))
    assert isinstance(left, MemberChange) and left.version == 3
    assert published == []
    # Whatever reaches the streams next publishes what was committed before it, first: here
    # a refused send, before the announcer's apply (so no message can overtake the leave).
    with pytest.raises(errors.NotAMember):
        await streams.deliver(group_message(group.id, b, "gone"))
    entries = await streams.read(group.id, a, floor, 10)
    seen = [(e.event.type, getattr(e.event, "user_id", None)) for e in entries]
    assert seen == [(GROUP, None), (MEMBER_ADDED, d), (MEMBER_REMOVED, b)]
    assert left.record is not None
    # A leave is the entry before its member_removed record, which comes at its own place.
    leave = MembershipNotification(group.id, (b,), LEAVE, entries[1].position,
                                   GroupNotification(left.record, group.id, entries[2].position))
    assert taken(published) == [leave]
    gone = await streams.apply(left)
    assert gone == Applied(APPLIED, entries[1].position)
    assert await streams.apply(left) == gone  # a relay: applied once, published once
    assert taken(published) == []
    # A send between a membership transaction and its announcer comes after the change on
    # the bus, as in the stream.
    back = await repository.add_member(group.id, b, change(MEMBER_ADDED, group.id, b))
    after = await streams.deliver(group_message(group.id, a, "after the rejoin"))
    assert isinstance(back, MemberChange)
    notified = taken(published)
    rejoined = await streams.apply(back)  # the announcer, late: nothing more to publish
    assert [(type(n).__name__, n.position) for n in notified] == [
        ("MembershipNotification", rejoined.position), ("GroupNotification", after.position)]
    assert taken(published) == []


@pytest.mark.gen_test
async def test_sends_racing_the_switch_keep_seqs_gapless_each_message_once(sqlite_db):
    db = sqlite_db
    inbox, streams = SqliteInbox(db, InProcessBus()), SqliteGroupStreams(db)
    repository = SqlGroupRepository(db, large_group=2, apply_in_transaction=streams.apply_in)
    a, b, c = await people(db, 3)
    group = Group(id=new_id(), name="g", owner_id=a, member_ids=[a, b])
    await repository.add(group)
    messages = [group_message(group.id, a if i % 2 else b, f"m{i}") for i in range(30)]
    accepted: list[Message] = []

    async def spread(i: int, message: Message):
        await asyncio.sleep(i * 0.002)  # a stream of sends, not one batch
        path, kept = await send(inbox, streams, message, [a, b])
        accepted.append(kept)
        return path, kept

    async def switch_midway():
        while len(accepted) < 10:
            await asyncio.sleep(0.001)
        return await repository.add_member(group.id, c, change(MEMBER_ADDED, group.id, c))

    *results, switch = await asyncio.gather(*(spread(i, m) for i, m in enumerate(messages)), switch_midway())
    assert isinstance(switch, GroupSwitch)
    by_path = {"small": [m for path, m in results if path == "small"],
               "large": [m for path, m in results if path == "large"]}
    seqs = sorted(m.seq for m in by_path["small"] + by_path["large"])
    assert seqs == list(range(1, 31))
    assert by_path["large"]  # some went after the switch
    assert max(m.seq for m in by_path["small"]) < min(m.seq for m in by_path["large"])
    own = [d.event.id for d in await inbox.read(a, None, 100) if d.event.type == GROUP]
    (membership,) = await streams.memberships(a, ())
    stream = [e.event.id for e in await streams.read(group.id, a, membership.intervals[0].join, 100)]
    assert sorted(own + stream) == sorted(m.id for m in messages) and not set(own) & set(stream)
