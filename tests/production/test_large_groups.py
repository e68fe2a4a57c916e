"""Large groups (docs/design/large-groups.md) across real processes, COURIER_LARGE_GROUP=3
in every process's environment: a group of more than 3 members keeps one stream of its
own in Redis (lg:{G}:log), which every gateway reads and `courier worker` persists.

- Two `courier serve` and a `courier worker`: members of one large group on both gateways
  (one of them with a socket on each) get every message from the others once, in seq
  order, while two senders post through both gateways; MySQL stores each once, seqs 1..N.
- The relay: a join whose gateway died between the SQL commit and the Redis apply (the
  announcement stored with its stream change, nothing applied) is applied by the worker's
  RelayAnnouncements; the new member then gets the group's posts.
- A rename: one entry of the group's stream, none in any member's own log."""
from __future__ import annotations

import asyncio

import orjson
import pytest
import redis.asyncio as aioredis

from tests.production.support import (
    Collector,
    Sender,
    announcements_left,
    assert_stored_exactly_once,
    production_settings,
    start_stack,
    until_announced,
    until_stored,
)
from tests.services.waiting import until

pytestmark = [pytest.mark.redis, pytest.mark.mysql]

LARGE = {"COURIER_LARGE_GROUP": 3}


def group_frames(collector: Collector, group_id: str) -> list[dict]:
    return [f for f in collector.frames if f.get("type") == "group" and f.get("group_id") == group_id]


@pytest.mark.gen_test(timeout=90)
async def test_members_of_a_large_group_on_two_gateways_get_every_message_once_in_seq_order(
        commands, api, redis_url, mysql_url, secret):
    one, two, worker = await start_stack(commands, redis_url, mysql_url, secret, **LARGE)
    api1, api2 = api(one), api(two)
    a, b, c, d = await api1.register(), await api2.register(), await api1.register(), await api2.register()
    group = await api1.create_group(a, "big", [b, c, d])  # 4 members: large from creation
    gid = group["group_id"]
    sockets = {
        "a@1": (a, Collector(await api1.connect(a), "a@1")),
        "b@2": (b, Collector(await api2.connect(b), "b@2")),
        "c@1": (c, Collector(await api1.connect(c), "c@1")),
        "d@1": (d, Collector(await api1.connect(d), "d@1")),
        "d@2": (d, Collector(await api2.connect(d), "d@2")),
    }
    # Two senders through both gateways at once, each with a client_msg_id (retried on 503).
    senders = {a.user_id: Sender(api1, a), b.user_id: Sender(api2, b)}

    async def burst(sender: Sender, n: int) -> None:
        for i in range(n):
            await sender.send(f"{sender.account.user_id[:4]} {i}", group_id=gid)

    await asyncio.gather(burst(senders[a.user_id], 40), burst(senders[b.user_id], 40))
    every = senders[a.user_id].ids | senders[b.user_id].ids
    assert len(every) == 80

    def from_others(account) -> set[str]:
        return every - (senders[account.user_id].ids if account.user_id in senders else set())

    for account, socket in sockets.values():
        await socket.until_has(from_others(account))
    await asyncio.sleep(0.3)  # room for a late duplicate to show up
    for name, (account, socket) in sockets.items():
        assert socket.closed is None, f"{name} was closed: {socket.closed}"
        socket.assert_exactly_once(from_others(account))  # v2 cursors: checked in seq order
        assert all(f["cursor"].startswith("2.") for f in socket.frames), name
    # d sent nothing: both its sockets have the whole group, seqs 1..80, the same frames.
    d1, d2 = sockets["d@1"][1], sockets["d@2"][1]
    assert [f["seq"] for f in group_frames(d1, gid)] == list(range(1, 81))
    assert [(f["id"], f["seq"]) for f in d1.frames] == [(f["id"], f["seq"]) for f in d2.frames]
    # A pull through either gateway: the same messages in the same order; stored once each.
    pulled1, _ = await api1.pull_all(c)
    pulled2, _ = await api2.pull_all(c)
    assert [m["id"] for m in pulled1] == [m["id"] for m in pulled2] == [f["id"] for f in d1.frames]
    assert_stored_exactly_once(await until_stored(mysql_url, every), every)
    history = await api2.history_all(b, f"/groups/{gid}", limit=200)
    assert [(m["id"], m["seq"]) for m in reversed(history)] == [(f["id"], f["seq"]) for f in d1.frames]
    for _, socket in sockets.values():
        await socket.close()
    # A process that ended tells why (its exit code and the end of its log): a gateway was
    # found gone here once, after every check above had passed.
    for process in (worker, one, two):
        assert process.running, (process.process.returncode if process.process else None, process.output()[-3000:])


@pytest.mark.gen_test(timeout=90)
async def test_the_worker_relays_a_join_the_gateway_committed_and_never_applied(
        redis_url, mysql_url, secret, commands, gateways, api):
    settings = production_settings(redis_url, mysql_url, secret, large_group=3)
    gateway = await gateways(settings).start()
    client = api(gateway)
    owner, bob, carol, dave, eve = [await client.register() for _ in range(5)]
    gid = (await client.create_group(owner, "big", [bob, carol, dave]))["group_id"]  # large at once
    eve_events = Collector(await client.connect(eve, events=True), "eve events")
    carol_events = Collector(await client.connect(carol, events=True), "carol events")
    before = (await client.send_group(bob, gid, "before the join")).body["id"]

    # The gateway "dies" between the join's SQL commit and its Redis apply: the commit
    # stores the announcement with its stream change; the announcer never runs.
    announcer = gateway.server.container.announcer()

    async def died(announcement) -> None:
        return None

    announcer.announce = died
    try:
        r = await client.call("POST", f"/api/v1/groups/{gid}/members", {"user_id": eve.user_id}, owner.token)
        assert r.status == 200, r
    finally:
        del announcer.announce  # the class's method again
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, announcements_left, mysql_url) == 1
    # Not applied: the stream does not count eve in, so a post now does not reach her.
    unseen = (await client.send_group(bob, gid, "before the relay")).body["id"]
    await asyncio.sleep(0.3)
    assert eve_events.frames == []

    worker = commands("worker", settings, name="relay-worker", **LARGE).start()
    await worker.ready()
    await until_announced(mysql_url)
    await until(lambda: "relayed 1 event" in worker.output())
    # eve's own log has her member_added; from the join on she gets the group's posts.
    after = {(await client.send_group(sender, gid, f"after {i}")).body["id"]
             for i, sender in enumerate((owner, bob, carol, dave))}
    await eve_events.until_has(after)
    await asyncio.sleep(0.3)  # room for a late duplicate to show up
    kinds = [(f["type"], f.get("user_id")) for f in eve_events.frames]
    assert kinds[0] == ("member_added", eve.user_id), kinds
    assert [f["id"] for f in eve_events.frames[1:]] == [f["id"] for f in group_frames(eve_events, gid)]
    assert {f["id"] for f in group_frames(eve_events, gid)} == after  # nothing from before her join
    assert eve_events.closed is None
    eve_events.assert_exactly_once({f["id"] for f in eve_events.frames})
    # The others read the join in the stream, at its place: after `unseen`, before `after`.
    await carol_events.until_has({before, unseen} | after)
    order = [(f["type"], f["id"]) for f in carol_events.frames]
    joined = next(i for i, (kind, _) in enumerate(order) if kind == "member_added")
    assert [i for _, i in order[:joined] if i in {before, unseen}] == [before, unseen]
    assert {i for _, i in order[joined + 1:]} >= after
    # A pull of eve's: the join, then the posts; the worker stores every post once.
    pulled, _ = await client.events_all(eve)
    assert [e["id"] for e in pulled] == [f["id"] for f in eve_events.frames]
    ids = {before, unseen} | after
    assert_stored_exactly_once(await until_stored(mysql_url, ids), ids)
    assert worker.running


@pytest.mark.gen_test(timeout=60)
async def test_a_large_groups_rename_is_one_entry_of_its_stream_and_none_of_the_members_logs(
        redis_url, mysql_url, secret, gateways, api):
    gateway = await gateways(production_settings(redis_url, mysql_url, secret, large_group=3)).start()
    client = api(gateway)
    owner, bob, carol, dave = [await client.register() for _ in range(4)]
    gid = (await client.create_group(owner, "big", [bob, carol, dave]))["group_id"]  # large at once
    redis = aioredis.from_url(redis_url)
    try:
        logs = [f"stream:private:{who.user_id}" for who in (owner, bob, carol, dave)]
        before = [await redis.xlen(key) for key in logs]
        group_log = f"lg:{{{gid}}}:log"
        entries = await redis.xlen(group_log)
        r = await client.call("PATCH", f"/api/v1/groups/{gid}", {"name": "bigger"}, owner.token)
        assert r.status == 200, r
        assert [await redis.xlen(key) for key in logs] == before  # no member's own log grew
        assert await redis.xlen(group_log) == entries + 1
        [(_, fields)] = await redis.xrevrange(group_log, count=1)
        record = orjson.loads(fields[b"m"])
        assert (record["type"], record["name"], record["group_id"]) == ("group_updated", "bigger", gid)
    finally:
        await redis.aclose()
