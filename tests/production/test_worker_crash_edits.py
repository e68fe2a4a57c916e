"""`courier worker` killed -9 in the middle of a batch, and another started, with edits,
deletes and read-marker moves in the stream (issue 15, point 7): edits and deletes of
messages the worker has not stored yet (kept in message_changes and applied when the
message is stored) and of messages it may have stored, markers moved before the worker
stored the conversation's first message and after. Every message ends in MySQL once,
with its final content or as a tombstone; message_updated / message_deleted and read
events reach the event view exactly once; the pulled log shows every message as history
does (edited, or a tombstone); the conversation list agrees with the history (last
message, last seq, markers, unread counts)."""
from __future__ import annotations

import asyncio
import collections
import time

import pytest
import redis

from tests.production.support import (
    Collector,
    Sender,
    assert_stored_exactly_once,
    count_stored,
    production_settings,
    stored_ids,
    until_stored,
)
from tests.production.test_worker_crash import pending_entries, persist_stream_length

pytestmark = [pytest.mark.redis, pytest.mark.mysql]

MESSAGES = 1200
BATCH = 10
PAIR_READ = MESSAGES * 6 // 8 + 3  # the pair: 900 sends, then a's 5 while no worker runs
GROUP_READ = MESSAGES * 2 // 8 + 3  # the group: 300 sends, then b's 5 while no worker runs
CLAIM_IDLE = 1.0


async def edit(client, account, message_id: str, content: str) -> None:
    r = await client.call("PATCH", f"/api/v1/messages/{message_id}", {"content": content}, account.token)
    assert r.status == 200, r


async def delete(client, account, message_id: str) -> None:
    r = await client.call("DELETE", f"/api/v1/messages/{message_id}", None, account.token)
    assert r.status == 204, r


async def read(client, account, path: str, seq: int) -> dict:
    r = await client.call("POST", path, {"seq": seq}, account.token)
    assert r.status == 200, r
    return r.body


@pytest.mark.gen_test(timeout=200)
async def test_a_worker_killed_mid_batch_with_edits_and_reads_in_the_stream(
        redis_url, mysql_url, secret, commands, gateways, api):
    settings = production_settings(redis_url, mysql_url, secret, group_changes=0)
    gateway = await gateways(settings).start()
    client = api(gateway)
    a, b = await client.register(), await client.register()
    sockets = {name: Collector(await client.connect(who, events=True), name) for name, who in (("a", a), ("b", b))}
    r = await client.call("POST", "/api/v1/groups", {"name": "crash", "member_ids": [b.user_id]}, a.token)
    assert r.status == 201, r
    gid = r.body["group_id"]
    a_sends, b_sends = Sender(client, a), Sender(client, b)
    a_private: list[str] = []
    b_group: list[str] = []

    async def send(start):
        for i in range(start, MESSAGES, 8):
            if start < 4:
                a_private.append(await a_sends.send(f"m{i}", to=b))
            elif start < 6:
                await b_sends.send(f"m{i}", to=a)
            elif start == 6:
                await a_sends.send(f"m{i}", group_id=gid)
            else:
                b_group.append(await b_sends.send(f"m{i}", group_id=gid))

    await asyncio.gather(*(send(k) for k in range(8)))
    pair_read = f"/api/v1/conversations/{a.user_id}/read"
    group_read = f"/api/v1/groups/{gid}/read"
    # Before any worker ran: edits and deletes of messages not stored yet, and a marker
    # in a conversation whose first message is not stored yet.
    edited = {m: f"edited {m}" for m in a_private[:20]}
    deleted = set(b_group[:10])
    await asyncio.gather(*(edit(client, a, m, c) for m, c in edited.items()),
                         *(delete(client, b, m) for m in deleted))
    await read(client, b, pair_read, 100)

    ids = a_sends.ids | b_sends.ids
    loop = asyncio.get_running_loop()
    for attempt in range(1, 6):
        first = commands("worker", settings, name=f"worker-1-{attempt}", COURIER_WORKER_BATCH=BATCH).start()
        await first.ready()
        deadline = time.monotonic() + 30
        while True:
            stored = await loop.run_in_executor(None, count_stored, mysql_url, ids)
            pending = await loop.run_in_executor(None, pending_entries, redis_url)
            if 0 < stored < MESSAGES - 4 * BATCH and pending > 0:
                break
            assert stored < MESSAGES - 4 * BATCH, "the worker was through the backlog before it could be killed"
            assert time.monotonic() < deadline, f"the worker stored {stored} in 30 s"
            await asyncio.sleep(0.005)
        assert await first.kill() == -9
        if await loop.run_in_executor(None, pending_entries, redis_url) > 0:
            break
    else:
        raise AssertionError("no kill landed inside a batch")

    # While no worker runs: more sends, edits and deletes (of messages stored or not),
    # marker moves (forward, and one back that changes nothing).
    late_edits = {m: f"late {m}" for m in a_private[-30:-20]}
    await asyncio.gather(*(edit(client, a, m, c) for m, c in late_edits.items()),
                         delete(client, a, a_private[25]))
    edited.update(late_edits)
    deleted.add(a_private[25])
    for i in range(5):
        await a_sends.send(f"after {i}", to=b)
        await b_sends.send(f"after g{i}", group_id=gid)
    last_private = [m for k, m in a_sends.accepted.items()][-1]
    last_group = [m for k, m in b_sends.accepted.items()][-1]
    await edit(client, a, last_private, "the last, edited")
    edited[last_private] = "the last, edited"
    await delete(client, b, last_group)
    deleted.add(last_group)
    # Forward moves that must move whatever the killed worker stored: above every own send
    # of the reader (the pair's first 900 seqs hold all of b's, the group's first 300 all of
    # a's), since a stored own send moves its sender's marker to it.
    await read(client, b, pair_read, PAIR_READ)
    await read(client, b, pair_read, 150)  # not forward: no event
    await read(client, a, group_read, GROUP_READ)
    ids = a_sends.ids | b_sends.ids
    assert len(ids) == MESSAGES + 10

    second = commands("worker", settings, name="worker-2", COURIER_WORKER_BATCH=BATCH,
                      COURIER_WORKER_CLAIM_IDLE=CLAIM_IDLE).start()
    await second.ready()
    await until_stored(mysql_url, ids, timeout=80)
    deadline = time.monotonic() + 80
    while (backlog := await loop.run_in_executor(None, persist_stream_length, redis_url)) > 0:
        assert time.monotonic() < deadline, f"{backlog} entries still in stream:persist"
        await asyncio.sleep(0.2)
    assert "claimed" in second.output(), second.output()
    assert_stored_exactly_once(await loop.run_in_executor(None, stored_ids, mysql_url), ids)
    with redis.Redis.from_url(redis_url) as r:
        assert r.xlen("stream:persist:dead") == 0

    # Final content and tombstones, in the history.
    pair = await client.history_all(b, f"/conversations/{a.user_id}")
    group = await client.history_all(b, f"/groups/{gid}")
    assert sorted(m["id"] for m in pair + group) == sorted(ids)
    for m in pair + group:
        if m["id"] in deleted:
            assert m.get("deleted") is True and "content" not in m, m
        elif m["id"] in edited:
            assert m["content"] == edited[m["id"]] and m.get("edited_at"), m
        else:
            assert "edited_at" not in m and not m.get("deleted"), m

    # The changes and b's marker moves reach the event view exactly once (each socket,
    # and the pulled log).
    expected_changes = {("message_updated", m) for m in edited} | {("message_deleted", m) for m in deleted}
    for name, who in (("a", a), ("b", b)):
        socket = sockets[name]
        deadline = time.monotonic() + 20
        while not expected_changes <= {(f["type"], f["id"]) for f in socket.frames}:
            assert time.monotonic() < deadline, f"{name}: changes missing"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        log, _ = await client.events_all(who)
        # The pulled log shows each message as it is now, as history does.
        shown = {f["id"]: {k: v for k, v in f.items() if k not in ("cursor", "client_msg_id")}
                 for f in log if f["type"] in ("private", "group")}
        assert shown == {m["id"]: m for m in pair + group}, name
        for frames in (socket.frames, log):
            changes = collections.Counter((f["type"], f["id"]) for f in frames
                                          if f["type"] in ("message_updated", "message_deleted"))
            assert set(changes) == expected_changes and set(changes.values()) == {1}, (name, changes)
            reads = [(f["conversation"]["type"], f["seq"]) for f in frames
                     if f["type"] == "read" and f["user_id"] == who.user_id]
            assert reads == ([("private", 100), ("private", PAIR_READ)] if who is b else [("group", GROUP_READ)]), \
                (name, reads)

    # The conversation list agrees with the history.
    def own_last(messages, account) -> int:
        return max(m["seq"] for m in messages if m["from_user_id"] == account.user_id)

    expected = {
        b.user_id: [(gid, group, max(0, own_last(group, b))), (a.user_id, pair, max(PAIR_READ, own_last(pair, b)))],
        a.user_id: [(gid, group, max(GROUP_READ, own_last(group, a))), (b.user_id, pair, own_last(pair, a))],
    }
    for who in (a, b):
        r = await client.call("GET", "/api/v1/conversations", token=who.token)
        assert r.status == 200, r
        listed = r.body["conversations"]
        assert [c.get("group_id") or c.get("user_id") for c in listed] == [k for k, _, _ in expected[who.user_id]]
        for entry, (_, history, read_seq) in zip(listed, expected[who.user_id], strict=True):
            assert entry["last_message"] == history[0], (entry["last_message"], history[0])
            assert entry["last_seq"] == history[0]["seq"] == len(history)
            assert entry["read_seq"] == read_seq
            assert entry["unread_count"] == entry["last_seq"] - read_seq
    assert second.running
