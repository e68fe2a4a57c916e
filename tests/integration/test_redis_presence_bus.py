"""RedisPresenceBus and RedisTypingBus against a real Redis (one, and the cluster): a change reaches the gateways
watching its user and no other, from the moment watch() returns; watch/unwatch from many
tasks at once; a killed pub/sub connection is subscribed again, then on_resync; typing
reaches every gateway. The connection tests run a redis-server of their own."""
from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from adapters.redis.presence_bus import RedisPresenceBus
from adapters.redis.typing_bus import RedisTypingBus
from domain.model import GROUP, PRIVATE
from domain.presence import PresenceStatus, Typing
from tests.services.redis import make_client
from tests.services.waiting import eventually, stop, until

pytestmark = pytest.mark.redis


@pytest.fixture(params=["single", "cluster"])
def redis_client(request, io_loop):
    """The buses' Redis: the claimed database of one Redis, or the local cluster (emptied)."""
    if request.param == "cluster":
        yield request.getfixturevalue("redis_cluster_target").client
        return
    client = make_client(request.getfixturevalue("redis_url"))
    yield client
    io_loop.run_sync(client.aclose)


@pytest.fixture
def prefix() -> str:
    # Pub/sub channels are shared by every database of a server, and other runs may publish.
    return f"courier-test:presence:{uuid.uuid4().hex}:"


def ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


def fast_bus(client, prefix: str) -> RedisPresenceBus:
    return RedisPresenceBus(client, prefix, ping_interval=0.2, min_backoff=0.02, max_backoff=0.2)


class Recorder:
    def __init__(self):
        self.changes: list[PresenceStatus] = []
        self.resyncs = 0

    def on_change(self, status: PresenceStatus) -> None:
        self.changes.append(status)

    async def on_resync(self) -> None:
        self.resyncs += 1

    def users(self) -> list[str]:
        return [status.user_id for status in self.changes]


def status(user_id: str, online: bool = True, last_seen: int | None = None, version: int = 1) -> PresenceStatus:
    return PresenceStatus(user_id, online, last_seen, version)


_RUNNING: list[asyncio.Task] = []  # buses started by a test, stopped after it even when it fails


@pytest.fixture(autouse=True)
def stop_what_a_test_left_running(io_loop):
    yield
    left, _RUNNING[:] = list(_RUNNING), []

    async def stop_all() -> None:
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    io_loop.run_sync(stop_all)  # a bus left running keeps its connections open past the test


async def started(bus, recorder: Recorder) -> asyncio.Task:
    task = asyncio.ensure_future(bus.run(recorder.on_change, recorder.on_resync))
    _RUNNING.append(task)
    await until(lambda: recorder.resyncs == 1)  # connected (the first on_resync)
    return task


@pytest.mark.gen_test(timeout=10)
async def test_a_change_published_once_watch_returned_arrives(redis_client, prefix):
    bus, recorder = fast_bus(redis_client, prefix), Recorder()
    task = await started(bus, recorder)
    a, b = ids(2)
    await bus.watch([a, b])
    sent = [status(a, True, None, 1), status(b, False, 1_700_000_000, 7)]
    for change in sent:
        await bus.publish([change])  # at once: watch() returned after Redis confirmed
    await until(lambda: len(recorder.changes) == 2)
    assert recorder.changes == sent
    await stop(task)


@pytest.mark.gen_test(timeout=10)
async def test_only_the_changes_of_watched_users_arrive(redis_client, prefix):
    bus, recorder = fast_bus(redis_client, prefix), Recorder()
    task = await started(bus, recorder)
    watched, stranger = ids(2)
    await bus.watch([watched])
    await bus.publish([status(stranger)])
    await bus.publish([status(watched)])
    await until(lambda: recorder.changes)
    await asyncio.sleep(0.1)
    assert recorder.users() == [watched]
    assert await redis_client.pubsub_numsub((prefix + stranger).encode()) == [((prefix + stranger).encode(), 0)]
    await stop(task)


@pytest.mark.gen_test(timeout=10)
async def test_watched_among_names_the_users_some_gateway_watches(redis_client, prefix):
    """Across gateways (another bus on its own connection watches too), counted by Redis."""
    here, there = fast_bus(redis_client, prefix), fast_bus(redis_client, prefix)  # two subscriptions
    mine, theirs, nobodys = ids(3)
    tasks = [await started(here, Recorder()), await started(there, Recorder())]
    assert await here.watched_among([mine, theirs, nobodys]) == set()
    await here.watch([mine])
    await there.watch([theirs])
    assert await here.watched_among([mine, theirs, nobodys]) == {mine, theirs}
    assert await there.watched_among([]) == set()
    await there.unwatch([theirs])

    async def only_mine():
        return await here.watched_among([mine, theirs]) == {mine}

    await eventually(only_mine)  # an unsubscribe is told to Redis without waiting for its answer
    for task in tasks:
        await stop(task)


@pytest.mark.gen_test(timeout=10)
async def test_on_a_cluster_a_gateway_subscribed_on_another_node_is_heard_and_counted(redis_cluster_target, prefix):
    """Each gateway subscribes on a node of its own choosing: a change published through any
    node reaches it, and watched_among counts its watches (every node is asked)."""
    client = redis_cluster_target.client
    default = client.get_default_node()
    elsewhere = next(node for node in client.get_nodes() if node.name != default.name)
    plain = make_client(f"redis://{elsewhere.host}:{elsewhere.port}/0")
    try:
        there, publisher, recorder = fast_bus(plain, prefix), fast_bus(client, prefix), Recorder()
        task = await started(there, recorder)
        watched, nobodys = ids(2)
        await there.watch([watched])
        assert await publisher.watched_among([watched, nobodys]) == {watched}
        await publisher.publish([status(watched)])
        await until(lambda: recorder.users() == [watched])
        await stop(task)
    finally:
        await plain.aclose()


@pytest.mark.gen_test(timeout=10)
async def test_changes_published_together_arrive_in_order_to_their_watchers_only(redis_client, prefix):
    bus, recorder = fast_bus(redis_client, prefix), Recorder()
    task = await started(bus, recorder)
    users = ids(300)
    watched = users[::3]
    await bus.watch(watched)
    await bus.publish([status(user, version=n) for n, user in enumerate(users)])  # one expiry look's worth
    await until(lambda: len(recorder.changes) == len(watched))
    await asyncio.sleep(0.1)
    assert recorder.users() == watched
    assert [change.version for change in recorder.changes] == list(range(0, 300, 3))
    await stop(task)


@pytest.mark.gen_test(timeout=10)
async def test_watches_are_counted_and_unwatching_the_last_stops_the_changes(redis_client, prefix):
    bus, recorder = fast_bus(redis_client, prefix), Recorder()
    task = await started(bus, recorder)
    a, marker = ids(2)
    await bus.watch([a, marker])
    await bus.watch([a])  # a second socket watches it
    await bus.unwatch([a])
    await bus.publish([status(a, version=1)])
    await until(lambda: recorder.users() == [a])
    await bus.unwatch([a])  # the last one
    await bus.publish([status(a, version=2)])
    await bus.publish([status(marker)])  # after a's on the same connection: a's would be here by then
    await until(lambda: marker in recorder.users())
    assert recorder.users() == [a, marker]
    assert bus.watched == {marker}
    await stop(task)


@pytest.mark.gen_test(timeout=10)
async def test_a_gateway_watching_nothing_gets_nothing(redis_client, prefix):
    watching, idle = fast_bus(redis_client, prefix), fast_bus(redis_client, prefix)
    heard, unheard = Recorder(), Recorder()
    tasks = [await started(watching, heard), await started(idle, unheard)]
    users = ids(5)
    await watching.watch(users)
    for user in users:
        await idle.publish([status(user)])  # any gateway publishes
    await until(lambda: len(heard.changes) == 5)
    await asyncio.sleep(0.1)
    assert unheard.changes == []
    for task in tasks:
        await stop(task)


@pytest.mark.gen_test(timeout=20)
async def test_many_tasks_watching_and_unwatching_at_once(redis_client, prefix):
    bus, recorder = fast_bus(redis_client, prefix), Recorder()
    task = await started(bus, recorder)
    users = ids(30)

    async def socket(seed: int) -> list[str]:
        mine = random.Random(seed).sample(users, 10)
        await bus.watch(mine)
        for user in mine:  # each socket checks its own subscriptions are live
            await bus.publish([status(user, version=seed)])
        await until(lambda: all(any(s.user_id == u and s.version == seed for s in recorder.changes) for u in mine))
        dropped = mine[:5]
        await bus.unwatch(dropped)
        return mine[5:]

    kept = await asyncio.gather(*(socket(seed) for seed in range(1, 41)))
    still = {user for mine in kept for user in mine}
    assert bus.watched == still
    recorder.changes.clear()
    for user in users:
        await bus.publish([status(user, version=1000)])
    marker = ids(1)[0]
    await bus.watch([marker])
    await bus.publish([status(marker)])
    await until(lambda: marker in recorder.users())
    assert set(recorder.users()) == still | {marker}
    await stop(task)


@pytest.mark.gen_test(timeout=20)
async def test_a_killed_subscription_is_made_again_then_resynced(private_redis, prefix):
    client = make_client(private_redis.url)
    try:
        bus, recorder = fast_bus(client, prefix), Recorder()
        task = await started(bus, recorder)
        users = ids(3)
        await bus.watch(users)
        for round_ in range(1, 3):
            assert private_redis.command("CLIENT", "KILL", "TYPE", "pubsub") == 1
            await until(lambda round_=round_: recorder.resyncs == round_ + 1)
            assert bus.resubscriptions == round_
            recorder.changes.clear()
            for user in users:  # watched before the loss: subscribed again before on_resync
                await bus.publish([status(user, version=round_)])
            await until(lambda: len(recorder.changes) == 3)
            assert recorder.users() == users
        await stop(task)
        await asyncio.sleep(0.05)
        assert b"courier-presence" not in private_redis.command("CLIENT", "LIST")  # closed
    finally:
        await client.aclose()


@pytest.mark.gen_test(timeout=20)
async def test_watching_while_redis_is_down_returns_and_is_subscribed_when_it_is_back(private_redis, prefix):
    client = make_client(private_redis.url)
    try:
        bus, recorder = fast_bus(client, prefix), Recorder()
        task = await started(bus, recorder)
        private_redis.stop()
        (user,) = ids(1)
        await asyncio.wait_for(bus.watch([user]), 1.0)  # no hang: the resync to come covers it
        private_redis.start()
        await until(lambda: recorder.resyncs == 2)
        await bus.publish([status(user)])
        await until(lambda: recorder.users() == [user])
        await stop(task)
    finally:
        await client.aclose()


@pytest.mark.gen_test(timeout=10)
async def test_malformed_changes_are_skipped(redis_client, prefix):
    bus, recorder = fast_bus(redis_client, prefix), Recorder()
    task = await started(bus, recorder)
    (user,) = ids(1)
    await bus.watch([user])
    for garbage in (b"\xff", b"{}", b"[1]", b'{"user_id": "x", "online": true, "last_seen": "y", "version": 1}'):
        await redis_client.publish(prefix + user, garbage)
    await bus.publish([status(user)])
    await until(lambda: recorder.changes)
    assert recorder.users() == [user]
    await stop(task)


# --- typing ---------------------------------------------------------------------


def fast_typing(client, channel: str) -> RedisTypingBus:
    return RedisTypingBus(client, channel, ping_interval=0.2, min_backoff=0.02, max_backoff=0.2)


async def _subscribed(client, channel: bytes, expected) -> bool:
    ((_, count),) = await client.pubsub_numsub(channel)
    return count >= 1 if expected is None else count == expected


@pytest.mark.gen_test(timeout=10)
async def test_typing_reaches_every_gateway(redis_client, channel):
    one, two = fast_typing(redis_client, channel), fast_typing(redis_client, channel)
    got_one, got_two = [], []
    tasks = [asyncio.ensure_future(one.run(got_one.append)), asyncio.ensure_future(two.run(got_two.append))]
    await eventually(lambda: _subscribed(redis_client, channel.encode(), expected=2))
    a, b, c, group = ids(4)
    sent = [Typing(a, PRIVATE, b, "start", (b,)), Typing(a, GROUP, group, "stop", (b, c))]
    for typing in sent:
        await one.publish(typing)
    await until(lambda: len(got_one) == 2 and len(got_two) == 2)
    assert got_one == sent and got_two == sent
    for task in tasks:
        await stop(task)


@pytest.mark.gen_test(timeout=20)
async def test_typing_comes_again_after_a_killed_subscription(private_redis, channel):
    client = make_client(private_redis.url)
    try:
        bus, received = fast_typing(client, channel), []
        task = asyncio.ensure_future(bus.run(received.append))
        await eventually(lambda: _subscribed(client, channel.encode(), expected=1))
        assert private_redis.command("CLIENT", "KILL", "TYPE", "pubsub") == 1
        await until(lambda: bus.resubscriptions == 1)
        a, b = ids(2)
        await bus.publish(Typing(a, PRIVATE, b, "start", (b,)))
        await until(lambda: received)
        assert received == [Typing(a, PRIVATE, b, "start", (b,))]
        await stop(task)
    finally:
        await client.aclose()
