"""PresenceWatch and PresenceTracker against the in-process adapters: what a socket is
answered and pushed, versions deciding between a snapshot and a change that cross, the
bus watching only what some socket watches, and what others see of a hidden user."""
from __future__ import annotations

import asyncio
import json
import uuid

import orjson
import pytest

from adapters.memory.presence import InProcessPresenceBus, MemoryPresenceStore
from application.presence import PresencePublisher, PresenceTracker, PresenceWatch
from domain.errors import ServiceUnavailable
from domain.presence import PresenceStatus
from tests.fakes.presence import MemoryPresencePreferences


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def now(self) -> float:
        return self.t


class Socket:
    def __init__(self, user_id: str = "watcher") -> None:
        self.user_id = user_id
        self.frames: list[dict] = []

    def send(self, payload: bytes) -> bool:
        self.frames.append(json.loads(payload))
        return True


class Presence:
    def __init__(self, grace: float = 10.0) -> None:
        self.clock = Clock()
        self.store = MemoryPresenceStore(self.clock, grace)
        self.bus = InProcessPresenceBus()
        self.preferences = MemoryPresencePreferences()
        self.tracker = PresenceTracker(self.store, PresencePublisher(self.bus, self.preferences), expire_every=0.01)
        self.watch = PresenceWatch(self.store, self.bus, self.preferences, self.clock, orjson.dumps)
        self.bus._subscribers.append(self.watch.on_change)

    async def settled(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)


BOB, CAROL, DAVE, A, B = (str(uuid.uuid4()) for _ in range(5))


def subscribe(*user_ids: str) -> dict:
    return {"type": "presence_subscribe", "user_ids": list(user_ids)}


@pytest.mark.gen_test
async def test_a_subscription_is_answered_then_told_changes_and_the_bus_watches_only_what_is_asked():
    p = Presence()
    watcher = Socket()
    await p.watch.subscribe(watcher, subscribe(BOB, CAROL))
    assert [(f["user_id"], f["status"], f["last_seen"]) for f in watcher.frames] == [
        (BOB, "offline", None), (CAROL, "offline", None)]
    assert p.bus.watched == {BOB, CAROL}
    p.tracker.socket_opened(Socket(BOB))
    p.tracker.socket_opened(Socket(DAVE))  # nobody watches dave
    await p.settled()
    assert watcher.frames[-1] == {"type": "presence", "user_id": BOB, "status": "online", "last_seen": 1000}
    assert len(watcher.frames) == 3
    await p.watch.subscribe(watcher, subscribe(DAVE))
    assert p.bus.watched == {DAVE}
    assert watcher.frames[-1]["status"] == "online"
    p.watch.socket_closed(watcher)
    await p.settled()
    assert p.bus.watched == set() and p.watch.subscription_count == 0


@pytest.mark.gen_test
async def test_offline_after_the_grace_unless_back_within_it():
    p = Presence(grace=10)
    watcher, bob = Socket(), Socket(BOB)
    await p.watch.subscribe(watcher, subscribe(BOB))
    p.tracker.socket_opened(bob)
    await p.settled()
    p.tracker.socket_closed(bob)
    await p.settled()
    p.clock.t += 5
    p.tracker.socket_opened(bob)  # a reload
    await p.settled()
    p.clock.t += 20
    assert await p.store.expire() == []
    p.tracker.socket_closed(bob)
    await p.settled()
    closed_at = int(p.clock.t)
    p.clock.t += 10
    [change] = await p.store.expire()
    await p.tracker._publish([change])
    assert [f["status"] for f in watcher.frames] == ["offline", "online", "offline"]
    assert watcher.frames[-1]["last_seen"] == closed_at


@pytest.mark.gen_test
async def test_of_a_snapshot_and_a_change_that_cross_the_later_version_wins():
    p = Presence()
    watcher = Socket()
    await p.watch.subscribe(watcher, subscribe(BOB))
    p.watch.on_change(PresenceStatus(BOB, True, None, 5))
    p.watch.on_change(PresenceStatus(BOB, False, 990, 4))  # older: not shown
    assert [f["status"] for f in watcher.frames] == ["offline", "online"]
    # A second socket subscribing now reads the store's (older) status: it is shown the later one.
    other = Socket()
    await p.watch.subscribe(other, subscribe(BOB))
    assert other.frames == [{"type": "presence", "user_id": BOB, "status": "online", "last_seen": 1000}]


@pytest.mark.gen_test
async def test_others_see_a_hidden_user_offline_and_never_seen():
    p = Presence()
    watcher = Socket()
    p.preferences.hidden.add(BOB)
    p.tracker.socket_opened(Socket(BOB))
    await p.settled()
    await p.watch.subscribe(watcher, subscribe(BOB))
    assert watcher.frames == [{"type": "presence", "user_id": BOB, "status": "offline", "last_seen": None}]
    p.preferences.hidden.clear()
    await p.tracker.preference_changed(BOB)
    assert watcher.frames[-1]["status"] == "online"


@pytest.mark.gen_test
async def test_a_bad_subscription_is_an_error_frame_and_changes_nothing():
    p = Presence()
    watcher = Socket()
    await p.watch.subscribe(watcher, subscribe(BOB))
    await p.watch.subscribe(watcher, {"type": "presence_subscribe", "user_ids": [BOB] * 201})
    assert watcher.frames[-1]["type"] == "error" and watcher.frames[-1]["code"] == "invalid_input"
    assert p.bus.watched == {BOB}


def record_store_calls(store, failures: int = 0) -> list[tuple[str, list[str]]]:
    """Wrap the store's arrived/left: each call that reaches it is recorded, in order;
    the first `failures` arrivals are refused as an outage."""
    calls: list[tuple[str, list[str]]] = []
    real_arrived, real_left = store.arrived, store.left
    refusals = [failures]

    async def arrived(user_ids):
        if refusals[0]:
            refusals[0] -= 1
            raise ServiceUnavailable("down")
        calls.append(("arrived", list(user_ids)))
        return await real_arrived(user_ids)

    async def left(user_ids):
        calls.append(("left", list(user_ids)))
        await real_left(user_ids)

    store.arrived, store.left = arrived, left
    return calls


@pytest.mark.gen_test
async def test_arrivals_and_leaves_reach_the_store_in_order_even_through_an_outage():
    p = Presence()
    calls = record_store_calls(p.store, failures=1)
    a, b = Socket(A), Socket(B)
    p.tracker.socket_opened(a)
    p.tracker.socket_opened(b)
    p.tracker.socket_closed(a)
    for _ in range(100):
        if len(calls) == 2:
            break
        await asyncio.sleep(0.05)
    assert calls == [("arrived", [A, B]), ("left", [A])]


class SlowBus(InProcessPresenceBus):
    """Counts at once, as RedisPresenceBus does, then waits (its SUBSCRIBE's or
    UNSUBSCRIBE's round trip) until `gate` opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()

    async def watch(self, user_ids):
        await super().watch(user_ids)
        await self.gate.wait()

    async def unwatch(self, user_ids):
        await super().unwatch(user_ids)
        await self.gate.wait()


@pytest.mark.gen_test
async def test_a_socket_closed_while_its_new_subscription_is_on_the_way_leaves_nothing_watched():
    p = Presence()
    p.bus = p.watch._bus = SlowBus()
    watcher = Socket()
    await p.watch.subscribe(watcher, subscribe(BOB))
    p.bus.gate.clear()
    changing = asyncio.ensure_future(p.watch.subscribe(watcher, subscribe(CAROL)))
    await p.settled()
    p.watch.socket_closed(watcher)  # the page went away while its new set was being watched
    await p.settled()
    p.bus.gate.set()
    await changing
    await p.settled()
    assert p.bus.watched == set() and p.watch.watched_count == 0


@pytest.mark.gen_test
async def test_a_second_subscriber_waits_for_the_watch_another_one_started():
    """Its answer is read only once the bus has confirmed watching the user, whoever asked
    first: a change published in between could otherwise be missed by both answers."""
    p = Presence()
    confirmed = asyncio.Event()
    real_watch = p.bus.watch

    async def slow_watch(user_ids):
        await confirmed.wait()
        await real_watch(user_ids)

    p.bus.watch = slow_watch
    first, second = Socket(), Socket()
    one = asyncio.ensure_future(p.watch.subscribe(first, subscribe(BOB)))
    await p.settled()
    two = asyncio.ensure_future(p.watch.subscribe(second, subscribe(BOB)))
    await p.settled()
    assert first.frames == second.frames == []  # neither answered before the watch holds
    confirmed.set()
    await asyncio.gather(one, two)
    assert [f["user_id"] for f in second.frames] == [BOB]


class RecordingBus(InProcessPresenceBus):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[PresenceStatus]] = []

    async def publish(self, statuses):
        self.calls.append(list(statuses))
        await super().publish(statuses)


@pytest.mark.gen_test
async def test_thousands_of_changes_are_published_in_chunks_in_order_as_others_see_them():
    bus, preferences = RecordingBus(), MemoryPresencePreferences()
    users = [str(uuid.uuid4()) for _ in range(1050)]
    await preferences.set_shows_presence(users[7], False)
    await bus.watch(users)
    await PresencePublisher(bus, preferences).publish([PresenceStatus(u, False, 1_700_000_000, 2) for u in users])
    assert [len(call) for call in bus.calls] == [100] * 10 + [50]  # the loop runs between two chunks
    published = [status for call in bus.calls for status in call]
    assert [status.user_id for status in published] == users
    assert published[7].last_seen is None and published[8].last_seen == 1_700_000_000  # hidden: never seen


class CountingPreferences(MemoryPresencePreferences):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[str]] = []

    async def hidden_among(self, user_ids):
        self.asked.append(list(user_ids))
        return await super().hidden_among(user_ids)


@pytest.mark.gen_test
async def test_only_the_changes_of_watched_users_are_published_and_their_preferences_read():
    """A mass departure of users nobody watches (a gateway's sockets closing) costs no
    preferences query and no message; the watched ones among them go out as before."""
    bus, preferences = RecordingBus(), CountingPreferences()
    users = [str(uuid.uuid4()) for _ in range(250)]
    watched = [users[3], users[120], users[249]]
    await bus.watch(watched)
    await PresencePublisher(bus, preferences).publish([PresenceStatus(u, False, 1_700_000_000, 2) for u in users])
    assert [[status.user_id for status in call] for call in bus.calls] == [[users[3]], [users[120]], [users[249]]]
    assert preferences.asked == [[users[3]], [users[120]], [users[249]]]
    bus.calls.clear()
    preferences.asked.clear()
    await bus.unwatch(watched)
    await PresencePublisher(bus, preferences).publish([PresenceStatus(u, True, None, 3) for u in users])
    assert bus.calls == [] and preferences.asked == []


@pytest.mark.gen_test
async def test_thousands_of_leaves_reach_the_store_in_calls_of_at_most_a_hundred_in_order():
    p = Presence()
    calls = record_store_calls(p.store)
    sockets = [Socket(str(uuid.uuid4())) for _ in range(250)]
    for socket in sockets:
        p.tracker.socket_opened(socket)
    for socket in sockets:
        p.tracker.socket_closed(socket)
    for _ in range(100):
        if sum(len(users) for kind, users in calls if kind == "left") == 250:
            break
        await asyncio.sleep(0.01)
    assert max(len(users) for _, users in calls) <= 100
    everyone = [socket.user_id for socket in sockets]
    assert [user for kind, users in calls if kind == "arrived" for user in users] == everyone
    assert [user for kind, users in calls if kind == "left" for user in users] == everyone
    assert [kind for kind, _ in calls][:3] == ["arrived"] * 3  # 100, 100, 50: then the leaves


@pytest.mark.gen_test
async def test_a_change_published_while_a_subscription_is_answered_is_shown_once():
    """The change lands between the watch and the answer's read of the store: the answer
    (read after it) shows it, and the socket is not told it a second time."""
    p = Presence()
    p.bus = p.watch._bus = SlowBus()
    p.bus._subscribers.append(p.watch.on_change)
    p.tracker._publisher = PresencePublisher(p.bus, p.preferences)
    p.bus.gate.clear()
    watcher = Socket()
    answering = asyncio.ensure_future(p.watch.subscribe(watcher, subscribe(BOB)))
    await p.settled()
    p.tracker.socket_opened(Socket(BOB))  # BOB comes online: stored, then published
    await p.settled()
    p.bus.gate.set()
    await answering
    await p.settled()
    assert [f["status"] for f in watcher.frames] == ["online"]
