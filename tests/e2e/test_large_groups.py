"""Large groups through the running app (issue 18; docs/design/large-groups.md), in both
modes, with COURIER_LARGE_GROUP=3: a group of more than 3 members keeps one stream of its
own. Sockets and pulls of both views get each of its messages once, in seq order, with
cursors that resume right after them; a group that grows past 3 while two clients send
switches with no message lost, doubled or out of seq; joining starts at the join, and a
member removed while offline receives nothing sent after the removal."""
from __future__ import annotations

import asyncio
import re

import pytest

from tests.e2e.support import with_settings

pytestmark = with_settings(large_group=3)

URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]{1,320}")


async def add(api, actor, group_id: str, user) -> None:
    r = await api.call("POST", f"/api/v1/groups/{group_id}/members", {"user_id": user.user_id}, actor.token)
    assert r.status == 200, r


async def remove(api, actor, group_id: str, user) -> None:
    r = await api.call("DELETE", f"/api/v1/groups/{group_id}/members/{user.user_id}", None, actor.token)
    assert r.status == 204, r


def group_messages(events: list, group_id: str) -> list:
    return [e for e in events if e["type"] == "group" and e["group_id"] == group_id]


async def club(api, name: str = "club"):
    """Four new users and their group of four: large from creation (large_group=3)."""
    owner, bob, carol, dave = [await api.register() for _ in range(4)]
    gid = (await api.create_group(owner, name, [bob, carol, dave]))["group_id"]
    return owner, bob, carol, dave, gid


async def sent(api, sender, group_id: str, content: str, **extra) -> dict:
    r = await api.send_group(sender, group_id, content, **extra)
    assert r.status == 201, r
    return r.body


@pytest.mark.gen_test(timeout=60)
async def test_a_large_groups_messages_reach_every_socket_and_pull_once_in_seq_order(api):
    owner, bob, carol, dave = [await api.register() for _ in range(4)]
    live = await api.connect(bob)
    events = await api.connect(carol, events=True)
    own = await api.connect(owner, events=True)
    gid = (await api.create_group(owner, "big", [bob, carol, dave]))["group_id"]  # 4 members: large at once
    assert (await events.next())["type"] == "group_updated"
    assert (await own.next())["type"] == "group_updated"
    bodies = [await sent(api, [owner, dave][i % 2], gid, f"m{i}", client_msg_id=f"k{i}") for i in range(6)]
    assert [b["seq"] for b in bodies] == [1, 2, 3, 4, 5, 6]
    pushed = await live.take(6)
    assert [m["content"] for m in pushed] == [f"m{i}" for i in range(6)]
    assert [m["seq"] for m in pushed] == [1, 2, 3, 4, 5, 6]
    assert all(URL_SAFE.fullmatch(m["cursor"]) and m["cursor"].startswith("2.") for m in pushed)
    assert [m["content"] for m in await events.take(6)] == [f"m{i}" for i in range(6)]
    # The owner's event view has every message, its own sends with their client_msg_id.
    seen = await own.take(6)
    assert [(m["content"], m.get("client_msg_id")) for m in seen] == [
        ("m0", "k0"), ("m1", None), ("m2", "k2"), ("m3", None), ("m4", "k4"), ("m5", None)]
    assert await live.nothing()
    # A retry of an accepted client_msg_id is answered with the original, posted once.
    again = await api.send_group(owner, gid, "m0", client_msg_id="k0")
    assert again.status == 201 and again.body["id"] == bodies[0]["id"], again
    assert await live.nothing()
    # Pulls: both views, and a resume from each pushed cursor gives exactly the rest.
    pulled, _ = await api.pull_all(bob)
    assert [m["id"] for m in group_messages(pulled, gid)] == [b["id"] for b in bodies]
    for index, message in enumerate(pushed):
        rest, _ = await api.pull_all(bob, message["cursor"], limit=2)
        assert [m["id"] for m in rest] == [b["id"] for b in bodies[index + 1:]]
    logged, _ = await api.events_all(dave)
    assert [m["id"] for m in group_messages(logged, gid)] == [b["id"] for b in bodies]
    # History is the same messages, newest first (production: once the worker stored them).
    history = await api.history_all(bob, f"/groups/{gid}")
    assert [m["id"] for m in history] == [b["id"] for b in reversed(bodies)]


@pytest.mark.gen_test(timeout=90)
async def test_a_group_growing_past_the_threshold_under_concurrent_sends_loses_and_doubles_nothing(api):
    owner, bob, carol, newcomer = [await api.register() for _ in range(4)]
    gid = (await api.create_group(owner, "growing", [bob, carol]))["group_id"]  # 3 members: small
    watcher = await api.connect(carol)
    before = await sent(api, bob, gid, "before")
    mark = (await watcher.next())["cursor"]  # a cursor from before the switch
    accepted: list[dict] = []
    stop = asyncio.Event()

    async def keep_sending(sender, name: str) -> None:
        n = 0
        while not stop.is_set() or n < 5:
            accepted.append(await sent(api, sender, gid, f"{name}{n}", client_msg_id=f"{name}{n}"))
            n += 1

    senders = [asyncio.ensure_future(keep_sending(owner, "o")), asyncio.ensure_future(keep_sending(bob, "b"))]
    await asyncio.sleep(0.1)
    await add(api, owner, gid, newcomer)  # 4 members: the group switches between two messages
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*senders)
    seqs = sorted(body["seq"] for body in accepted)
    assert seqs == list(range(2, 2 + len(accepted))), seqs  # gapless, none twice
    expected = [before["id"]] + [body["id"] for body in sorted(accepted, key=lambda b: b["seq"])]
    pushed = []
    while len(pushed) < len(accepted):
        try:
            pushed.append(await watcher.next(timeout=3))
        except TimeoutError:
            break
    assert [m["seq"] for m in pushed] == seqs
    assert not mark.startswith("2.") and pushed[-1]["cursor"].startswith("2."), "the group did not switch"
    assert await watcher.nothing()
    pulled, _ = await api.pull_all(carol)
    assert [m["id"] for m in group_messages(pulled, gid)] == expected
    rest, _ = await api.pull_all(carol, mark)
    assert [m["id"] for m in rest] == expected[1:]
    # The newcomer reads from its join on: a stretch of the seqs, gapless, up to the last.
    joined, _ = await api.pull_all(newcomer)
    got = [m["seq"] for m in group_messages(joined, gid)]
    assert got and got == list(range(got[0], seqs[-1] + 1)), got
    history = await api.history_all(carol, f"/groups/{gid}")
    assert [m["seq"] for m in reversed(history)] == [1, *seqs]


@pytest.mark.gen_test(timeout=60)
async def test_joining_starts_at_the_join_and_a_member_removed_while_offline_gets_nothing_after(api):
    owner, bob, carol, dave, erin = [await api.register() for _ in range(5)]
    gid = (await api.create_group(owner, "club", [bob, carol, dave]))["group_id"]
    first = await sent(api, owner, gid, "before erin")
    await add(api, owner, gid, erin)  # joined while offline
    after_join = await sent(api, owner, gid, "after erin")
    events, _ = await api.events_all(erin)
    assert [e["type"] for e in events if e.get("group_id") == gid] == ["member_added", "group"]
    assert [m["id"] for m in group_messages(events, gid)] == [after_join["id"]]
    # Dave is removed while offline: he reads up to his removal, and nothing after it.
    await remove(api, owner, gid, dave)
    after_removal = await sent(api, owner, gid, "without dave")
    events, _ = await api.events_all(dave)
    assert [m["id"] for m in group_messages(events, gid)] == [first["id"], after_join["id"]]
    assert events[-1]["type"] == "member_removed" and events[-1]["user_id"] == dave.user_id
    assert after_removal["id"] not in [e.get("id") for e in events]
    r = await api.send_group(dave, gid, "still here?")
    assert r.status == 403, r
    # The others read the member changes in the group's stream, each once.
    events, _ = await api.events_all(bob)
    changes = [(e["type"], e["user_id"]) for e in events if e["type"].startswith("member_")]
    assert changes == [("member_added", erin.user_id), ("member_removed", dave.user_id)]


@pytest.mark.gen_test(timeout=60)
async def test_a_member_who_leaves_and_rejoins_reads_both_stretches_and_nothing_between(api):
    owner, bob, carol, dave, gid = await club(api)
    ws = await api.connect(dave)
    one = await sent(api, owner, gid, "one")
    assert (await ws.next())["id"] == one["id"]
    await remove(api, dave, gid, dave)
    missed = await sent(api, owner, gid, "missed")
    await add(api, owner, gid, dave)
    two = await sent(api, owner, gid, "two")
    assert (await ws.next())["id"] == two["id"]
    assert await ws.nothing()
    pulled, _ = await api.pull_all(dave)
    assert [m["id"] for m in group_messages(pulled, gid)] == [one["id"], two["id"]]
    assert missed["id"] not in [m["id"] for m in pulled]


@pytest.mark.gen_test(timeout=60)
async def test_a_socket_resumes_from_a_large_group_cursor_exactly(api):
    owner, bob, carol, dave, gid = await club(api)
    ws = await api.connect(bob)
    first = await sent(api, owner, gid, "first")
    cursor = (await ws.next())["cursor"]
    ws.close()
    await ws.closed()
    missed = [await sent(api, owner, gid, f"missed {i}") for i in range(3)]
    private = await api.send(carol, bob, "a private one")
    assert private.status == 201, private
    back = await api.connect(bob, cursor=cursor)
    replayed = await back.take(4)
    assert sorted(m["id"] for m in replayed) == sorted([*(m["id"] for m in missed), private.body["id"]])
    assert [m["seq"] for m in replayed if m["type"] == "group"] == [2, 3, 4]
    live = await sent(api, owner, gid, "live")
    assert (await back.next())["id"] == live["id"]
    assert await back.nothing()
    assert first["id"] not in [m["id"] for m in replayed]
