"""Issue 18's promise: a channel of 100,000 members works (docs/design/large-groups.md,
sections 9 and 11). Production mode, real processes: two `courier serve` gateways and a
`courier worker` on the claimed Redis database and the run's MariaDB database.

- 100,000 users are written straight into the users table (one real argon2 hash shared
  by all: seeding is not what is tested), the channel is created through the API, and
  its members are added with the container's `ManageGroups.add_members`, 1,000 per
  transaction, as `courier seed-channel` does. Each batch's stream change goes through
  the announcer to Redis (lg_change.lua), which is what gives every member its interval.
- 2,000 members keep a socket open, 1,000 on each gateway (tokens signed with the
  deployment's secret, not 2,000 logins). The owner posts; every socket gets each post
  once, in seq order, and nothing else. An offline member pulls every post (both views);
  a member's post is 403 not_allowed.

It prints what it measured (seeding time, Redis memory per post, the time from a send to
its last socket); it asserts none of it, the machine is shared."""
from __future__ import annotations

import asyncio
import time

import pytest

from adapters.redis.group_streams import MEMBERS as MEMBERS_KEY
from adapters.redis.inbox import INBOX_KEY
from adapters.redis.large_group_keys import LARGE_GROUPS_OF
from adapters.security import JwtTokenService
from entrypoints.container import Container, shutdown
from tests.e2e.client import Account
from tests.e2e.support import assert_error
from tests.production.channel_100k import (
    ENV,
    MEMBERS,
    ONLINE,
    POSTS,
    connect_all,
    free,
    log_size,
    seed_users,
    until,
    used_memory,
)
from tests.production.support import production_settings

pytestmark = [pytest.mark.redis, pytest.mark.mysql]


@pytest.mark.timeout(300)
@pytest.mark.gen_test(timeout=300)
async def test_a_channel_of_100k_members_reaches_2000_sockets_on_two_gateways_once(
        commands, api, redis_url, mysql_url, secret):
    settings = production_settings(redis_url, mysql_url, secret, large_group=200)
    one = commands("serve", settings, name="gateway-1", **ENV).start()
    two = commands("serve", settings, name="gateway-2", **ENV).start()
    worker = commands("worker", settings, **ENV).start()
    await asyncio.gather(one.ready(), two.ready(), worker.ready())
    clients = [api(one), api(two)]
    container = Container(settings=settings)
    try:
        owner = await clients[0].register()
        redis = container.redis()
        empty = await used_memory(redis)
        began = time.monotonic()
        ids = await seed_users(container, MEMBERS - 1)
        users_done = time.monotonic()
        r = await clients[0].call("POST", "/api/v1/groups", {"name": "the 100k channel", "kind": "channel"},
                                  owner.token)
        assert r.status == 201, r
        gid = r.body["group_id"]
        added = await container.manage_groups().add_members(owner.user_id, gid, ids)
        seeded = time.monotonic()
        assert added == MEMBERS - 1
        print(f"\nseeding: {users_done - began:.1f} s for {len(ids)} user rows, "
              f"{seeded - users_done:.1f} s for add_members ({seeded - began:.1f} s in all)")
        seeded_memory = await used_memory(redis)
        own_log = await redis.memory_usage(INBOX_KEY.format(ids[0]), samples=0)
        group_of = await redis.memory_usage(LARGE_GROUPS_OF.format(ids[0]), samples=0)
        members = await redis.memory_usage(MEMBERS_KEY.format(gid), samples=0)
        print(f"Redis after seeding: +{(seeded_memory - empty) / 2**20:.1f} MiB "
              f"({(seeded_memory - empty) / MEMBERS:.0f} B per member; a member's own log holding its "
              f"group_updated: {own_log} B, its lgm: set {group_of} B; the channel's members hash "
              f"{members / 2**20:.1f} MiB)")
        got = await clients[1].call("GET", f"/api/v1/groups/{gid}", None, owner.token)
        assert got.status == 200 and got.body["member_count"] == MEMBERS and got.body["kind"] == "channel", got

        tokens = JwtTokenService(secret, 3600)
        online, offline, poster = ids[:ONLINE], ids[-1], ids[ONLINE]
        began = time.monotonic()
        listeners = await connect_all(clients, [tokens.issue(user_id).token for user_id in online])
        print(f"{len(listeners)} sockets open over two gateways in {time.monotonic() - began:.1f} s")

        # A member may not post; nothing reaches the sockets of it.
        member = Account(poster, "", "", tokens.issue(poster).token)
        assert_error(await clients[1].send_group(member, gid, "me too"), 403, "not_allowed")

        before = await used_memory(redis)
        log_before = await log_size(redis, gid)
        sent, latencies = [], []
        for i in range(POSTS):
            at = time.monotonic()
            reply = await clients[i % 2].send_group(owner, gid, f"post {i}", client_msg_id=f"p{i}")
            assert reply.status == 201, reply
            sent.append(reply.body)
            await until(lambda n=i + 1: all(len(listener.frames) >= n for listener in listeners), 60,
                        f"post {i} did not reach every socket")
            latencies.append(max(listener.frames[i][0] for listener in listeners) - at)
        after = await used_memory(redis)
        log_after = await log_size(redis, gid)
        await asyncio.sleep(0.5)  # anything doubled or stray would be in by now
        expected = [(m["id"], m["seq"]) for m in sent]
        assert [m["seq"] for m in sent] == list(range(1, POSTS + 1))
        for listener in listeners:
            assert [(f["id"], f["seq"]) for _, f in listener.frames] == expected
            assert all(f["group_id"] == gid for _, f in listener.frames)
        (entries, size, records), (entries_after, size_after, records_after) = log_before, log_after
        assert entries_after - entries == POSTS
        print(f"Redis per post: {(size_after - size) / POSTS:.0f} B of the channel's log (MEMORY USAGE; "
              f"{(records_after - records) / POSTS:.0f} B of record); used_memory of the whole server, "
              f"which other tests share: {(after - before) / POSTS / 1024:+.1f} KiB per post")
        print("send to last socket: " + ", ".join(f"{s * 1000:.0f}" for s in latencies)
              + f" ms (median {sorted(latencies)[POSTS // 2] * 1000:.0f} ms)")

        # The offline member pulls every post, in both views.
        absent = Account(offline, "", "", tokens.issue(offline).token)
        pulled, _ = await clients[1].pull_all(absent)
        assert [(m["id"], m["seq"]) for m in pulled if m.get("group_id") == gid] == expected
        events, _ = await clients[0].events_all(absent)
        assert [(e["id"], e["seq"]) for e in events if e["type"] == "group"] == expected
        assert [e["type"] for e in events if e["type"] != "group"] == ["group_updated"]  # its bulk join
        for listener in listeners:
            listener.socket.close()
        await free(redis)  # 100,000 own logs: ~0.5 GB of the shared Redis, not kept for the next test
    finally:
        await shutdown(container)
