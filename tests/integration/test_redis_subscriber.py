"""RedisNotificationSubscriber against a real Redis: order, malformed messages,
lost connections (CLIENT KILL, a restart, a silent server) and a clean stop.
The connection tests run a redis-server of their own, so killing its pub/sub
clients cannot disturb anyone else's."""
from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from adapters.redis.inbox import RedisInbox
from adapters.redis.subscriber import RedisNotificationSubscriber
from application.gateway import Gateway
from domain.model import PRIVATE, Message
from entrypoints.container import encode_delivery
from tests.services.redis import make_client
from tests.services.waiting import stop, until

pytestmark = pytest.mark.redis


def message(content: str, sender: str = "a", to: str = "b") -> Message:
    return Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id=sender, to_user_id=to, content=content,
                   created_at=1_700_000_000)


class Recorder:
    def __init__(self):
        self.notifications = []
        self.resyncs = 0

    def on_notification(self, notification):
        self.notifications.append(notification)

    async def on_resync(self):
        self.resyncs += 1


def fast(source, channel: str) -> RedisNotificationSubscriber:
    return RedisNotificationSubscriber(source, channel, ping_interval=0.2, min_backoff=0.02, max_backoff=0.2)


@pytest.mark.gen_test(timeout=10)
async def test_notifications_arrive_in_order_with_their_cursors(redis_client, channel):
    inbox = RedisInbox(redis_client, channel=channel)
    recorder = Recorder()
    task = asyncio.ensure_future(fast(redis_client, channel).run(recorder.on_notification, recorder.on_resync))
    await until(lambda: recorder.resyncs == 1)  # subscribed (a first resync closes the start-up gap)
    cursors = [await inbox.deliver(message(f"m{i} 😀"), ["b", "c"]) for i in range(50)]
    sent = [accepted.message for accepted in cursors]
    await until(lambda: len(recorder.notifications) == 50)
    assert [n.event for n in recorder.notifications] == sent
    assert [n.cursors for n in recorder.notifications] == cursors
    await stop(task)
    assert recorder.resyncs == 1


@pytest.mark.gen_test(timeout=10)
async def test_malformed_notifications_and_failing_handlers_are_skipped(redis_client, channel):
    inbox = RedisInbox(redis_client, channel=channel)
    received = []

    def on_notification(notification):
        if notification.event.content == "boom":
            raise RuntimeError("a bug in the gateway")
        received.append(notification.event.content)

    async def on_resync():
        received.append("resync")

    task = asyncio.ensure_future(fast(redis_client, channel).run(on_notification, on_resync))
    await until(lambda: received == ["resync"])
    for garbage in (b"\xff\xfe not utf-8", b"{}", b'{"message": {}, "cursors": {}}', b"[1]",
                    b'{"message": {"type": "private"}, "cursors": "x"}', b""):
        await redis_client.publish(channel, garbage)
    await inbox.deliver(message("boom"), ["b"])
    await inbox.deliver(message("after"), ["b"])
    await until(lambda: received[-1:] == ["after"])
    assert received == ["resync", "after"]
    await stop(task)


class Channel:
    def __init__(self):
        self.payloads: list[bytes] = []

    def send(self, payload: bytes) -> bool:
        self.payloads.append(payload)
        return True

    async def drain(self) -> None:
        pass

    def resume_later(self, cursor_expired: bool) -> None:
        raise AssertionError("a resync failed")

    def ids(self) -> list[str]:
        return [orjson.loads(p)["id"] for p in self.payloads]


async def send_while(inbox, sent: list, stop_sending: asyncio.Event) -> None:
    while not stop_sending.is_set():
        m = message(f"live {len(sent)}")
        await inbox.deliver(m, ["b"])
        sent.append(m.id)
        await asyncio.sleep(0.002)


@pytest.mark.gen_test(timeout=20)
async def test_a_killed_subscription_resyncs_and_the_socket_misses_nothing(io_loop, private_redis, channel):
    client = make_client(private_redis.url)
    try:
        inbox = RedisInbox(client, channel=channel)
        gateway = Gateway(inbox, encode_delivery)
        subscriber = fast(private_redis.url, channel)
        resyncs = []

        def on_resync():
            resyncs.append(1)
            return gateway.resync_all()  # holds every connection before it returns

        task = asyncio.ensure_future(subscriber.run(gateway.on_notification, on_resync))
        await until(lambda: resyncs)
        socket = Channel()
        await gateway.attach("b", socket, None)

        sent: list[str] = []
        stop_sending = asyncio.Event()
        producer = asyncio.ensure_future(send_while(inbox, sent, stop_sending))
        for _ in range(3):  # kill the subscription three times while messages flow
            await until(lambda: len(socket.payloads) >= len(sent) - 5 and len(sent) > 20)
            killed = private_redis.command("CLIENT", "KILL", "TYPE", "pubsub")
            assert killed == 1
            before = len(resyncs)
            await until(lambda before=before: len(resyncs) > before)
        await asyncio.sleep(0.1)
        stop_sending.set()
        await producer
        await until(lambda: len(socket.payloads) == len(sent))
        assert socket.ids() == sent  # every message exactly once, in order
        assert subscriber.resubscriptions == 3
        await stop(task)
    finally:
        await client.aclose()


@pytest.mark.gen_test(timeout=20)
async def test_a_redis_restart_is_ridden_out(private_redis, channel):
    recorder = Recorder()
    subscriber = fast(private_redis.url, channel)
    task = asyncio.ensure_future(subscriber.run(recorder.on_notification, recorder.on_resync))
    await until(lambda: recorder.resyncs == 1)
    private_redis.stop()
    await asyncio.sleep(0.5)  # several failed reconnects, with backoff
    private_redis.start()
    await until(lambda: recorder.resyncs == 2)
    client = make_client(private_redis.url)
    try:
        m = (await RedisInbox(client, channel=channel).deliver(message("after the restart"), ["b"])).message
        await until(lambda: recorder.notifications)
        assert recorder.notifications[0].event == m
    finally:
        await client.aclose()
    await stop(task)


@pytest.mark.gen_test(timeout=20)
async def test_notifications_are_handed_over_while_the_resync_still_runs(redis_client, channel):
    """on_resync takes over at once and its work runs on (Gateway.resync_all holds each
    connection until its own replay is done): a slow resync delays no notification."""
    recorder = Recorder()
    never_done = asyncio.get_running_loop().create_future()

    def on_resync():
        recorder.resyncs += 1
        return never_done  # a replay waiting for a socket that does not drain

    subscriber = fast(redis_client, channel)
    task = asyncio.ensure_future(subscriber.run(recorder.on_notification, on_resync))
    await until(lambda: recorder.resyncs == 1)
    m = (await RedisInbox(redis_client, channel=channel).deliver(message("while resyncing"), ["b"])).message
    await until(lambda: recorder.notifications)
    assert recorder.notifications[0].event == m and not never_done.done()
    await stop(task)
    assert never_done.cancelled()  # stopping the subscriber stops what it started


@pytest.mark.gen_test(timeout=30)
async def test_after_a_long_outage_the_subscription_is_back_within_a_second(private_redis, channel):
    """The reconnect backoff stops doubling at a second: pushes wait for the resync no
    longer than that after Redis is back (at 5 s they waited up to 5 s more)."""
    recorder = Recorder()
    subscriber = RedisNotificationSubscriber(private_redis.url, channel)  # the gateway's defaults
    task = asyncio.ensure_future(subscriber.run(recorder.on_notification, recorder.on_resync))
    await until(lambda: recorder.resyncs == 1)
    private_redis.stop()
    await asyncio.sleep(6)  # the backoff has grown to its cap
    private_redis.start()
    back = asyncio.get_running_loop().time()
    await until(lambda: recorder.resyncs == 2, timeout=10)
    assert asyncio.get_running_loop().time() - back < 1.6
    await stop(task)


@pytest.mark.gen_test(timeout=20)
async def test_a_silent_server_is_noticed_by_the_ping(private_redis, channel):
    recorder = Recorder()
    task = asyncio.ensure_future(fast(private_redis.url, channel).run(recorder.on_notification, recorder.on_resync))
    await until(lambda: recorder.resyncs == 1)
    # PAUSE holds every reply (PINGs included) without closing a connection: like a
    # server that vanished without a FIN. The subscriber must give up and reconnect.
    private_redis.command("CLIENT", "PAUSE", "1500", "ALL")
    await until(lambda: recorder.resyncs == 2, timeout=10)
    await stop(task)


def test_an_idle_subscription_that_answers_pings_is_kept_on_uvloop(redis_url, channel):
    """The gateway runs on uvloop, whose clock moves in whole milliseconds once per turn
    of the loop: a pong read in the same millisecond as its ping must count as an answer
    (it once did not, and an idle gateway resubscribed every two ping intervals)."""
    import uvloop

    async def idle_for_a_while() -> int:
        subscriber = fast(redis_url, channel)
        recorder = Recorder()
        task = asyncio.ensure_future(subscriber.run(recorder.on_notification, recorder.on_resync))
        await until(lambda: recorder.resyncs == 1)
        await asyncio.sleep(2.0)  # ten ping intervals of silence, each answered
        await stop(task)
        return subscriber.resubscriptions

    assert uvloop.run(idle_for_a_while()) == 0


@pytest.mark.gen_test(timeout=10)
async def test_cancelling_stops_cleanly_even_while_redis_is_down(down_url, channel, private_redis):
    recorder = Recorder()
    task = asyncio.ensure_future(fast(down_url, channel).run(recorder.on_notification, recorder.on_resync))
    await asyncio.sleep(0.3)  # retrying with backoff, not spinning
    await stop(task)
    assert recorder.resyncs == 0

    task = asyncio.ensure_future(fast(private_redis.url, channel).run(recorder.on_notification, recorder.on_resync))
    await until(lambda: recorder.resyncs == 1)
    assert b"courier-subscriber" in private_redis.command("CLIENT", "LIST")
    await stop(task)
    await asyncio.sleep(0.05)
    assert b"courier-subscriber" not in private_redis.command("CLIENT", "LIST")  # the pub/sub connection is closed


@pytest.mark.gen_test(timeout=10)
async def test_a_followed_group_channel_is_heard_and_parsed_until_it_is_unfollowed(redis_client, channel):
    """The large groups' kinds (docs/design/large-groups.md, section 6.1) as the scripts
    publish them: the switch on the main channel, a message and a join (with its record
    for the others) on the followed group's channel; nothing from it once unfollowed."""
    from adapters.redis.group_streams import RedisGroupStreams
    from application.ports import (
        JOIN,
        GroupNotification,
        GroupSwitch,
        MemberChange,
        MembershipNotification,
        SwitchNotification,
    )
    from domain.events import MEMBER_ADDED, GroupChange
    from domain.model import GROUP

    def post(group_id: str, sender: str) -> Message:
        return Message(type=GROUP, id=str(uuid.uuid4()), from_user_id=sender, content="hi",
                       created_at=1_700_000_000, group_id=group_id)

    group_id, other_group, owner, newcomer = (str(uuid.uuid4()) for _ in range(4))
    await redis_client.set("seq:complete", "1")
    streams = RedisGroupStreams(redis_client, channel=channel)
    subscriber = fast(redis_client, channel)
    recorder = Recorder()
    task = asyncio.ensure_future(subscriber.run(recorder.on_notification, recorder.on_resync))
    await until(lambda: recorder.resyncs == 1)
    await subscriber.follow([group_id])
    floor = (await streams.apply(GroupSwitch(group_id, str(uuid.uuid4()), 3, 7, owner, False, (owner,)))).position
    posted = await streams.deliver(post(group_id, owner))
    record = GroupChange(MEMBER_ADDED, str(uuid.uuid4()), group_id, owner, 1, user_id=newcomer)
    join = (await streams.apply(MemberChange(JOIN, group_id, str(uuid.uuid4()), 4, (newcomer,), record))).position
    await until(lambda: len(recorder.notifications) == 3)
    switched, entry, joined = recorder.notifications
    assert switched == SwitchNotification(group_id, 7, floor, (owner,))
    assert isinstance(entry, GroupNotification)
    assert (entry.event.id, entry.event.seq, entry.position) == (posted.message.id, 1, posted.position)
    assert isinstance(joined, MembershipNotification)
    assert (joined.kind, joined.user_ids, joined.position) == (JOIN, (newcomer,), join)
    assert joined.record == GroupNotification(record, group_id, join)  # a join is its record's id

    await subscriber.unfollow([group_id])
    assert subscriber.groups.channels == set()
    await streams.deliver(post(group_id, owner))  # not heard
    await streams.apply(GroupSwitch(other_group, str(uuid.uuid4()), 3, 8, owner, False, (owner,)))
    await subscriber.follow([other_group])
    later = await streams.deliver(post(other_group, owner))
    # The group channels share one connection: once the other group's message is here,
    # the unfollowed group's (published before it) would have been too.
    await until(lambda: len(recorder.notifications) == 5)
    assert isinstance(recorder.notifications[3], SwitchNotification)
    assert recorder.notifications[4].event.id == later.message.id
    await stop(task)
    assert recorder.resyncs == 1  # the group channels followed nothing at their subscription: no resync


@pytest.mark.gen_test(timeout=10)
async def test_published_messages_skip_redis_pys_debug_line(redis_client, channel, monkeypatch):
    """redis-py's own push handler builds a debug line of every published message (str()
    of the whole reply) even when nothing logs it; the readers hand replies back as they
    are instead (pubsub.read_replies): the notifications arrive, redis-py's handler sees
    none of them - on the notifications' channel nor on a followed group's."""
    from redis._parsers.hiredis import _AsyncHiredisParser
    from redis._parsers.resp3 import _AsyncRESP3Parser

    from adapters.redis.group_streams import RedisGroupStreams
    from application.ports import GroupSwitch
    from domain.model import GROUP

    seen_by_redis_py = []

    async def recording(self, response):
        if response[0] == b"message":
            seen_by_redis_py.append(response)
        return response

    for parser in (_AsyncHiredisParser, _AsyncRESP3Parser):
        monkeypatch.setattr(parser, "handle_pubsub_push_response", recording)
    group_id, owner = str(uuid.uuid4()), str(uuid.uuid4())
    await redis_client.set("seq:complete", "1")
    streams = RedisGroupStreams(redis_client, channel=channel)
    inbox = RedisInbox(redis_client, channel=channel)
    subscriber = fast(redis_client, channel)
    recorder = Recorder()
    task = asyncio.ensure_future(subscriber.run(recorder.on_notification, recorder.on_resync))
    await until(lambda: recorder.resyncs == 1)
    await subscriber.follow([group_id])
    await streams.apply(GroupSwitch(group_id, str(uuid.uuid4()), 3, 7, owner, False, (owner,)))
    await streams.deliver(Message(type=GROUP, id=str(uuid.uuid4()), from_user_id=owner, content="hi",
                                  created_at=1_700_000_000, group_id=group_id))
    await inbox.deliver(message("one"), ["b"])
    await until(lambda: len(recorder.notifications) == 3)
    await stop(task)
    assert seen_by_redis_py == []
