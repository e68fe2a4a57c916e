"""MariaDB stopped (kill -9) while the worker works through a backlog, then started
again. It runs as a mariadbd of the test's own (own data directory and port): the
machine's MariaDB serves other tests concurrently and is never stopped.

What a client sees meanwhile: sends are still accepted (201) to recipients and
groups the gateway has looked up before (their records are cached in Redis), and
pushed at once - the first message of a conversation too (the group's): the worker
gave every stored conversation its seq counter in Redis (seq:complete), so a missing
counter is a new conversation's; they wait in stream:persist. A send to a recipient or group the
cache has not seen, registrations, membership changes and history need the
database: 503 with the JSON error body. What only needs Redis (pull, live pushes)
keeps working; /readyz says the database is down. Once the server is back the
worker (`courier worker`) and the gateway recover by themselves: every accepted
message, those accepted during the outage included, is stored exactly once (rows
counted by id) and reached the recipient's socket exactly once."""
from __future__ import annotations

import asyncio
import time

import pytest
import redis

from adapters.redis.cache import group_key, user_key
from adapters.redis.inbox import SEQ_COMPLETE
from adapters.sql import migrate
from tests.e2e.support import assert_error
from tests.production.support import (
    Collector,
    GroupChanges,
    Sender,
    assert_history_agrees,
    assert_stored_exactly_once,
    check_event_view,
    check_original_view,
    count_stored,
    eventually,
    production_settings,
    until_stored,
)

pytestmark = [pytest.mark.redis, pytest.mark.mysql]

MESSAGES = 400
DURING = 120  # private and group messages sent while the database is down
REPLIES = 20  # b's messages to a while the database is down


def persist_backlog(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url, socket_connect_timeout=2) as client:
        return client.xlen("stream:persist")


async def settled_backlog(redis_url: str, quiet: float = 0.5) -> int:
    """The persist backlog once it has stopped moving for `quiet` seconds: a batch whose
    commit reached the database just before it was killed is acked just after."""
    loop = asyncio.get_running_loop()
    last, since = await loop.run_in_executor(None, persist_backlog, redis_url), loop.time()
    while loop.time() - since < quiet:
        await asyncio.sleep(0.05)
        now = await loop.run_in_executor(None, persist_backlog, redis_url)
        if now != last:
            last, since = now, loop.time()
    return last


def seq_complete(redis_url: str) -> bool:
    with redis.Redis.from_url(redis_url, socket_connect_timeout=2) as client:
        return bool(client.exists(SEQ_COMPLETE))


def forget_cached(redis_url: str, *keys: str) -> None:
    """As if the cache had never seen these (evicted, or expired)."""
    with redis.Redis.from_url(redis_url, socket_connect_timeout=2) as client:
        client.delete(*keys)


@pytest.mark.gen_test(timeout=120)
async def test_mariadb_killed_and_started_again_loses_and_doubles_nothing(
        private_mariadb, redis_url, secret, commands, gateways, api):
    loop = asyncio.get_running_loop()
    database_url = private_mariadb.create_database()
    await loop.run_in_executor(None, migrate.upgrade, database_url)
    settings = production_settings(redis_url, database_url, secret, group_changes=0)
    gateway = await gateways(settings).start()
    client = api(gateway)
    a, b, c, d = [await client.register() for _ in range(4)]
    # Events (issue 14): a and b each have a socket in the event view and one in the
    # original view, open before anything happens to them.
    views = {name: Collector(await client.connect(who, events=True), name)
             for name, who in (("a events", a), ("b events", b))}
    a_socket = Collector(await client.connect(a), "a")
    # e registers through another gateway: this one has never looked it up.
    other = await gateways(production_settings(redis_url, database_url, secret)).start()
    e = await api(other).register()
    await other.stop()
    changes = GroupChanges(client, a)
    group = await changes.create("team", [b, c])
    cold_group = await changes.create("cold", [b])
    socket = Collector(await client.connect(b), "b")
    # Group changes before the outage: they are in the members' logs.
    await changes.add(group["group_id"], d)
    await changes.rename(group["group_id"], "the team")
    await changes.remove(group["group_id"], d)
    a_sends, b_sends = Sender(client, a), Sender(client, b)
    # A change drops the group's cache entry; a send looks the group up again (and caches it).
    await a_sends.send("changed", group_id=group["group_id"])

    async def send(start):
        for i in range(start, MESSAGES, 8):
            await a_sends.send(f"m{i}", to=b)

    await asyncio.gather(*(send(k) for k in range(8)))
    accepted = set(a_sends.ids)
    # The worker starts on that backlog; the server is killed while it is part-way through.
    worker = commands("worker", settings, COURIER_WORKER_BATCH=10).start()
    await worker.ready()
    # A ready worker has given every stored conversation its seq counter and set the
    # marker: the group's first message (sent while the database is down) needs Redis only.
    assert await loop.run_in_executor(None, seq_complete, redis_url), worker.output()
    deadline = time.monotonic() + 30
    while True:
        stored = await loop.run_in_executor(None, count_stored, database_url, accepted)
        if 0 < stored:
            break
        assert time.monotonic() < deadline, "the worker stored nothing in 30 s"
        await asyncio.sleep(0.005)
    private_mariadb.kill()
    assert stored < MESSAGES - 50, "the worker was through the backlog before the kill"
    waiting = await settled_backlog(redis_url)
    assert waiting > 0, f"nothing was left to persist ({stored} stored)"

    # Down: sends to a recipient or group looked up before are accepted, and pushed.
    # b writes back too: a's original view gets those, its event view everything.
    async def send_while_down(start):
        ids = set()
        for i in range(start, DURING, 4):
            if i % 2:
                r = await client.send(a, b, f"down {i}", client_msg_id=f"down-{i}")
            else:
                r = await client.send_group(a, group["group_id"], f"down {i}", client_msg_id=f"down-{i}")
            assert r.status == 201, r
            a_sends.accepted[f"down-{i}"] = r.body["id"]
            ids.add(r.body["id"])
        return ids

    during = set().union(*await asyncio.gather(*(send_while_down(k) for k in range(4))))
    assert len(during) == DURING
    retry = await client.send(a, b, "down 1", client_msg_id="down-1")  # idempotency needs Redis only
    assert retry.status == 201 and retry.body["id"] in during, retry
    replies = [await b_sends.send(f"b down {i}", to=a) for i in range(REPLIES)]
    await socket.until_has(during)
    await a_socket.until_has(set(replies))
    await views["a events"].until_has(during | set(replies))  # own sends, at once
    accepted |= during

    # What the caches have not seen, and what needs the database, answers 503 JSON. (A
    # gateway remembers the users it found or registered, in the process, so the recipient
    # is one registered through another gateway; Redis's entry is dropped.)
    forget_cached(redis_url, user_key(e.user_id), group_key(cold_group["group_id"]))
    assert_error(await client.send(a, e, "to a recipient not cached"), 503, "service_unavailable")
    assert_error(await client.send_group(a, cold_group["group_id"], "to a group not cached"), 503,
                 "service_unavailable")
    assert_error(await client.call("POST", "/api/v1/users/register",
                                    {"username": "newcomer", "password": "password-123"}), 503)
    # (Last: a change that fails drops the group's cache entry, as it cannot tell
    # whether the database took it; the group's sends then wait for the database.)
    assert_error(await client.call("POST", f"/api/v1/groups/{group['group_id']}/members", {"user_id": d.user_id},
                                    token=a.token), 503)
    assert_error(await client.history(b, f"/conversations/{a.user_id}"), 503)
    not_ready = await client.call("GET", "/readyz")
    assert_error(not_ready, 503, "service_unavailable")
    assert "database" in not_ready.body["error"]["message"]
    pulled, _ = await client.pull_all(b, limit=200)  # the inbox is in Redis
    assert {m["id"] for m in pulled} == accepted
    await asyncio.sleep(1.0)  # the worker keeps failing, and keeps what it took
    assert await loop.run_in_executor(None, persist_backlog, redis_url) == waiting + DURING + REPLIES
    assert worker.running

    await loop.run_in_executor(None, private_mariadb.start)

    async def ready():
        return (await client.call("GET", "/readyz")).status == 200

    await eventually(ready, timeout=20)
    members = await client.call("GET", f"/api/v1/groups/{group['group_id']}", token=a.token)
    assert members.body["member_ids"] == [a.user_id, b.user_id, c.user_id], members  # the refused change
    after = await a_sends.send("after", to=b)
    accepted.add(after)
    # Group changes work again (the refused one left no event behind).
    await changes.add(group["group_id"], d)
    await changes.rename(group["group_id"], "back")
    await changes.remove(group["group_id"], d)
    everything = accepted | set(replies)
    stored = await until_stored(database_url, everything, timeout=45)
    assert_stored_exactly_once(stored, everything)

    async def acked():  # the entries are acked once their conversation-list rows are written too
        return await loop.run_in_executor(None, persist_backlog, redis_url) == 0

    await eventually(acked, timeout=10)  # the list window (COURIER_WORKER_LIST_WINDOW) after the rows
    await socket.until_has(accepted)
    socket.assert_exactly_once(accepted)
    # Each event-view socket got its user's log exactly once, with gapless seqs that the
    # history (the worker's rows, those of the outage included) agrees with.
    for name, who, sender in (("a", a, a_sends), ("b", b, b_sends)):
        log = await check_event_view(client, who, views[f"{name} events"], everything, changes.made,
                                     sender.accepted)
        await assert_history_agrees(client, who, log)
        if name == "a":
            await check_original_view(a_socket, who, log)
    assert worker.running, worker.output()
    await socket.close()
