"""The gateway with large groups (docs/design/large-groups.md, section 6): a connection
keeps a position per stream, group entries come on the group's channel (followed while
a local member is in the group), and exactly once holds per stream across replays,
joins, leaves, the switch and a lost bus. Over fakes: MemoryInbox, MemoryGroupStreams
publishing on the InProcessBus, MemoryCursorCheckpoints."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from adapters.memory.bus import InProcessBus
from application.connection import Connection
from application.gateway import Gateway
from application.ports import GroupNotification, MembershipNotification, SwitchNotification
from application.timeline import Timeline
from application.vector_connection import VectorConnection
from domain import errors
from domain.cursor import parse_cursor
from domain.events import MEMBER_ADDED, MEMBER_REMOVED, Delivery, GroupChange
from domain.model import GROUP, PRIVATE, Message
from entrypoints.container import encode_delivery
from tests.fakes.channel import RecordingChannel
from tests.fakes.checkpoints import MemoryCursorCheckpoints
from tests.fakes.group_streams import MemoryGroupStreams
from tests.fakes.idempotency import MemoryIdempotencyKeys
from tests.fakes.inbox import MemoryInbox, YieldingInbox

BOB, CAROL, DAVE = "bob", "carol", "dave"


@dataclass
class World:
    bus: InProcessBus
    inbox: MemoryInbox
    streams: MemoryGroupStreams
    gateway: Gateway
    ids: itertools.count = field(default_factory=itertools.count)
    seqs: dict[str, int] = field(default_factory=dict)

    def post(self, group_id: str, sender: str = DAVE) -> Message:
        self.seqs[group_id] = seq = self.seqs.get(group_id, 0) + 1
        message = Message(GROUP, f"g{next(self.ids)}", sender, "hi", 0, group_id=group_id, seq=seq)
        self.streams.post(group_id, message)
        return message

    async def private(self, to: str, sender: str = DAVE) -> Message:
        message = Message(PRIVATE, f"p{next(self.ids)}", sender, "hi", 0, to_user_id=to)
        return (await self.inbox.deliver(message, [to, sender])).message

    async def own_copy(self, kind: str, group_id: str, user_id: str) -> None:
        """The member's own copy of its member_added / member_removed (step 3 of section 4.3)."""
        await self.inbox.append(GroupChange(kind, f"c{next(self.ids)}", group_id, DAVE, 0, user_id=user_id), [user_id])

    async def attach(self, user_id: str, cursor: str | None = None, events: bool = False) -> tuple:
        channel = RecordingChannel()
        conn = await self.gateway.attach(user_id, channel, cursor, events)
        return conn, channel


def world(yielding: bool = False) -> World:
    bus = InProcessBus()
    memory = MemoryInbox(bus, MemoryIdempotencyKeys())
    inbox = YieldingInbox(memory) if yielding else memory
    streams = MemoryGroupStreams(memory.next_id, publish=bus.publish)
    timeline = Timeline(inbox, streams, MemoryCursorCheckpoints())
    gateway = Gateway(inbox, encode_delivery, 0.3, timeline=timeline, subscriber=bus)
    bus._subscribers.append(gateway.on_notification)
    return World(bus, memory, streams, gateway)


def stream_positions(cursor: str, w: World, group_id: str):
    return parse_cursor(cursor).groups.get(w.streams.stream_of(group_id))


@pytest.mark.gen_test
async def test_a_group_entry_is_pushed_once_to_each_member_connection_and_to_no_one_else():
    w = world()
    w.streams.switch("G", [BOB, CAROL, DAVE])
    _, phone = await w.attach(BOB)
    _, laptop = await w.attach(BOB)
    _, carols = await w.attach(CAROL)
    _, daves = await w.attach(DAVE)
    _, eves = await w.attach("eve")
    message = w.post("G")
    assert phone.ids == laptop.ids == carols.ids == [message.id]
    assert daves.ids == [] and eves.ids == []  # the sender (original view), and no member
    assert w.bus.followed == {"G"}
    assert stream_positions(phone.cursors[0], w, "G") is not None  # the cursor names the group's stream
    assert w.gateway.pushed == 3


@pytest.mark.gen_test
async def test_the_event_view_gets_its_own_send_with_its_client_msg_id():
    w = world()
    w.streams.switch("G", [BOB, DAVE])
    _, channel = await w.attach(DAVE, events=True)
    message = Message(GROUP, "m1", DAVE, "hi", 0, group_id="G", client_msg_id="k1")
    await w.streams.deliver(message)
    assert channel.messages[0]["client_msg_id"] == "k1"


@pytest.mark.gen_test
async def test_spliced_frames_are_each_entry_encoded_whole_at_each_sockets_cursor():
    # Section 6.3 / 19: the frames of several sockets, in two groups and the own log, in
    # both views, with the sender's own client_msg_id: byte for byte what encoding the
    # entry with that socket's whole cursor gives.
    w = world()
    w.streams.switch("G", [BOB, CAROL, DAVE])
    w.streams.switch("H", [BOB, DAVE])
    sockets = {(BOB, False): (await w.attach(BOB))[1], (BOB, True): (await w.attach(BOB, events=True))[1],
               (CAROL, False): (await w.attach(CAROL))[1], (DAVE, True): (await w.attach(DAVE, events=True))[1]}
    sent = {}
    for n in range(4):
        for group_id, sender in (("G", DAVE), ("H", BOB), ("G", CAROL)):
            message = Message(GROUP, f"m{n}{group_id}{sender}", sender, f"hi {n}", 0, group_id=group_id,
                              client_msg_id=f"k{n}")
            sent[message.id] = (await w.streams.deliver(message)).message
        private = await w.private(BOB)
        sent[private.id] = private
    for (user_id, events), channel in sockets.items():
        assert channel.payloads, (user_id, events)
        for payload, body in zip(channel.payloads, channel.messages, strict=True):
            delivery = Delivery(sent[body["id"]], body["cursor"])
            assert payload == encode_delivery(delivery, user_id if events else None)
    assert parse_cursor(sockets[BOB, False].cursors[-1]).groups.keys() == {w.streams.stream_of("G"),
                                                                           w.streams.stream_of("H")}


@pytest.mark.gen_test
async def test_a_user_in_no_large_group_keeps_a_plain_connection_and_the_shared_frame():
    w = world()
    w.streams.switch("G", [CAROL, DAVE])
    conn, channel = await w.attach(BOB)
    assert type(conn) is Connection  # no per-socket work added to its push
    await w.private(BOB)
    assert channel.cursors == [await w.inbox.last_cursor(BOB)]  # the legacy form, as today


@pytest.mark.gen_test
async def test_own_log_pushes_to_a_group_member_carry_its_whole_vector():
    w = world()
    w.streams.switch("G", [BOB, DAVE])
    conn, channel = await w.attach(BOB)
    assert isinstance(conn, VectorConnection)
    group_message = w.post("G")
    private = await w.private(BOB)
    assert channel.ids == [group_message.id, private.id]
    cursor = parse_cursor(channel.cursors[1])
    assert cursor.own is not None and cursor.groups  # both streams: a resume skips neither
    resumed, later = await w.attach(BOB, channel.cursors[1])
    assert later.ids == []


@pytest.mark.gen_test
async def test_entries_live_during_a_replay_are_held_and_released_in_stream_order():
    w = world(yielding=True)
    w.streams.switch("G", [BOB, DAVE])
    _, first = await w.attach(BOB)
    before = [w.post("G") for _ in range(3)]
    cursor = first.cursors[0] if first.cursors else None
    assert [m.id for m in before] == first.ids
    inbox = w.gateway._inbox
    assert isinstance(inbox, YieldingInbox)
    during: list[Message] = []
    # While the replay reads the own log (after the streams' read was set up), more come.
    inbox.before_read.append(lambda: during.extend([w.post("G"), w.post("G")]))
    _, second = await w.attach(BOB, cursor)
    after = w.post("G")
    expected = [m.id for m in before[1:] + during + [after]]
    assert second.ids == expected  # each once, in stream order: the replay's, then the held ones not read
    assert len(set(second.cursors)) == len(second.cursors)


@pytest.mark.gen_test
async def test_an_entry_posted_while_a_connection_reads_its_memberships_reaches_it():
    # The entry lands after the replay's refresh read the streams' newest ids and before
    # the new connection is in the group's index: not pushed to it live, not held, so only
    # the replay's read can bring it, whatever the newest read before said (found by the
    # two-gateway production test: a socket missed a group's first message).
    w = world()
    w.streams.switch("G", [BOB, CAROL, DAVE])
    await w.attach(CAROL)  # G is followed: the entries are pushed to the index at once
    timeline = w.gateway._timeline
    assert timeline is not None
    refresh = timeline.refresh
    posted: list[Message] = []

    async def then_a_post(user_id, vector):
        newest = await refresh(user_id, vector)
        if user_id == BOB and not posted:
            posted.append(w.post("G"))
        return newest

    timeline.refresh = then_a_post  # type: ignore[method-assign]
    _, bobs = await w.attach(BOB)
    later = w.post("G")
    assert posted and bobs.ids == [posted[0].id, later.id]


@pytest.mark.gen_test
async def test_join_mid_stream_replays_from_the_join_and_then_goes_live():
    w = world()
    w.streams.switch("G", [CAROL, DAVE])
    _, channel = await w.attach(BOB)
    w.post("G")  # before the join: not bob's
    assert w.bus.followed == set()  # no local member: not followed
    w.streams.join("G", BOB, by_user_id=DAVE)
    # Between the script and bob's own copy, a post: he reads it in the replay.
    between = w.post("G")
    await w.own_copy(MEMBER_ADDED, "G", BOB)
    await w.gateway.settled()
    assert w.bus.followed == {"G"}
    live = w.post("G")
    assert channel.ids == [between.id, live.id]


@pytest.mark.gen_test
async def test_the_member_added_record_reaches_the_other_members_event_view_live():
    w = world()
    w.streams.switch("G", [CAROL, DAVE])
    _, carols = await w.attach(CAROL, events=True)
    w.streams.join("G", BOB, by_user_id=DAVE)
    after = w.post("G")
    assert [m["type"] for m in carols.messages] == [MEMBER_ADDED, GROUP]
    assert carols.ids[1] == after.id


@pytest.mark.gen_test
async def test_a_leave_stops_the_pushes_exactly_at_the_leave():
    w = world()
    w.streams.switch("G", [BOB, CAROL, DAVE])
    conn, channel = await w.attach(BOB)
    _, carols = await w.attach(CAROL, events=True)
    last = w.post("G")
    w.streams.leave("G", BOB, by_user_id=BOB)
    after = w.post("G")
    assert channel.ids == [last.id]
    assert [m["type"] for m in carols.messages] == [GROUP, MEMBER_REMOVED, GROUP]
    assert carols.ids[2] == after.id
    await w.gateway.settled()
    assert w.bus.followed == {"G"}  # carol is still in it
    w.gateway.detach(conn)
    _, again = await w.attach(BOB, channel.cursors[-1])
    assert again.ids == []  # nothing after the leave on a resume either


@pytest.mark.gen_test
async def test_the_last_local_member_leaving_unfollows_the_group():
    w = world()
    w.streams.switch("G", [BOB, DAVE])
    await w.attach(BOB)
    w.streams.leave("G", BOB, by_user_id=BOB)
    await w.gateway.settled()
    assert w.bus.followed == set()


@pytest.mark.gen_test
async def test_a_member_removed_while_offline_gets_nothing_after_the_removal_on_resume():
    w = world()
    w.streams.switch("G", [BOB, DAVE])
    conn, channel = await w.attach(BOB)
    first = w.post("G")
    w.gateway.detach(conn)
    inside = w.post("G")
    w.streams.leave("G", BOB, by_user_id=DAVE)
    await w.own_copy(MEMBER_REMOVED, "G", BOB)
    w.post("G")
    _, resumed = await w.attach(BOB, channel.cursors[-1], events=True)
    assert resumed.ids[0] == inside.id and [m["type"] for m in resumed.messages] == [GROUP, MEMBER_REMOVED]
    w.post("G")
    assert len(resumed.ids) == 2  # and nothing live
    assert first.id not in resumed.ids


@pytest.mark.gen_test
async def test_the_switch_starts_every_local_member_at_the_floor():
    w = world()
    bob_conn, channel = await w.attach(BOB)
    assert type(bob_conn) is Connection
    small = Message(GROUP, "small", DAVE, "hi", 0, group_id="G")
    await w.inbox.deliver(small, [BOB, DAVE])  # the small era: in bob's own log
    w.streams.switch("G", [BOB, DAVE])  # publishes `switched` on the main channel
    await w.gateway.settled()
    assert isinstance(bob_conn, VectorConnection)  # the same connection, now with a slot
    large = w.post("G")
    assert channel.ids == ["small", large.id]
    assert w.bus.followed == {"G"}


@pytest.mark.gen_test
async def test_two_connections_of_one_user_at_different_positions_each_get_their_rest():
    w = world()
    w.streams.switch("G", [BOB, DAVE])
    w.streams.switch("H", [BOB, DAVE])
    _, old = await w.attach(BOB)
    g1, h1 = w.post("G"), w.post("H")
    _, new = await w.attach(BOB)  # at the end now
    g2 = w.post("G")
    assert old.ids == [g1.id, h1.id, g2.id]
    assert new.ids == [g2.id]
    # A third resumes from the old one's first cursor: only H's entry and G's second.
    _, third = await w.attach(BOB, old.cursors[0])
    assert third.ids == [h1.id, g2.id]
    h2 = w.post("H")
    assert [c.ids[-1] for c in (old, new, third)] == [h2.id] * 3


@pytest.mark.gen_test
async def test_a_resync_after_the_bus_was_lost_reads_every_stream_and_skips_what_was_held():
    w = world()
    w.streams.switch("G", [BOB, DAVE])
    w.streams.switch("H", [BOB, DAVE])
    _, channel = await w.attach(BOB)
    w.post("G")
    w.bus._subscribers.remove(w.gateway.on_notification)  # the bus is lost
    missed = [w.post("G"), w.post("H"), await w.private(BOB)]
    w.bus._subscribers.append(w.gateway.on_notification)
    resynced = w.gateway.resync_all()  # every connection held from here on
    # Published once the bus is back, before the replay reads: held, then read by the
    # replay too - sent once, by the replay, and skipped on release as at or before the
    # stream's position.
    both = [w.post("H"), w.post("G")]
    await resynced
    assert channel.ids[1:] == [m.id for m in missed + both]
    live = w.post("H")
    assert channel.ids[-1] == live.id and len(channel.ids) == 7


@pytest.mark.gen_test
async def test_an_entry_between_a_leave_and_a_rejoin_arriving_late_is_not_pushed():
    """On Redis the own log and the group's channel come on two connections: a rejoin's
    member_added may put the connection back in the index before an older entry of the
    channel arrives. The interval test keeps it out (the position test alone would not:
    the position is still at the first leave)."""
    w = world()
    w.streams.switch("G", [BOB, DAVE])
    _, channel = await w.attach(BOB)
    w.streams.leave("G", BOB, by_user_id=BOB)
    w.bus.keep_published = True
    outside = w.post("G")
    [late] = [n for n in w.bus.published if isinstance(n, GroupNotification)]
    w.streams.join("G", BOB, by_user_id=DAVE)
    await w.own_copy(MEMBER_ADDED, "G", BOB)
    await w.gateway.settled()
    w.gateway.on_notification(late)
    inside = w.post("G")
    assert outside.id not in channel.ids
    assert channel.ids == [inside.id]


@pytest.mark.gen_test
async def test_a_switch_join_or_leave_published_twice_is_taken_once():
    """The embedded mode publishes a change at each apply that answers it (the announcer's
    call, then a relay's): the second copy of a switch or a join replays to where the
    first one left the connection, its record is a duplicate by position, and a leave
    published again after a rejoin closes nothing and keeps the connection in the group."""
    w = world()
    w.bus.keep_published = True
    w.streams.switch("G", [BOB, CAROL, DAVE])
    _, bobs = await w.attach(BOB)
    _, carols = await w.attach(CAROL, events=True)
    w.gateway.on_notification(w.bus.published[0])  # the switch again
    before = w.post("G")
    w.streams.leave("G", BOB, by_user_id=BOB)
    outside = w.post("G")
    w.streams.join("G", BOB, by_user_id=DAVE)
    await w.own_copy(MEMBER_ADDED, "G", BOB)
    await w.gateway.settled()
    leave, join = [n for n in w.bus.published if isinstance(n, MembershipNotification)]
    assert isinstance(w.bus.published[0], SwitchNotification) and leave.record and join.record
    w.gateway.on_notification(leave)
    inside = w.post("G")
    assert bobs.ids == [before.id, inside.id]  # live: still in the group's index
    w.gateway.on_notification(join)
    await w.gateway.settled()
    last = w.post("G")
    assert bobs.ids == [before.id, inside.id, last.id] and outside.id not in bobs.ids
    assert [m["type"] for m in carols.messages] == [GROUP, MEMBER_REMOVED, GROUP, MEMBER_ADDED, GROUP, GROUP]
    assert w.bus.followed == {"G"}


@pytest.mark.gen_test
async def test_a_new_connection_takes_cursorless_pushes_while_its_cursor_is_resolved():
    # With a Timeline, attach reads before it knows the connection's vector: the connection
    # is registered (and held) first, so a typing frame sent right after the client saw its
    # socket open reaches it, and a message stored meanwhile still comes once, after it.
    w = world()
    timeline = w.gateway._timeline
    assert timeline is not None
    resolve = timeline.resolve
    during: list[Message] = []

    async def pushes_meanwhile(user_id, cursor):
        assert w.gateway.push_cursorless([BOB], b'{"type":"typing"}', events_only=True) == 1
        during.append(await w.private(BOB))
        return await resolve(user_id, cursor)

    timeline.resolve = pushes_meanwhile  # type: ignore[method-assign]
    _, channel = await w.attach(BOB, await w.inbox.last_cursor(BOB) or "0-0", events=True)
    after = await w.private(BOB)
    assert [m["type"] for m in channel.messages] == ["typing", PRIVATE, PRIVATE]
    assert [m["id"] for m in channel.messages[1:]] == [during[0].id, after.id]


@pytest.mark.gen_test
async def test_a_connect_without_a_cursor_reads_the_memberships_once_and_misses_nothing():
    # live_cursor's vector is kept for the attach of the same cursor (one read fewer per
    # socket opened); a message between the two still comes, and once.
    w = world()
    w.streams.switch("G", [BOB, DAVE])
    first = w.post("G")
    memberships = w.streams.memberships
    reads = []

    async def counted(user_id, streams):
        reads.append(user_id)
        return await memberships(user_id, streams)

    w.streams.memberships = counted  # type: ignore[method-assign]
    cursor = await w.gateway.live_cursor(BOB)
    between = w.post("G")
    _, channel = await w.attach(BOB, cursor)
    after = w.post("G")
    assert channel.ids == [between.id, after.id] and first.id not in channel.ids
    # live_cursor's, then the replay's refresh and its second look on entering G's index:
    # attach resolved nothing (without the kept vector, four).
    assert reads == [BOB, BOB, BOB]
    _, again = await w.attach(BOB, cursor)  # the same text a second time: resolved as any cursor
    assert again.ids == [between.id, after.id]


@pytest.mark.gen_test
async def test_a_replay_whose_page_fails_halfway_is_read_again_from_where_it_was():
    # A page of the original view passes over the user's own sends; past REPLAY_PAGE of
    # them the own log is read again, and that read fails once (the store restarting).
    # The messages from others already taken into the page but not sent are sent by the
    # retry: the vector went back, it did not stay past them.
    w = world()
    w.streams.switch("G", [BOB, DAVE])
    conn, channel = await w.attach(BOB)
    w.bus._subscribers.remove(w.gateway.on_notification)  # the bus is lost
    for _ in range(195):
        await w.private(DAVE, sender=BOB)  # own sends: not in the original view
    missed = [await w.private(BOB) for _ in range(10)]
    w.bus._subscribers.append(w.gateway.on_notification)
    read = w.inbox.read
    calls = []

    async def fails_once(user_id, after, limit):
        calls.append(after)
        if len(calls) == 2:
            raise errors.ServiceUnavailable("redis is unavailable (read)")
        return await read(user_id, after, limit)

    w.inbox.read = fails_once  # type: ignore[method-assign]
    await w.gateway.resync_all()
    assert len(calls) >= 3  # the failed read was tried again
    assert channel.ids == [m.id for m in missed]
