"""The GroupStreams port (application/ports.py), over its adapters: memory (the tests'
fake, tests/fakes/group_streams.py), SQLite (the embedded mode's: adapters/sql/
group_streams.py) and Redis (production: adapters/redis/lg_*.lua). What
the port promises (docs/design/large-groups.md, sections 4-5 and 15): a group's messages
take seqs 1, 2, 3... from where its small era stopped; each member reads exactly the
entries inside its intervals, across them; a join starts after its member_added record, a
leave ends before its member_removed record, and a channel logs neither; only members
post, and only the owner in a channel; a retried client_msg_id gets its original; changes
apply once and in version order (WAIT); trimmed and made-up positions answer 410."""
from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from adapters.redis.buckets import Buckets
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.group_streams import RedisGroupStreams
from adapters.sql.database import Database
from adapters.sql.group_streams import SqliteGroupStreams
from adapters.sql.messages import store_change
from adapters.sql.tables import groups, messages
from adapters.sql.users import SqlUserRepository, utcnow
from application.ports import (
    APPLIED,
    DONE,
    JOIN,
    LEAVE,
    OWNER,
    WAIT,
    AnyNotification,
    Applied,
    GroupNotification,
    GroupPosted,
    GroupStreams,
    GroupSwitch,
    LoggedChange,
    MemberChange,
    MembershipNotification,
    SwitchNotification,
)
from domain import errors
from domain.cursor import Position
from domain.events import (
    MEMBER_ADDED,
    MEMBER_REMOVED,
    MESSAGE_DELETED,
    MESSAGE_UPDATED,
    GroupChange,
    MessageChange,
    delete_event_id,
    edit_event_id,
)
from domain.model import GROUP, Message, User
from domain.vector import Interval
from tests.fakes.group_streams import MemoryGroupStreams

EVERYTHING = 1000


@dataclass
class Harness:
    """One adapter, and the group's member versions as SQL would hand them out."""

    streams: GroupStreams
    small_seqs: dict[str, int]  # the fake's small counters; Redis's are set through `client`
    client: object | None = None
    database: Database | None = None  # SQLite's: its users and groups rows are made as they are needed
    keys: ClusterKeys | None = None  # a Redis Cluster's layout (its small counters are the buckets')
    versions: dict[str, int] = field(default_factory=dict)
    snos: itertools.count = field(default_factory=lambda: itertools.count(1))
    made: set[str] = field(default_factory=set)  # users and groups with their SQL rows

    async def small_counter(self, group_id: str, seq: int) -> None:
        """Where the small path's counter of the group stands before the switch."""
        if self.database is not None:  # the counter is the messages table
            sender = new_id()
            await self.rows(group_id, sender, [sender])
            row = dict(id=new_id(), type=GROUP, from_user_id=sender, group_id=group_id, conversation="g:" + group_id,
                       content="small", created_at=1_700_000_000, conversation_seq=seq)
            await self.database.write(_insert, messages, row)
        elif self.client is None:
            self.small_seqs["g:" + group_id] = seq
        else:
            await self.client.set(self.counter(f"g:{group_id}"), seq)

    def counter(self, conversation: str) -> str:
        return f"seq:{conversation}" if self.keys is None else self.keys.seq(conversation)

    def seq_complete(self, conversation: str) -> str:
        return "seq:complete" if self.keys is None else self.keys.seq_complete(self.keys.bucket_of(conversation))

    async def rows(self, group_id: str | None, owner: str | None, user_ids: list[str]) -> None:
        """SQL: the rows the streams' tables refer to (senders are users, a stream's group is a group)."""
        if self.database is None:
            return
        for user_id in user_ids:
            if user_id not in self.made:
                await SqlUserRepository(self.database).add(User(id=user_id, username="u" + user_id[:12],
                                                                password_hash="h"))
                self.made.add(user_id)
        if group_id is not None and group_id not in self.made:
            await self.database.write(_insert, groups, dict(id=group_id, name="g", owner_id=owner,
                                                            created_at=utcnow()))
            self.made.add(group_id)

    async def switch(self, members: list[str], channel: bool = False, group_id: str | None = None) -> Group:
        group_id = group_id or new_id()
        await self.rows(group_id, members[0], members)
        self.versions[group_id] = 5  # a group switches at some version of its own
        sno = next(self.snos)
        applied = await self.streams.apply(GroupSwitch(group_id, new_id(), 5, sno, members[0], channel,
                                                       tuple(members)))
        assert applied.status == APPLIED and applied.position is not None
        return Group(group_id, sno, applied.position, members[0])

    def change(self, group: Group, kind: str, user_id: str | None, version: int | None = None,
               owner_id: str | None = None, by: str | None = None) -> MemberChange:
        """The next change of the group (or one at `version`), with the record others see."""
        if version is None:
            version = self.versions[group.id] = self.versions[group.id] + 1
        record = None
        if kind in (JOIN, LEAVE):
            record = GroupChange(MEMBER_ADDED if kind == JOIN else MEMBER_REMOVED, new_id(), group.id,
                                 by or group.owner, 1_700_000_000, user_id=user_id)
        return MemberChange(kind, group.id, new_id(), version, (user_id,) if user_id else (), record, owner_id)

    async def join(self, group: Group, user_id: str) -> Position:
        await self.rows(None, None, [user_id])
        return await self._apply(self.change(group, JOIN, user_id))

    async def leave(self, group: Group, user_id: str, owner_id: str | None = None) -> Position:
        return await self._apply(self.change(group, LEAVE, user_id, owner_id=owner_id, by=user_id))

    async def _apply(self, change: MemberChange) -> Position:
        applied = await self.streams.apply(change)
        assert applied.status == APPLIED and applied.position is not None
        return applied.position

    async def post(self, group: Group, sender: str, content: str = "hi", client_msg_id: str | None = None):
        return await self.streams.deliver(message(group.id, sender, content, client_msg_id))

    async def change_message(self, group: Group, changed: Message) -> Applied:
        """A message's edit or deletion as ChangeMessages makes it: the MessageStore's
        row changed (the embedded stream reads it), then the event logged."""
        if self.database is not None:
            await self.database.write(_store_change, changed)
        if changed.deleted_at is not None:
            record = MessageChange(MESSAGE_DELETED, delete_event_id(changed.id), changed)
        else:
            assert changed.edited_at is not None
            record = MessageChange(MESSAGE_UPDATED, edit_event_id(changed.id, changed.content, changed.edited_at),
                                   changed)
        return await self.streams.apply(LoggedChange(group.id, record))

    async def read(self, group: Group, user_id: str, after: Position | None = None, limit: int = EVERYTHING):
        return await self.streams.read(group.id, user_id, group.floor if after is None else after, limit)


@dataclass(frozen=True)
class Group:
    id: str
    sno: int
    floor: Position
    owner: str


def new_id() -> str:
    return str(uuid.uuid4())


def message(group_id: str, sender: str, content: str = "hi", client_msg_id: str | None = None) -> Message:
    return Message(type=GROUP, id=new_id(), from_user_id=sender, content=content, created_at=1_700_000_000,
                   group_id=group_id, client_msg_id=client_msg_id)


def _store_change(conn, changed: Message) -> None:
    with conn.begin():
        store_change(conn, changed)


def _insert(conn, table, row: dict) -> None:
    with conn.begin():
        conn.execute(table.insert().values(row))


def make(kind: str, request, max_length: int = 10_000,
         publish: Callable[[AnyNotification], None] | None = None) -> Harness:
    """`publish`: where the memory and SQLite adapters publish (Redis publishes on its channels)."""
    if kind == "memory":
        small: dict[str, int] = {}
        return Harness(MemoryGroupStreams(itertools.count(1).__next__, small, max_length=max_length,
                                          publish=publish), small)
    if kind == "sqlite":
        database = request.getfixturevalue("sql_database")("sqlite")
        return Harness(SqliteGroupStreams(database, max_length, trim_every=1, publish=publish), {},
                       database=database)
    if kind == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster_client")
        keys = ClusterKeys(Buckets())
        return Harness(RedisGroupStreams(cluster, max_length, exact_trim=True, keys=keys), {}, cluster, keys=keys)
    client, channel = request.getfixturevalue("redis_client"), request.getfixturevalue("channel")
    return Harness(RedisGroupStreams(client, max_length, exact_trim=True, channel=channel), {}, client)


KINDS = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis),
         pytest.param("redis-cluster", marks=pytest.mark.redis)]


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def harness(kind, request) -> Harness:
    return make(kind, request)


def ids(entries) -> list[str]:
    return [entry.event.id for entry in entries]


@pytest.mark.gen_test
async def test_a_groups_messages_take_seqs_in_order_and_every_member_reads_them(harness):
    a, b = new_id(), new_id()
    group = await harness.switch([a, b])
    posted = [await harness.post(group, sender, f"m{i}") for i, sender in enumerate([a, b, a, a, b])]
    assert [p.message.seq for p in posted] == [1, 2, 3, 4, 5]
    assert not any(p.duplicate for p in posted)
    positions = [p.position for p in posted]
    assert group.floor < positions[0] and positions == sorted(set(positions))
    for reader in (a, b):
        got = await harness.read(group, reader)
        assert [entry.event for entry in got] == [p.message for p in posted]  # the switch marker passed over
        assert [entry.position for entry in got] == positions
    assert ids(await harness.read(group, b, limit=2)) == ids(await harness.read(group, a))[:2]
    assert ids(await harness.read(group, b, positions[1], 2)) == [p.message.id for p in posted[2:4]]
    assert await harness.read(group, b, positions[-1]) == []
    assert await harness.read(group, b, limit=0) == []
    (membership,) = await harness.streams.memberships(a, ())
    assert (membership.group_id, membership.stream, membership.intervals, membership.newest) == (
        group.id, group.sno, (Interval(group.floor),), positions[-1])


@pytest.mark.gen_test
async def test_the_switch_takes_over_the_small_counter_and_is_applied_once(harness):
    a, b = new_id(), new_id()
    group_id = new_id()
    await harness.small_counter(group_id, 41)
    group = await harness.switch([a, b], group_id=group_id)
    assert (await harness.post(group, a)).message.seq == 42
    again = await harness.streams.apply(GroupSwitch(group_id, new_id(), 5, group.sno, a, False, (a, b, new_id())))
    assert again == Applied(APPLIED, group.floor)  # a relay, or a second announcer: nothing changes
    assert (await harness.post(group, b)).message.seq == 43
    assert [m.intervals for m in await harness.streams.memberships(b, ())] == [(Interval(group.floor),)]


@pytest.mark.gen_test
async def test_memberships_list_the_users_groups_and_the_named_streams_once(harness):
    a, b, outsider = new_id(), new_id(), new_id()
    first = await harness.switch([a, b])
    second = await harness.switch([a])
    assert {m.group_id for m in await harness.streams.memberships(a, [first.sno, second.sno])} == {first.id,
                                                                                                  second.id}
    assert [m.group_id for m in await harness.streams.memberships(b, ())] == [first.id]
    # Named by a cursor: the group comes with no interval for one who never was in it.
    named = await harness.streams.memberships(outsider, [second.sno, 999_999])
    assert [(m.group_id, m.stream, m.intervals) for m in named] == [(second.id, second.sno, ())]
    assert await harness.streams.memberships(outsider, ()) == []


@pytest.mark.gen_test
async def test_a_join_starts_after_its_member_added_record(harness):
    a, b, c = new_id(), new_id(), new_id()
    group = await harness.switch([a, b])
    before = await harness.post(group, a, "before")
    join = await harness.join(group, c)
    after = await harness.post(group, c, "after")
    assert before.position < join < after.position
    assert ids(await harness.read(group, c, join)) == [after.message.id]
    assert await harness.read(group, c, before.position) == [(await harness.read(group, c, join))[0]]
    # The others read the record at the join's place; the joiner has it in its own log.
    seen = await harness.read(group, b)
    assert [(e.position, e.event.type) for e in seen] == [(before.position, GROUP), (join, MEMBER_ADDED),
                                                           (after.position, GROUP)]
    assert seen[1].event.user_id == c
    (membership,) = await harness.streams.memberships(c, ())
    assert membership.intervals == (Interval(join),)


@pytest.mark.gen_test
async def test_a_leave_ends_before_its_member_removed_record(harness):
    a, b = new_id(), new_id()
    group = await harness.switch([a, b])
    kept = [await harness.post(group, a, f"m{i}") for i in range(2)]
    leave = await harness.leave(group, b)
    gone = await harness.post(group, a, "after")
    assert leave == kept[-1].position
    assert ids(await harness.read(group, b)) == [p.message.id for p in kept]
    assert await harness.read(group, b, leave) == []
    assert [e.event.type for e in await harness.read(group, a, leave)] == [MEMBER_REMOVED, GROUP]
    assert ids(await harness.read(group, a, leave))[1] == gone.message.id
    (membership,) = await harness.streams.memberships(b, ())
    assert membership.intervals == (Interval(group.floor, leave),)
    with pytest.raises(errors.NotAMember):
        await harness.post(group, b)


@pytest.mark.gen_test
async def test_a_rejoined_member_reads_both_stretches_and_nothing_between(harness):
    a, b = new_id(), new_id()
    group = await harness.switch([a, b])
    first = await harness.post(group, a, "first")
    leave = await harness.leave(group, b)
    missed = await harness.post(group, a, "missed")
    join = await harness.join(group, b)
    second = await harness.post(group, a, "second")
    (membership,) = await harness.streams.memberships(b, ())
    assert membership.intervals == (Interval(group.floor, leave), Interval(join))
    assert ids(await harness.read(group, b)) == [first.message.id, second.message.id]
    # One page across both intervals, however small, and from a place between them.
    assert ids(await harness.read(group, b, limit=1)) == [first.message.id]
    assert ids(await harness.read(group, b, first.position, 1)) == [second.message.id]
    assert ids(await harness.read(group, b, missed.position)) == [second.message.id]
    assert missed.message.id in ids(await harness.read(group, a))


@pytest.mark.gen_test
async def test_the_intervals_of_many_members_come_in_one_read(harness):
    a, b, c, outsider = new_id(), new_id(), new_id(), new_id()
    group = await harness.switch([a, b, c])
    await harness.post(group, a, "first")
    leave = await harness.leave(group, b)
    await harness.post(group, a, "missed")
    join = await harness.join(group, b)
    assert await harness.streams.intervals(group.id, [a, b, outsider]) == {
        a: (Interval(group.floor),), b: (Interval(group.floor, leave), Interval(join))}
    assert await harness.streams.intervals(group.id, []) == {}
    assert await harness.streams.intervals(new_id(), [a]) == {}  # no such group


@pytest.mark.gen_test
async def test_only_members_post_and_a_group_not_yet_switched_has_no_stream(harness):
    a, outsider = new_id(), new_id()
    group = await harness.switch([a])
    with pytest.raises(errors.NotAMember):
        await harness.post(group, outsider)
    small = new_id()
    if harness.client is not None:  # the worker's mark: Redis holds its data
        await harness.client.set(harness.seq_complete(f"g:{small}"), "1")
    try:
        with pytest.raises(errors.NoGroupStream):
            await harness.streams.deliver(message(small, a))
    finally:
        if harness.keys is not None:  # a bucket's mark on the shared cluster: other tests seed counters
            await harness.client.delete(harness.seq_complete(f"g:{small}"))
    assert await harness.read(group, a) == []
    assert (await harness.post(group, a)).message.seq == 1  # the refusals took no seq


@pytest.mark.gen_test
async def test_in_a_channel_only_the_owner_posts_and_joins_and_leaves_are_not_logged(harness):
    owner, member, newcomer = new_id(), new_id(), new_id()
    channel = await harness.switch([owner, member], channel=True)
    with pytest.raises(errors.NotAllowed):
        await harness.post(channel, member)
    first = await harness.post(channel, owner, "first")
    assert first.message.seq == 1
    join = await harness.join(channel, newcomer)
    assert join == first.position  # no record: the stream's newest id
    leave = await harness.leave(channel, member)
    assert leave == first.position
    second = await harness.post(channel, owner, "second")
    assert ids(await harness.read(channel, owner)) == [first.message.id, second.message.id]
    assert ids(await harness.read(channel, newcomer, join)) == [second.message.id]
    assert ids(await harness.read(channel, member)) == [first.message.id]
    with pytest.raises(errors.NotAllowed):
        await harness.post(channel, newcomer)


@pytest.mark.gen_test
@pytest.mark.parametrize("in_channel", [True, False])
async def test_a_bulk_join_is_one_change_for_all_its_users_and_logs_nothing(harness, in_channel):
    """ManageGroups.add_members: one version, several users, no record (design section 9)."""
    owner, *joiners = [new_id() for _ in range(5)]
    group = await harness.switch([owner], channel=in_channel)
    first = await harness.post(group, owner, "first")
    await harness.rows(None, None, joiners)
    harness.versions[group.id] += 1
    bulk = MemberChange(JOIN, group.id, new_id(), harness.versions[group.id], tuple(joiners))
    applied = await harness.streams.apply(bulk)
    assert applied == Applied(APPLIED, first.position)  # no record: at the stream's newest id
    assert await harness.streams.apply(bulk) == applied  # once
    second = await harness.post(group, owner, "second")
    assert ids(await harness.read(group, owner)) == [first.message.id, second.message.id]
    for joiner in joiners:
        assert ids(await harness.read(group, joiner, applied.position)) == [second.message.id]
    if not in_channel:
        assert (await harness.post(group, joiners[-1], "mine")).message.seq == 3


@pytest.mark.gen_test
async def test_an_owner_change_moves_the_right_to_post_in_a_channel(harness):
    owner, heir = new_id(), new_id()
    channel = await harness.switch([owner, heir], channel=True)
    applied = await harness.streams.apply(harness.change(channel, OWNER, None, owner_id=heir))
    assert applied.status == APPLIED
    with pytest.raises(errors.NotAllowed):
        await harness.post(channel, owner)
    assert (await harness.post(channel, heir)).message.seq == 1
    # An owner leaving names its successor in the same change.
    await harness.leave(channel, heir, owner_id=owner)
    assert (await harness.post(channel, owner)).message.seq == 2


@pytest.mark.gen_test
async def test_a_retried_client_msg_id_gets_its_original_even_after_its_sender_left(harness):
    a, b = new_id(), new_id()
    group = await harness.switch([a, b])
    original = await harness.post(group, a, "once", client_msg_id="c-1")
    retry = await harness.post(group, a, "once", client_msg_id="c-1")
    assert retry.duplicate and (retry.message, retry.position) == (original.message, original.position)
    assert retry.message.seq == 1 and retry.message.client_msg_id == "c-1"
    other = await harness.post(group, b, "b's own", client_msg_id="c-1")  # another sender's key
    assert not other.duplicate and other.message.seq == 2
    await harness.leave(group, a)
    late = await harness.post(group, a, "once", client_msg_id="c-1")
    assert late.duplicate and late.message == original.message
    seen = await harness.read(group, b)  # nothing doubled
    assert [(e.event.id, e.event.type) for e in seen[:2]] == [(original.message.id, GROUP),
                                                               (other.message.id, GROUP)]
    assert [e.event.type for e in seen[2:]] == [MEMBER_REMOVED]
    with pytest.raises(errors.NotAMember):
        await harness.post(group, a, "new", client_msg_id="c-2")


@pytest.mark.gen_test
async def test_an_edit_and_a_deletion_go_once_into_the_stream_and_reads_show_the_message_as_it_is(harness):
    a, b, c = new_id(), new_id(), new_id()
    group = await harness.switch([a, b])
    kept, gone = await harness.post(group, a, "first"), await harness.post(group, b, "second")
    edited = kept.message.with_change("first, edited", 1_700_000_100, None)
    deleted = gone.message.with_change("", None, 1_700_000_200)
    first = await harness.change_message(group, edited)
    assert first.status == APPLIED and first.position is not None and first.position > gone.position
    again = await harness.change_message(group, edited)  # a retried PATCH: nothing appended
    assert again.status in (APPLIED, DONE) and again.position in (None, first.position)
    join = await harness.join(group, c)  # a later member reads neither the message nor the change
    assert (await harness.change_message(group, deleted)).status == APPLIED
    assert (await harness.change_message(group, deleted)).status in (APPLIED, DONE)  # a second DELETE
    got = await harness.read(group, b)
    assert [entry.event.type for entry in got] == [GROUP, GROUP, MESSAGE_UPDATED, MEMBER_ADDED,
                                                   MESSAGE_DELETED]
    message_one, message_two, update, _, deletion = (entry.event for entry in got)
    assert isinstance(message_one, Message) and isinstance(message_two, Message)
    assert (message_one.content, message_one.edited_at, message_one.seq) == ("first, edited", 1_700_000_100, 1)
    assert (message_two.content, message_two.deleted_at, message_two.seq) == ("", 1_700_000_200, 2)
    assert isinstance(update, MessageChange) and update.message.content == "first, edited"
    assert isinstance(deletion, MessageChange) and deletion.message.deleted_at == 1_700_000_200
    assert [entry.event.type for entry in await harness.read(group, c, join)] == [MESSAGE_DELETED]


@pytest.mark.gen_test
async def test_is_member_tells_an_open_interval_and_none_for_a_group_without_a_stream(harness):
    a, b, c = new_id(), new_id(), new_id()
    small = new_id()
    assert await harness.streams.is_member(small, a) is None  # no stream: the caller asks the group
    group = await harness.switch([a, b])
    assert (await harness.streams.is_member(group.id, a), await harness.streams.is_member(group.id, c)) == (True,
                                                                                                        False)
    await harness.leave(group, b)
    assert await harness.streams.is_member(group.id, b) is False
    await harness.join(group, b)
    assert await harness.streams.is_member(group.id, b) is True


@pytest.mark.gen_test
async def test_a_message_change_waits_for_its_groups_switch(harness):
    a = new_id()
    group_id = new_id()
    await harness.rows(group_id, a, [a])
    changed = message(group_id, a).with_seq(1).with_change("edited", 1_700_000_100, None)
    record = MessageChange(MESSAGE_UPDATED, edit_event_id(changed.id, "edited", 1_700_000_100), changed)
    assert await harness.streams.apply(LoggedChange(group_id, record)) == Applied(WAIT)


@pytest.mark.gen_test
async def test_changes_apply_in_version_order_and_once(harness):
    a, b, c = new_id(), new_id(), new_id()
    group = await harness.switch([a])
    first = harness.change(group, JOIN, b)
    second = harness.change(group, JOIN, c)
    assert await harness.streams.apply(second) == Applied(WAIT)  # its predecessor is not applied yet
    # Nothing applied: the group is listed with no interval (Redis: lgm:<U> is written first), or not at all.
    assert [m.intervals for m in await harness.streams.memberships(c, ())] in ([()], [])
    applied = await harness.streams.apply(first)
    assert applied.status == APPLIED
    assert (await harness.streams.apply(second)).status == APPLIED
    assert await harness.streams.apply(first) == applied  # a relay: its place, from its done marker
    stale = harness.change(group, JOIN, b, version=first.version)  # applied before, under another event id
    assert await harness.streams.apply(stale) == Applied(DONE)
    assert sum(e.event.type == MEMBER_ADDED for e in await harness.read(group, a)) == 2
    # A change of a group whose switch is not applied yet waits too.
    unknown = MemberChange(JOIN, new_id(), new_id(), 9, (a,))
    assert await harness.streams.apply(unknown) == Applied(WAIT)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.gen_test
async def test_a_start_before_what_the_stream_retains_answers_410(kind, request):
    harness = make(kind, request, max_length=4)
    a, b, late = new_id(), new_id(), new_id()
    group = await harness.switch([a, b])
    early = [await harness.post(group, a, f"m{i}") for i in range(6)]
    join = await harness.join(group, late)
    rest = [await harness.post(group, a, f"n{i}") for i in range(3)]  # keeps the join's record, trims m5
    with pytest.raises(errors.CursorExpired):
        await harness.read(group, b)  # from its join, the floor: long trimmed
    with pytest.raises(errors.CursorExpired):
        await harness.read(group, b, early[2].position)
    assert ids(await harness.read(group, late, join)) == [p.message.id for p in rest]
    assert ids(await harness.read(group, b, join)) == [p.message.id for p in rest]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.gen_test
async def test_a_trimmed_stretch_the_reader_left_answers_no_410(kind, request):
    harness = make(kind, request, max_length=3)
    a, b = new_id(), new_id()
    group = await harness.switch([a, b])
    await harness.post(group, a, "read before leaving")
    leave = await harness.leave(group, b)
    for i in range(6):
        await harness.post(group, a, f"m{i}")
    assert await harness.read(group, b, leave) == []  # nothing of b's is after its leave
    join = await harness.join(group, b)
    last = await harness.post(group, a, "back")
    assert ids(await harness.read(group, b, leave)) == [last.message.id]  # straight to the new stretch
    assert ids(await harness.read(group, b, join)) == [last.message.id]


@pytest.mark.gen_test
async def test_a_position_after_the_streams_newest_entry_is_unknown(harness):
    a = new_id()
    group = await harness.switch([a])
    posted = await harness.post(group, a)
    ms, n = posted.position
    for made_up in [(ms, n + 1), (ms + 1, 0), (2**64 - 1, 2**64 - 1)]:
        with pytest.raises(errors.CursorUnknown):
            await harness.read(group, a, made_up)
    assert await harness.read(group, a, posted.position) == []


@dataclass
class Recorded:
    """An adapter and what it published. `embedded`: each change is applied first through
    apply_in, in a transaction of its own, as the embedded SqlGroupRepository does in its
    membership transaction, and then through apply(), as the announcer does."""

    harness: Harness
    published: list[AnyNotification]
    embedded: bool = False

    async def apply(self, change: GroupSwitch | MemberChange) -> Applied:
        if self.embedded:
            streams, database = self.harness.streams, self.harness.database
            assert isinstance(streams, SqliteGroupStreams) and database is not None
            await database.write(_apply_in, streams, change)
            assert self.published == []  # not committed yet when apply_in returns: nothing to publish
        return await self.harness.streams.apply(change)

    async def deliver(self, posted: Message) -> GroupPosted:
        return await self.harness.streams.deliver(posted)

    def taken(self) -> list[AnyNotification]:
        taken, self.published[:] = list(self.published), []
        return taken


def _apply_in(conn, streams: SqliteGroupStreams, change: GroupSwitch | MemberChange) -> Applied:
    with conn.begin():
        return streams.apply_in(conn, change)


def shown(notification: AnyNotification, places: dict[Position, object]) -> tuple:
    """A notification with its events as their ids and its positions as what the adapter's
    own read() finds there (`places`; a position that holds no entry is shown as it is):
    each adapter places entries on its own clock."""

    def at(position: Position) -> object:
        return places.get(position, position)

    if isinstance(notification, SwitchNotification):
        return ("switch", notification.group_id, notification.stream, at(notification.floor),
                notification.member_ids)
    if isinstance(notification, GroupNotification):
        return ("entry", notification.group_id, notification.event.id, at(notification.position))
    assert isinstance(notification, MembershipNotification)
    record = None if notification.record is None else shown(notification.record, places)
    return ("member", notification.group_id, notification.user_ids, notification.kind, at(notification.position),
            record)


@pytest.mark.parametrize("via", ["apply", "apply_in then apply"])
@pytest.mark.gen_test
async def test_sqlite_publishes_what_the_fake_and_the_scripts_publish(via, request):
    """One script over the fake and SQLite: the switch, messages, a join and a leave with
    the records the others read (at the records' own places), nothing for an owner change,
    a channel's join without a record, nothing for a retried client_msg_id, a stale change
    (DONE) or an early one (WAIT). Then every change is applied again: neither publishes
    anything (Redis neither). In embedded mode the membership transaction applies each
    change (apply_in): its commit queues the notification, and the announcer's apply(),
    which finds the change applied, publishes the queue."""
    a, b, c, owner, newcomer = (new_id() for _ in range(5))
    g, h = new_id(), new_id()

    def record(kind: str, group_id: str, user_id: str, by: str) -> GroupChange:
        return GroupChange(kind, new_id(), group_id, by, 1_700_000_000, user_id=user_id)

    switch_g = GroupSwitch(g, new_id(), 5, 1, a, False, (a, b))
    first, second = message(g, a, "first", client_msg_id="c-1"), message(g, c, "second")
    join_c = MemberChange(JOIN, g, new_id(), 6, (c,), record(MEMBER_ADDED, g, c, a))
    leave_b = MemberChange(LEAVE, g, new_id(), 7, (b,), record(MEMBER_REMOVED, g, b, b))
    owner_c = MemberChange(OWNER, g, new_id(), 8, owner_id=c)
    switch_h = GroupSwitch(h, new_id(), 5, 2, owner, True, (owner, b))
    post = message(h, owner, "post")
    join_n = MemberChange(JOIN, h, new_id(), 6, (newcomer,), record(MEMBER_ADDED, h, newcomer, owner))  # dropped
    stale = MemberChange(JOIN, g, new_id(), 6, (b,), record(MEMBER_ADDED, g, b, a))  # v6 is join_c's: DONE
    early = MemberChange(JOIN, g, new_id(), 10, (b,), record(MEMBER_ADDED, g, b, a))  # v9 is missing: WAIT
    script: list[tuple[str, Callable[[Recorded], Awaitable[object]]]] = [
        ("switch g", lambda run: run.apply(switch_g)),
        ("first", lambda run: run.deliver(first)),
        ("join c", lambda run: run.apply(join_c)),
        ("second", lambda run: run.deliver(second)),
        ("leave b", lambda run: run.apply(leave_b)),
        ("owner c", lambda run: run.apply(owner_c)),
        ("switch h", lambda run: run.apply(switch_h)),
        ("post", lambda run: run.deliver(post)),
        ("join n", lambda run: run.apply(join_n)),
        ("retry", lambda run: run.deliver(first)),
        ("stale", lambda run: run.apply(stale)),
        ("early", lambda run: run.apply(early)),
    ]
    again = {"join c": join_c, "leave b": leave_b, "owner c": owner_c, "switch g": switch_g, "switch h": switch_h,
             "join n": join_n}
    runs = []
    for kind, embedded in (("memory", False), ("sqlite", via != "apply")):
        published: list[AnyNotification] = []
        run = Recorded(make(kind, request, publish=published.append), published, embedded)
        await run.harness.rows(g, a, [a, b, c, owner, newcomer])
        await run.harness.rows(h, owner, [])
        runs.append(run)

    first_time: list[dict[str, list[AnyNotification]]] = [{}, {}]
    answers: list[dict[str, object]] = [{}, {}]
    for name, step in script:
        for index, run in enumerate(runs):
            answers[index][name] = await step(run)
            first_time[index][name] = run.taken()
    second_time: list[dict[str, list[AnyNotification]]] = [{}, {}]
    for name, change in again.items():
        for index, run in enumerate(runs):
            assert (await run.apply(change)).status == APPLIED
            second_time[index][name] = run.taken()

    expected = {
        "switch g": [("switch", g, 1, "floor", (a, b))],
        "first": [("entry", g, first.id, first.id)],
        "join c": [("member", g, (c,), JOIN, join_c.record.id, ("entry", g, join_c.record.id, join_c.record.id))],
        "second": [("entry", g, second.id, second.id)],
        "leave b": [("member", g, (b,), LEAVE, second.id, ("entry", g, leave_b.record.id, leave_b.record.id))],
        "owner c": [],
        "switch h": [("switch", h, 2, "floor", (owner, b))],
        "post": [("entry", h, post.id, post.id)],
        "join n": [("member", h, (newcomer,), JOIN, post.id, None)],
        "retry": [], "stale": [], "early": [],
    }
    for index, run in enumerate(runs):
        assert answers[index]["retry"].duplicate
        assert answers[index]["stale"] == Applied(DONE) and answers[index]["early"] == Applied(WAIT)
        # Each adapter's positions, as the entries its read() finds there.
        floors = {answers[index]["switch g"].position, answers[index]["switch h"].position}
        found: dict[Position, object] = dict.fromkeys(floors, "floor")
        for group_id, reader, switched in ((g, a, "switch g"), (h, owner, "switch h")):
            entries = await run.harness.streams.read(group_id, reader, answers[index][switched].position, EVERYTHING)
            found.update((entry.position, entry.event.id) for entry in entries)
        assert {name: [shown(n, found) for n in got] for name, got in first_time[index].items()} == expected
        repeated = {name: [shown(n, found) for n in got] for name, got in second_time[index].items()}
        assert repeated == dict.fromkeys(again, [])
    # The same events, record for record (SQLite's records as read back from its stream).
    memory, sqlite = ([getattr(n.record if isinstance(n, MembershipNotification) else n, "event", None)
                       for got in by_step.values() for n in got] for by_step in first_time)
    assert sqlite == memory and len(memory) == 8
