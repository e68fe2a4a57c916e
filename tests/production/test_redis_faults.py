"""Redis faults while messages flow, on a redis-server of the test's own
(appendonly yes, appendfsync always): the gateway's subscriber connection dropped
(CLIENT KILL TYPE pubsub), the server restarted (SIGTERM, and kill -9), and the
server down long enough for requests to fail; the first two also with a large group in
the flow (COURIER_LARGE_GROUP=3). Every check counts by message id:
each socket open across the fault receives every accepted message exactly once,
and the worker (`courier worker`, a process) stores each exactly once."""
from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.support import assert_error
from tests.production.support import (
    MESSAGE_TYPES,
    Collector,
    GroupChanges,
    Sender,
    assert_history_agrees,
    assert_stored_exactly_once,
    change_of,
    check_event_view,
    check_original_view,
    eventually,
    production_settings,
    until_stored,
)
from tests.services.waiting import until

pytestmark = [pytest.mark.redis, pytest.mark.mysql]


async def start(own_redis, mysql_url, secret, commands, gateways, api, large: bool = False):
    """A gateway and a worker; a, b, c in a group. `large`: COURIER_LARGE_GROUP=3 for both,
    and a fourth member (d, never connected), so the group is large: its messages go by
    its own stream (lg:{G}:log), not to b's and c's inboxes."""
    settings = production_settings(own_redis.url, mysql_url, secret, large_group=3 if large else 0)
    gateway = await gateways(settings).start()
    worker = commands("worker", settings, **({"COURIER_LARGE_GROUP": 3} if large else {})).start()
    await worker.ready()
    client = api(gateway)
    a, b, c = await client.register(), await client.register(), await client.register()
    group = await client.create_group(a, "flow", [b, c, await client.register()] if large else [b, c])
    # b has two sockets (two devices), c one; a only sends.
    sockets = {"b1": Collector(await client.connect(b), "b1"), "b2": Collector(await client.connect(b), "b2"),
               "c": Collector(await client.connect(c), "c")}
    return gateway, worker, client, (a, b, c), group, sockets


async def flow(sender: Sender, b, group_id: str, count: int, pause: float = 0.003) -> None:
    """Alternate private messages to b and group messages (to b and c)."""
    for i in range(count):
        if i % 2:
            await sender.send(f"p{i}", to=b)
        else:
            await sender.send(f"g{i}", group_id=group_id)
        await asyncio.sleep(pause)


def check_large_group(sockets: dict[str, Collector], large: bool) -> None:
    """A large group's member has v2 cursors (its group's stream beside its own log); c,
    who sends nothing, got the whole group: seqs 1..N in order."""
    if large:
        assert all(frame["cursor"].startswith("2.") for frame in sockets["c"].frames)
        seqs = [frame["seq"] for frame in sockets["c"].frames]
        assert seqs == list(range(1, len(seqs) + 1))


async def check_everything_once(sender, client, b, sockets, mysql_url, worker) -> None:
    accepted = sender.ids
    # b's pull has every accepted message, each with its type; c gets the group ones.
    pulled, _ = await client.pull_all(b, limit=200)
    missing = accepted - {m["id"] for m in pulled}
    assert not missing, f"accepted but not in b's inbox: {[(i, sender.attempts[i]) for i in missing]}"
    assert sorted(m["id"] for m in pulled) == sorted(accepted), "b's inbox is not exactly what was accepted"
    group_ids = {m["id"] for m in pulled if m["type"] == "group"}
    assert group_ids, "no group message in the flow"
    expected = {"b1": accepted, "b2": accepted, "c": group_ids}
    for name, socket in sockets.items():
        await socket.until_has(expected[name])
    await asyncio.sleep(0.3)  # room for a late duplicate to show up
    for name, socket in sockets.items():
        assert socket.closed is None, f"{name} was closed: {socket.closed}"
        socket.assert_exactly_once(expected[name])
    assert_stored_exactly_once(await until_stored(mysql_url, accepted), accepted)
    assert worker.running, worker.output()
    assert (await client.call("GET", "/readyz")).status == 200


@pytest.mark.parametrize("large", [False, True], ids=["small-group", "large-group"])
@pytest.mark.gen_test(timeout=60)
async def test_the_subscribers_connection_dropped_while_messages_flow(
        own_redis, mysql_url, secret, commands, gateways, api, large):
    gateway, worker, client, (a, b, c), group, sockets = await start(
        own_redis, mysql_url, secret, commands, gateways, api, large)
    sender = Sender(client, a)
    sending = asyncio.ensure_future(flow(sender, b, group["group_id"], 300))
    killed = 0
    try:
        for _ in range(2):
            await asyncio.sleep(0.2)
            killed += own_redis.command("CLIENT", "KILL", "TYPE", "pubsub")
            # Messages keep flowing while the subscriber reconnects.
        # Then a storm: the subscription is killed every few milliseconds for 0.4 s, so
        # most notifications of that time are published to nobody, and only the resync
        # (the gateway reading its sockets' inboxes from their cursors) can deliver them.
        # It lasts until the subscriber has come back twice (a reconnection under load
        # can take longer than 0.4 s: once, the second kill's took 0.6 s), then kills it
        # once more, so that it is lost three times in all.
        storm_end, cap = time.monotonic() + 0.4, time.monotonic() + 10
        while time.monotonic() < storm_end or (gateway.subscriber.resubscriptions < 2 and time.monotonic() < cap):
            killed += own_redis.command("CLIENT", "KILL", "TYPE", "pubsub")
            await asyncio.sleep(0.003)
        killed += own_redis.command("CLIENT", "KILL", "TYPE", "pubsub")
    finally:
        await asyncio.wait_for(sending, 45)
    assert killed >= 3, "the subscriber's connection was not there to kill"
    await until(lambda: gateway.subscriber.resubscriptions >= 3, timeout=10)
    await check_everything_once(sender, client, b, sockets, mysql_url, worker)
    check_large_group(sockets, large)


@pytest.mark.parametrize(("how", "large"), [("sigterm", False), ("kill-9", False), ("kill-9", True)],
                         ids=["sigterm", "kill-9", "kill-9-large-group"])
@pytest.mark.gen_test(timeout=90)
async def test_a_redis_restart_while_messages_flow(own_redis, mysql_url, secret, commands, gateways, api, how,
                                                   large):
    gateway, worker, client, (a, b, c), group, sockets = await start(
        own_redis, mysql_url, secret, commands, gateways, api, large)
    sender = Sender(client, a)
    sending = asyncio.ensure_future(flow(sender, b, group["group_id"], 400))
    try:
        async def under_way():
            return len(sender.accepted) >= 100

        await eventually(under_way, timeout=20)
        own_redis.stop() if how == "sigterm" else own_redis.kill()
        at_stop = len(sender.accepted)
        await asyncio.sleep(1.0)  # down for a second while the sender keeps trying
        own_redis.start()
    finally:
        await asyncio.wait_for(sending, 60)
    assert at_stop < 400, "the flow was over before the restart"
    assert gateway.subscriber.resubscriptions >= 1
    await check_everything_once(sender, client, b, sockets, mysql_url, worker)
    check_large_group(sockets, large)


@pytest.mark.gen_test(timeout=60)
async def test_redis_down_answers_503_json_and_the_gateway_recovers_by_itself(
        own_redis, mysql_url, secret, commands, gateways, api):
    gateway, worker, client, (a, b, c), group, sockets = await start(
        own_redis, mysql_url, secret, commands, gateways, api)
    ready = await client.call("GET", "/readyz")
    assert ready.status == 200 and ready.body["checks"] == {"database": "ok", "redis": "ok"}, ready
    before = await client.send(a, b, "before")
    assert before.status == 201

    own_redis.stop()
    started = time.monotonic()
    assert_error(await client.send(a, b, "while down"), 503, "service_unavailable")
    assert_error(await client.send_group(a, group["group_id"], "while down"), 503, "service_unavailable")
    assert_error(await client.pull(b), 503, "service_unavailable")
    assert_error(await client.login(a.username, a.password), 503, "service_unavailable")
    refused = await client.refused(account=b)  # a new socket cannot start: 503 before the upgrade
    assert_error(refused, 503, "service_unavailable")
    not_ready = await client.call("GET", "/readyz")
    assert_error(not_ready, 503, "service_unavailable")
    assert "redis" in not_ready.body["error"]["message"]
    assert (await client.call("GET", "/healthz")).status == 200  # the process itself is fine
    assert time.monotonic() - started < 30, "a request took too long to fail"

    own_redis.start()

    async def recovered():
        return (await client.call("GET", "/readyz")).status == 200

    await eventually(recovered, timeout=15)
    after = await client.send(a, b, "after")
    assert after.status == 201, after
    for name in ("b1", "b2"):
        await sockets[name].until_has({before.body["id"], after.body["id"]})
        sockets[name].assert_exactly_once({before.body["id"], after.body["id"]})
    messages, _ = await client.pull_all(b)
    assert [m["id"] for m in messages] == [before.body["id"], after.body["id"]]
    ids = {before.body["id"], after.body["id"]}
    assert_stored_exactly_once(await until_stored(mysql_url, ids), ids)
    assert worker.running and gateway.server is not None


async def two_way_flow(a_sends: Sender, b_sends: Sender, a, b, group_id: str, count: int,
                       pause: float = 0.003) -> None:
    """a and b write to each other and to the group, turn about."""
    for i in range(count):
        sender, peer = (a_sends, b) if i % 2 else (b_sends, a)
        if i % 3:
            await sender.send(f"p{i}", to=peer)
        else:
            await sender.send(f"g{i}", group_id=group_id)
        await asyncio.sleep(pause)


@pytest.mark.gen_test(timeout=90)
async def test_events_flow_through_a_subscriber_drop_exactly_once(
        own_redis, mysql_url, secret, commands, gateways, api):
    """Issue 14: own sends and group changes (add, rename, remove through the API) in the
    log while the subscriber's connection is dropped again and again: the gateway resyncs
    its sockets from their inboxes, and each event-view socket gets every event of its
    user's log exactly once, in cursor order, with gapless seqs that the history agrees
    with; the original-view sockets of the same users get the messages from others."""
    settings = production_settings(own_redis.url, mysql_url, secret, group_changes=0)
    gateway = await gateways(settings).start()
    worker = commands("worker", settings).start()
    await worker.ready()
    client = api(gateway)
    a, b, c = await client.register(), await client.register(), await client.register()
    sockets = {name: Collector(await client.connect(who, events=events), name)
               for name, who, events in (("a events", a, True), ("a", a, False), ("b events", b, True),
                                         ("b events 2", b, True), ("b", b, False))}
    changes = GroupChanges(client, a)
    group = await changes.create("flow", [b])
    gid = group["group_id"]
    a_sends, b_sends = Sender(client, a), Sender(client, b)
    flowing = asyncio.ensure_future(asyncio.gather(two_way_flow(a_sends, b_sends, a, b, gid, 300),
                                                   changes.churn(gid, c, 6, pause=0.05)))
    killed = 0
    try:
        for _ in range(2):
            await asyncio.sleep(0.2)
            killed += own_redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        storm_end = time.monotonic() + 0.4
        while time.monotonic() < storm_end:
            killed += own_redis.command("CLIENT", "KILL", "TYPE", "pubsub")
            await asyncio.sleep(0.003)
    finally:
        await asyncio.wait_for(flowing, 45)
    assert killed >= 3, "the subscriber's connection was not there to kill"
    assert gateway.subscriber.resubscriptions >= 3
    ids = a_sends.ids | b_sends.ids
    await until_stored(mysql_url, ids)
    for name, who, sender in (("a", a, a_sends), ("b", b, b_sends)):
        log = await check_event_view(client, who, sockets[f"{name} events"], ids, changes.made, sender.accepted)
        if name == "b":
            await check_event_view(client, who, sockets["b events 2"], ids, changes.made, sender.accepted)
        await check_original_view(sockets[name], who, log)
        await assert_history_agrees(client, who, log)
    # c, added and removed six times, has every change but the group's creation (it was
    # in none of the group's renames made while it was out: there are none), and the
    # group's messages of while it was in, with their seqs.
    c_log, _ = await client.events_all(c)
    assert [change_of(e) for e in c_log if e["type"] not in MESSAGE_TYPES] == changes.made[1:]
    group_seqs = [e["seq"] for e in c_log if e["type"] == "group"]
    assert group_seqs == sorted(set(group_seqs))
    assert worker.running
