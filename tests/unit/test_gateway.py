"""The push gateway: live pushes to every socket, replay on resume with no gap
and no duplicate, resync after a lost bus, slow or closed clients."""
from __future__ import annotations

import asyncio

import pytest

from application.gateway import REPLAY_PAGE, START
from domain import errors
from tests.fakes.channel import RecordingChannel
from tests.unit.courier import Courier, build


@pytest.fixture
def live() -> Courier:
    courier = build()
    courier.subscribe_gateway()
    return courier


@pytest.fixture
def yielding() -> Courier:
    """An inbox whose read() yields to the event loop, as a networked one does."""
    courier = build(yielding_inbox=True)
    courier.subscribe_gateway()
    return courier


async def send(courier: Courier, sender, recipient, content: str = "hi"):
    return await courier.send_private(sender.id, {"to_user_id": recipient.id, "content": content})


async def send_many(courier: Courier, sender, recipient, count: int, prefix: str = "m"):
    return [await send(courier, sender, recipient, f"{prefix}{i}") for i in range(count)]


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def assert_strictly_increasing(cursors: list[str]) -> None:
    positions = [tuple(int(part) for part in c.split("-")) for c in cursors]
    assert positions == sorted(set(positions)), "cursors must strictly increase, without repeats"


# live pushes -----------------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_a_message_is_pushed_to_every_socket_of_the_recipient(live):
    alice, bob = await live.users_named("alice", "bob")
    phone, laptop, alices = RecordingChannel(), RecordingChannel(), RecordingChannel()
    await live.gateway.attach(bob.id, phone, None)
    await live.gateway.attach(bob.id, laptop, None)
    await live.gateway.attach(alice.id, alices, None)
    assert live.gateway.connection_count == 3
    message = await send(live, alice, bob, "hello")
    [pushed] = phone.messages
    assert laptop.messages == [pushed]
    cursor = live.bus.published[-1].cursors[bob.id]
    assert pushed == {
        "type": "private",
        "id": message.id,
        "from_user_id": alice.id,
        "to_user_id": bob.id,
        "content": "hello",
        "created_at": message.created_at,
        "seq": 1,
        "cursor": cursor,
    }
    assert message.seq == 1
    assert alices.payloads == []  # the sender never gets its own push
    assert live.gateway.pushed == 2


@pytest.mark.gen_test
async def test_both_directions(live):
    alice, bob = await live.users_named("alice", "bob")
    a, b = RecordingChannel(), RecordingChannel()
    await live.gateway.attach(alice.id, a, None)
    await live.gateway.attach(bob.id, b, None)
    to_bob = await send(live, alice, bob)
    to_alice = await send(live, bob, alice)
    assert b.ids == [to_bob.id]
    assert a.ids == [to_alice.id]


@pytest.mark.gen_test
async def test_the_sender_never_gets_its_own_push_not_even_a_note_to_self(live):
    alice = await live.user("alice")
    sockets = [RecordingChannel(), RecordingChannel()]
    for socket in sockets:
        await live.gateway.attach(alice.id, socket, None)
    await send(live, alice, alice, "memo")
    assert [s.payloads for s in sockets] == [[], []]
    # a reconnect does not replay it either, though it is in her inbox
    later = RecordingChannel()
    await live.gateway.attach(alice.id, later, START)
    assert later.payloads == []


@pytest.mark.gen_test
async def test_a_group_message_reaches_every_online_member_but_the_sender(live):
    alice, bob, carol, dave, eve = await live.users_named("alice", "bob", "carol", "dave", "eve")
    group = await live.groups.create(alice.id, "team", [bob.id, carol.id, dave.id])
    sockets = {user.id: RecordingChannel() for user in (alice, bob, carol, eve)}  # dave is offline
    for user_id, socket in sockets.items():
        await live.gateway.attach(user_id, socket, None)
    message = await live.send_group(bob.id, group.id, {"content": "hello team"})
    assert sockets[alice.id].ids == [message.id]
    assert sockets[carol.id].ids == [message.id]
    assert sockets[bob.id].payloads == []
    assert sockets[eve.id].payloads == []  # not a member
    assert sockets[alice.id].messages[0]["group_id"] == group.id
    # dave, offline, finds it in his inbox
    assert [d.event.id for d in (await live.pull(dave.id, None, None)).deliveries] == [message.id]


@pytest.mark.gen_test
async def test_a_closed_socket_does_not_disturb_the_others(live):
    alice, bob = await live.users_named("alice", "bob")
    closed, open_ = RecordingChannel(accept=0), RecordingChannel()
    await live.gateway.attach(bob.id, closed, None)
    await live.gateway.attach(bob.id, open_, None)
    message = await send(live, alice, bob)
    assert open_.ids == [message.id]
    assert closed.refused == 1
    assert live.gateway.pushed == 1  # a refused frame is not counted


@pytest.mark.gen_test
async def test_a_detached_socket_gets_nothing_more(live):
    alice, bob = await live.users_named("alice", "bob")
    gone, staying = RecordingChannel(), RecordingChannel()
    conn = await live.gateway.attach(bob.id, gone, None)
    await live.gateway.attach(bob.id, staying, None)
    first = await send(live, alice, bob)
    live.gateway.detach(conn)
    second = await send(live, alice, bob)
    assert gone.ids == [first.id]
    assert staying.ids == [first.id, second.id]
    assert live.gateway.connection_count == 1
    live.gateway.detach(conn)  # twice is harmless
    assert live.gateway.connection_count == 1


@pytest.mark.gen_test
async def test_detaching_the_last_socket_forgets_the_user(live):
    alice, bob = await live.users_named("alice", "bob")
    conn = await live.gateway.attach(bob.id, RecordingChannel(), None)
    live.gateway.detach(conn)
    assert live.gateway.connection_count == 0
    assert live.gateway.connections() == []
    await send(live, alice, bob)  # no one to push to: no error
    assert live.gateway.pushed == 0


# replay on attach --------------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_attach_without_a_cursor_starts_at_the_end_of_the_inbox(live):
    alice, bob = await live.users_named("alice", "bob")
    await send_many(live, alice, bob, 3, "old")
    socket = RecordingChannel()
    conn = await live.gateway.attach(bob.id, socket, None)
    assert socket.payloads == []
    assert conn.last_cursor == await live.inbox.last_cursor(bob.id)
    new = await send(live, alice, bob, "new")
    assert socket.ids == [new.id]


@pytest.mark.gen_test
async def test_attach_to_an_empty_inbox_starts_before_everything(live):
    alice, bob = await live.users_named("alice", "bob")
    conn = await live.gateway.attach(bob.id, RecordingChannel(), None)
    assert conn.last_cursor == START
    await send(live, alice, bob)
    assert conn.last_cursor == live.bus.published[-1].cursors[bob.id]


@pytest.mark.gen_test
async def test_resume_replays_after_the_cursor_then_goes_live(live):
    alice, bob = await live.users_named("alice", "bob")
    sent = await send_many(live, alice, bob, 4)
    cursor = (await live.pull(bob.id, None, "1")).next_cursor  # bob has seen sent[0]
    socket = RecordingChannel()
    await live.gateway.attach(bob.id, socket, cursor)
    assert socket.ids == ids(sent[1:])
    later = await send(live, alice, bob)
    assert socket.ids == ids(sent[1:]) + [later.id]
    assert_strictly_increasing(socket.cursors)


@pytest.mark.gen_test
async def test_resume_from_the_start_replays_everything_across_pages(live):
    alice, bob = await live.users_named("alice", "bob")
    sent = await send_many(live, alice, bob, 2 * REPLAY_PAGE + 7)
    socket = RecordingChannel()
    await live.gateway.attach(bob.id, socket, START)
    assert socket.ids == ids(sent)
    assert live.gateway.pushed == len(sent)


@pytest.mark.gen_test
async def test_resume_with_a_trimmed_cursor_fails_and_leaves_nothing_registered():
    courier = build(inbox_max_length=2)
    courier.subscribe_gateway()
    alice, bob = await courier.users_named("alice", "bob")
    await send_many(courier, alice, bob, 2)
    early = (await courier.pull(bob.id, None, "1")).next_cursor
    await send_many(courier, alice, bob, 2)
    socket = RecordingChannel()
    with pytest.raises(errors.CursorExpired):
        await courier.gateway.attach(bob.id, socket, early)
    assert courier.gateway.connection_count == 0  # the caller never got a connection to detach
    await send(courier, alice, bob)
    assert socket.payloads == []


@pytest.mark.gen_test
async def test_resume_with_a_cursor_after_the_newest_entry_fails_instead_of_skipping_what_comes(live):
    alice, bob = await live.users_named("alice", "bob")
    await send(live, alice, bob)
    newest = (await live.pull(bob.id, None, "10")).next_cursor
    major = int(newest.split("-")[0])
    socket = RecordingChannel()
    with pytest.raises(errors.CursorUnknown):
        await live.gateway.attach(bob.id, socket, f"{major + 100}-0")
    with pytest.raises(errors.CursorUnknown):
        await live.pull(bob.id, f"{major + 100}-0", "10")
    assert live.gateway.connection_count == 0
    await live.gateway.attach(bob.id, socket, newest)  # the newest itself is fine
    later = await send(live, alice, bob)
    assert socket.ids == [later.id]


@pytest.mark.gen_test
async def test_a_message_accepted_during_the_replay_is_sent_once_after_it(yielding):
    """The replay has read its page; a message arrives (live) before it sends:
    it is held, then sent after the page, in order."""
    alice, bob = await yielding.users_named("alice", "bob")
    sent = await send_many(yielding, alice, bob, 3)
    during = []

    async def arrives():
        during.append(await send(yielding, alice, bob, "during"))

    yielding.inbox.after_read.append(arrives)
    socket = RecordingChannel()
    await yielding.gateway.attach(bob.id, socket, START)
    assert len(during) == 1
    assert socket.ids == ids(sent + during)
    assert_strictly_increasing(socket.cursors)
    after = await send(yielding, alice, bob, "after")
    assert socket.ids == ids(sent + during + [after])


@pytest.mark.gen_test
async def test_a_message_in_both_the_replay_and_the_live_stream_is_sent_once(yielding):
    """The message arrives after the connection is registered and before the
    replay reads: the read returns it and the live push is held too."""
    alice, bob = await yielding.users_named("alice", "bob")
    sent = await send_many(yielding, alice, bob, 2)
    during = []

    async def arrives():
        during.append(await send(yielding, alice, bob, "during"))

    yielding.inbox.before_read.append(arrives)
    socket = RecordingChannel()
    await yielding.gateway.attach(bob.id, socket, START)
    assert socket.ids == ids(sent + during)
    assert_strictly_increasing(socket.cursors)


@pytest.mark.gen_test
async def test_many_messages_arriving_across_a_long_replay(yielding):
    alice, bob, carol = await yielding.users_named("alice", "bob", "carol")
    sent = await send_many(yielding, alice, bob, REPLAY_PAGE + 10)
    during = []

    def burst(n):
        async def action():
            for i in range(n):
                sender = alice if i % 2 else carol
                during.append(await send(yielding, sender, bob, f"during{len(during)}"))

        return action

    yielding.inbox.before_read += [burst(3)]
    yielding.inbox.after_read += [burst(2)]
    socket = RecordingChannel()
    await yielding.gateway.attach(bob.id, socket, START)
    # every message exactly once, in the order of bob's inbox
    inbox_order = [d.event.id for d in await yielding.inbox.read(bob.id, None, 10_000)]
    assert socket.ids == inbox_order
    assert set(socket.ids) == set(ids(sent + during))
    assert len(socket.ids) == len(sent) + len(during)
    assert_strictly_increasing(socket.cursors)


@pytest.mark.gen_test
async def test_a_socket_that_goes_away_stops_the_replay(live):
    alice, bob = await live.users_named("alice", "bob")
    sent = await send_many(live, alice, bob, 5)
    slow = RecordingChannel(accept=2)
    await live.gateway.attach(bob.id, slow, START)
    assert slow.ids == ids(sent[:2])
    assert slow.refused == 1  # nothing more was tried after the first refusal
    assert live.gateway.pushed == 2


@pytest.mark.gen_test
async def test_a_socket_that_goes_away_stops_a_replay_of_many_pages(yielding):
    alice, bob = await yielding.users_named("alice", "bob")
    await send_many(yielding, alice, bob, 3 * REPLAY_PAGE)
    slow = RecordingChannel(accept=10)
    await yielding.gateway.attach(bob.id, slow, START)
    assert len(slow.payloads) == 10 and slow.refused == 1
    assert len(yielding.inbox.reads) == 1  # no further page was read


@pytest.mark.gen_test
async def test_held_pushes_are_dropped_when_the_socket_went_away_during_the_replay(yielding):
    alice, bob = await yielding.users_named("alice", "bob")
    await send_many(yielding, alice, bob, 3)

    async def arrives():
        await send(yielding, alice, bob, "during")

    yielding.inbox.after_read.append(arrives)
    slow = RecordingChannel(accept=1)
    await yielding.gateway.attach(bob.id, slow, START)
    assert len(slow.payloads) == 1 and slow.refused == 1


@pytest.mark.gen_test
async def test_replay_skips_the_users_own_messages_but_not_what_follows(live):
    alice, bob = await live.users_named("alice", "bob")
    before = await send(live, bob, alice, "to alice")
    memo = await send(live, alice, alice, "memo")
    after = await send(live, bob, alice, "to alice again")
    socket = RecordingChannel()
    conn = await live.gateway.attach(alice.id, socket, START)
    assert socket.ids == [before.id, after.id]
    assert memo.id not in socket.ids
    assert conn.last_cursor == live.bus.published[-1].cursors[alice.id]


# resync after a lost bus ---------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_resync_all_sends_what_was_missed_while_the_bus_was_lost(live):
    alice, bob, carol = await live.users_named("alice", "bob", "carol")
    bobs = [RecordingChannel(), RecordingChannel()]
    carols = RecordingChannel()
    for socket in bobs:
        await live.gateway.attach(bob.id, socket, None)
    await live.gateway.attach(carol.id, carols, None)
    seen = await send(live, alice, bob, "seen")
    live.unsubscribe_gateway()
    missed = await send_many(live, alice, bob, 3, "missed")
    missed_by_carol = await send(live, alice, carol, "missed too")
    assert [s.ids for s in bobs] == [[seen.id], [seen.id]]
    live.subscribe_gateway()
    await live.gateway.resync_all()
    for socket in bobs:
        assert socket.ids == [seen.id] + ids(missed)
        assert_strictly_increasing(socket.cursors)
    assert carols.ids == [missed_by_carol.id]
    again = await send(live, alice, bob, "live again")
    assert bobs[0].ids[-1] == again.id and bobs[0].ids.count(again.id) == 1


@pytest.mark.gen_test
async def test_a_resync_of_some_users_reads_their_gap_and_leaves_the_others_alone(live):
    """A cluster bus that lost one node's buckets resyncs those buckets' users only."""
    alice, bob, carol = await live.users_named("alice", "bob", "carol")
    bobs, carols = RecordingChannel(), RecordingChannel()
    await live.gateway.attach(bob.id, bobs, None)
    await live.gateway.attach(carol.id, carols, None)
    live.unsubscribe_gateway()
    missed_by_bob = await send(live, alice, bob, "missed")
    missed_by_carol = await send(live, alice, carol, "missed too")
    live.subscribe_gateway()
    await live.gateway.resync_all([bob.id, "nobody-here"])
    assert bobs.ids == [missed_by_bob.id]
    assert carols.ids == []  # not resynced: its gap stays unread
    await live.gateway.resync_all()
    assert carols.ids == [missed_by_carol.id] and bobs.ids == [missed_by_bob.id]


@pytest.mark.gen_test
async def test_resync_with_nothing_missed_sends_nothing(live):
    alice, bob = await live.users_named("alice", "bob")
    socket = RecordingChannel()
    await live.gateway.attach(bob.id, socket, None)
    await send(live, alice, bob)
    await live.gateway.resync_all()
    assert len(socket.payloads) == 1


@pytest.mark.gen_test
async def test_a_failing_resync_of_one_connection_does_not_stop_the_others(live):
    alice, bob, carol = await live.users_named("alice", "bob", "carol")
    bobs, carols = RecordingChannel(), RecordingChannel()
    bob_conn = await live.gateway.attach(bob.id, bobs, None)
    await live.gateway.attach(carol.id, carols, None)
    live.unsubscribe_gateway()
    missed = await send(live, alice, carol)
    bob_conn.last_cursor = "garbage"  # its read raises
    await live.gateway.resync_all()
    assert carols.ids == [missed.id]


@pytest.mark.gen_test
async def test_a_connection_whose_gap_cannot_be_read_is_closed_for_resume_not_pushed_past_it(live):
    alice, bob = await live.users_named("alice", "bob")
    socket = RecordingChannel()
    await live.gateway.attach(bob.id, socket, None)
    live.unsubscribe_gateway()
    await send(live, alice, bob, "missed")
    live.inbox.fail_reads = errors.ServiceUnavailable("redis is down")
    live.subscribe_gateway()
    await live.gateway.resync_all()
    assert socket.closed_for_resume == ["try_again"]
    assert live.gateway.connection_count == 0
    live.inbox.fail_reads = None
    await send(live, alice, bob, "after")
    assert socket.payloads == []  # nothing pushed past the gap


@pytest.mark.gen_test
async def test_a_resync_reads_through_a_store_that_is_coming_back(live):
    """Right after a restart Redis takes the subscription while it still refuses reads
    (loading its data): the resync tries again instead of closing every socket."""
    alice, bob = await live.users_named("alice", "bob")
    socket = RecordingChannel()
    await live.gateway.attach(bob.id, socket, None)
    live.unsubscribe_gateway()
    missed = await send(live, alice, bob, "missed")
    live.inbox.fail_reads = errors.ServiceUnavailable("redis is loading")
    asyncio.get_running_loop().call_later(0.1, setattr, live.inbox, "fail_reads", None)
    live.subscribe_gateway()
    await live.gateway.resync_all()
    assert socket.closed_for_resume == [] and socket.ids == [missed.id]
    assert live.gateway.connection_count == 1


@pytest.mark.gen_test
async def test_a_connection_whose_gap_was_trimmed_is_told_its_cursor_expired(live):
    alice, bob = await live.users_named("alice", "bob")
    socket = RecordingChannel()
    await live.gateway.attach(bob.id, socket, None)
    live.inbox.fail_reads = errors.CursorExpired()
    await live.gateway.resync_all()
    assert socket.closed_for_resume == ["cursor_expired"]


class StalledChannel(RecordingChannel):
    """A socket whose reader stopped reading: what is written stays queued, forever."""

    async def drain(self) -> None:
        await asyncio.Event().wait()


@pytest.mark.gen_test(timeout=10)
async def test_a_socket_that_does_not_drain_holds_up_no_other_during_a_resync(live):
    """After a lost bus a stalled reader's replay waits for its socket to drain; every
    other connection reads its own gap meanwhile and gets its live pushes after it."""
    alice, bob, carol = await live.users_named("alice", "bob", "carol")
    stalled, carols = StalledChannel(), RecordingChannel()
    await live.gateway.attach(bob.id, stalled, None)  # first: resynced first
    await live.gateway.attach(carol.id, carols, None)
    live.unsubscribe_gateway()
    await send_many(live, alice, bob, REPLAY_PAGE + 10)  # more than a page: the replay drains
    missed = await send(live, alice, carol, "missed")
    resync = live.gateway.resync_all()  # holds every connection before it returns
    live.subscribe_gateway()
    later = await send(live, alice, carol, "live")  # handed over at once: held until carol's replay
    for _ in range(100):
        if len(carols.ids) == 2:
            break
        await asyncio.sleep(0.01)
    assert carols.ids == [missed.id, later.id]
    assert len(stalled.payloads) == REPLAY_PAGE and not resync.done()  # bob's replay still waits
    resync.cancel()
    with pytest.raises(asyncio.CancelledError):
        await resync


@pytest.mark.gen_test
async def test_resync_during_a_replay_sends_nothing_twice(yielding):
    """The bus comes back while a socket is still replaying: both replays of
    that connection must not send the same messages twice."""
    alice, bob = await yielding.users_named("alice", "bob")
    sent = await send_many(yielding, alice, bob, 3)
    resync = []
    yielding.inbox.before_read.append(lambda: resync.append(asyncio.ensure_future(yielding.gateway.resync_all())))
    socket = RecordingChannel()
    await yielding.gateway.attach(bob.id, socket, START)
    await asyncio.gather(*resync)
    assert socket.ids == ids(sent)
    later = await send(yielding, alice, bob)
    assert socket.ids == ids(sent) + [later.id]


@pytest.mark.gen_test
async def test_resync_during_a_replay_still_reads_the_gap(yielding):
    """A notification lost while the socket was replaying is found by the resync
    that follows, even though the replay was still running when it began."""
    alice, bob = await yielding.users_named("alice", "bob")
    sent = await send_many(yielding, alice, bob, 2)
    lost, resync = [], []

    async def bus_lost_then_back():
        yielding.unsubscribe_gateway()
        lost.append(await send(yielding, alice, bob, "lost"))
        yielding.subscribe_gateway()
        resync.append(asyncio.ensure_future(yielding.gateway.resync_all()))

    # after the replay's (only) read: it will not see the lost message itself
    yielding.inbox.after_read.append(bus_lost_then_back)
    socket = RecordingChannel()
    await yielding.gateway.attach(bob.id, socket, START)
    await asyncio.gather(*resync)
    assert socket.ids == ids(sent + lost)
    assert_strictly_increasing(socket.cursors)


# notifications the gateway must drop -----------------------------------------------------------------
@pytest.mark.gen_test
async def test_a_notification_seen_twice_is_pushed_once(live):
    alice, bob = await live.users_named("alice", "bob")
    socket = RecordingChannel()
    await live.gateway.attach(bob.id, socket, None)
    await send(live, alice, bob)
    live.gateway.on_notification(live.bus.published[-1])  # e.g. redelivered by the bus
    assert len(socket.payloads) == 1


@pytest.mark.gen_test
async def test_a_notification_from_before_the_connection_started_is_dropped(live):
    alice, bob = await live.users_named("alice", "bob")
    old = await send(live, alice, bob, "old")
    old_notification = live.bus.published[-1]
    socket = RecordingChannel()
    await live.gateway.attach(bob.id, socket, None)  # starts after `old`
    live.gateway.on_notification(old_notification)  # arrives late
    assert socket.payloads == []
    new = await send(live, alice, bob, "new")
    assert socket.ids == [new.id]
    assert old.id not in socket.ids


@pytest.mark.gen_test
async def test_each_socket_keeps_its_own_position(live):
    alice, bob = await live.users_named("alice", "bob")
    sent = await send_many(live, alice, bob, 3)
    cursor_after_first = (await live.pull(bob.id, None, "1")).next_cursor
    resumed, fresh = RecordingChannel(), RecordingChannel()
    await live.gateway.attach(bob.id, resumed, cursor_after_first)
    await live.gateway.attach(bob.id, fresh, None)
    later = await send(live, alice, bob)
    assert resumed.ids == ids(sent[1:]) + [later.id]
    assert fresh.ids == [later.id]


# pacing and bounds of a replay -------------------------------------------------------------------
@pytest.mark.gen_test
async def test_a_long_replay_waits_for_the_socket_to_drain_between_pages(live):
    alice, bob = await live.users_named("alice", "bob")
    first = await send(live, alice, bob, "first")
    await send_many(live, alice, bob, 2 * REPLAY_PAGE + 5)
    start = live.bus.published[0].cursors[bob.id]
    assert first is not None
    channel = RecordingChannel()
    await live.gateway.attach(bob.id, channel, start)
    assert len(channel.payloads) == 2 * REPLAY_PAGE + 5
    assert channel.drains == 2  # once after each full page, before the next read


@pytest.mark.gen_test
async def test_live_pushes_held_during_a_replay_are_bounded_and_still_arrive_once(yielding):
    from application.gateway import MAX_HELD

    alice, bob = await yielding.users_named("alice", "bob")
    start = START
    burst = MAX_HELD + 50

    held_after_flood = []

    async def flood():
        await send_many(yielding, alice, bob, burst, prefix="live")
        [conn] = yielding.gateway.connections()
        held_after_flood.append(len(conn._held))

    yielding.inbox.before_read.append(flood)  # the first read of the replay lets a flood in
    channel = RecordingChannel()
    await yielding.gateway.attach(bob.id, channel, start)
    assert held_after_flood and held_after_flood[0] <= MAX_HELD
    assert [m["content"] for m in channel.messages] == [f"live{i}" for i in range(burst)]
    assert_strictly_increasing(channel.cursors)


# one notification, cursors shared and own ------------------------------------------------------
@pytest.mark.gen_test
async def test_each_recipient_gets_its_own_cursor_when_some_differ(live):
    """deliver.lua hands one cursor to every recipient but those whose inbox needed an id
    of its own: each socket must get the cursor of its own inbox, whatever the order."""
    from application.ports import Notification
    from domain.model import GROUP, Message

    alice, bob, carol, dave = await live.users_named("alice", "bob", "carol", "dave")
    sockets = {user.id: RecordingChannel() for user in (bob, carol, dave)}
    for user_id, socket in sockets.items():
        await live.gateway.attach(user_id, socket, None)
    message = Message(type=GROUP, id="m1", from_user_id=alice.id, group_id="g1", content="hi",
                      created_at=1_700_000_000)
    shared = "1800000000000-0"
    cursors = {bob.id: shared, carol.id: "1800000000000-5", dave.id: "".join(["1800000000000", "-0"])}
    live.gateway.on_notification(Notification(message, cursors))
    assert {user_id: socket.messages[0]["cursor"] for user_id, socket in sockets.items()} == cursors
    assert sockets[bob.id].payloads[0] is sockets[dave.id].payloads[0]  # equal cursors: the same bytes
