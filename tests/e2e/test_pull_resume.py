"""The pull (GET /messages) and the resume (ws?cursor=): oldest first, every message
exactly once across pages, reconnects and live pushes; expired and invalid cursors."""
from __future__ import annotations

import asyncio

import pytest

from tests.e2e.support import assert_error, with_settings


def strip_cursor(frame: dict) -> dict:
    return {k: v for k, v in frame.items() if k != "cursor"}


@pytest.mark.gen_test(timeout=30)
async def test_pull_returns_everything_oldest_first_with_cursors(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    group = await api.create_group(c, "g", [a, b])
    sent = [
        (await api.send(a, b, "one")).body,
        (await api.send_group(c, group["group_id"], "two")).body,
        (await api.send(c, b, "three")).body,
    ]
    await api.send(b, a, "b's own message is not in b's inbox")
    await api.send_group(b, group["group_id"], "nor is b's own group message")
    await api.send(a, c, "nor a message between others")
    r = await api.pull(b)
    assert r.status == 200, r
    assert set(r.body) == {"messages", "next_cursor", "has_more"}
    messages = r.body["messages"]
    assert [strip_cursor(m) for m in messages] == sent
    cursors = [m["cursor"] for m in messages]
    assert all(isinstance(x, str) and x for x in cursors) and len(set(cursors)) == 3
    assert r.body["next_cursor"] == cursors[-1]
    assert r.body["has_more"] is False
    # From a cursor: only what came after it.
    r = await api.pull(b, cursors[0])
    assert [m["id"] for m in r.body["messages"]] == [sent[1]["id"], sent[2]["id"]]
    # At the end: nothing, and the cursor stays where it was.
    r = await api.pull(b, cursors[-1])
    assert r.status == 200 and r.body == {"messages": [], "next_cursor": cursors[-1], "has_more": False}, r
    # An empty inbox.
    fresh = await api.register()
    r = await api.pull(fresh)
    assert r.status == 200 and r.body["messages"] == [] and r.body["has_more"] is False, r


@pytest.mark.gen_test(timeout=30)
async def test_paging_returns_every_message_exactly_once(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    group = await api.create_group(a, "g", [b, c])
    ids = []
    for i in range(23):
        if i % 3 == 0:
            r = await api.send_group(c, group["group_id"], f"g{i}")
        else:
            r = await api.send(a, b, f"p{i}")
        assert r.status == 201, r
        ids.append(r.body["id"])
    cursor, seen, pages = None, [], 0
    while True:
        r = await api.pull(b, cursor, limit=5)
        assert r.status == 200, r
        pages += 1
        seen += [m["id"] for m in r.body["messages"]]
        assert len(r.body["messages"]) == (5 if r.body["has_more"] else 4)  # 23 + 1 late = 24
        cursor = r.body["next_cursor"]
        # Messages keep arriving while the client pages: each shows up once too.
        if pages == 2:
            late = await api.send(a, b, "late")
            ids.append(late.body["id"])
        if not r.body["has_more"]:
            break
    assert seen == ids
    assert pages == 5
    everything, _ = await api.pull_all(b, limit=200)
    assert [m["id"] for m in everything] == ids


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_sends_are_all_pulled_once_in_cursor_order(api):
    senders = [await api.register() for _ in range(4)]
    b = await api.register()
    replies = await asyncio.gather(*(api.send(s, b, f"{i}-{n}") for n in range(15) for i, s in enumerate(senders)))
    assert all(r.status == 201 for r in replies)
    messages, _ = await api.pull_all(b, limit=7)
    assert sorted(m["id"] for m in messages) == sorted(r.body["id"] for r in replies)
    # The sends raced each other, so the contract's promise is about cursors: strictly increasing.
    positions = [tuple(int(p) for p in m["cursor"].split("-")) for m in messages]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


@pytest.mark.gen_test(timeout=30)
async def test_pull_limit_and_cursor_validation(api):
    a, b = await api.register(), await api.register()
    for _ in range(3):
        await api.send(a, b, "x")
    r = await api.pull(b, limit=200)
    assert r.status == 200 and len(r.body["messages"]) == 3
    r = await api.pull(b, limit=2)
    assert len(r.body["messages"]) == 2 and r.body["has_more"] is True
    for limit in ("201", "0", "-3", "ten", "2.0"):
        assert_error(await api.pull(b, limit=limit), 400)
    for cursor in ("garbage", "1", "1-", "-1-0", "a-0", "1-0-0", "1.0-0", "١-٠", "9" * 30 + "-0"):
        assert_error(await api.pull(b, cursor), 400, "invalid_cursor")
    assert_error(await api.call("GET", "/api/v1/messages"), 401)


@pytest.mark.gen_test(timeout=30)
async def test_pull_defaults_to_50(api):
    a, b = await api.register(), await api.register()
    replies = await asyncio.gather(*(api.send(a, b, str(i)) for i in range(52)))
    assert all(r.status == 201 for r in replies)
    r = await api.pull(b)
    assert len(r.body["messages"]) == 50 and r.body["has_more"] is True
    r = await api.pull(b, r.body["next_cursor"])
    assert len(r.body["messages"]) == 2 and r.body["has_more"] is False


# Embedded only: Redis trims whole macro nodes (100 entries by default), so an inbox of
# maxlen 5 is never trimmed there; tests/production/test_trimmed_inbox.py covers production.
@pytest.mark.embedded_only
@with_settings(inbox_maxlen=5)
@pytest.mark.gen_test(timeout=30)
async def test_a_cursor_older_than_what_is_retained_is_410(api):
    a, b = await api.register(), await api.register()
    ws_b = await api.connect(b)
    first = await api.send(a, b, "m0")
    cursor0 = (await ws_b.next())["cursor"]
    ids = [first.body["id"]]
    for i in range(1, 12):
        ids.append((await api.send(a, b, f"m{i}")).body["id"])
    await ws_b.take(11)
    r = await api.pull(b, cursor0)
    assert_error(r, 410, "cursor_expired")
    # No cursor: from the start of what is retained (the inbox keeps about 5).
    retained, last = await api.pull_all(b)
    retained_ids = [m["id"] for m in retained]
    assert 5 <= len(retained_ids) <= 10 and retained_ids == ids[-len(retained_ids):]
    # A cursor still inside what is retained keeps working.
    r = await api.pull(b, retained[0]["cursor"])
    assert r.status == 200 and [m["id"] for m in r.body["messages"]] == retained_ids[1:], r
    # A resume from the expired cursor is refused on the socket (4410), not silently gappy.
    ws = await api.connect(b, cursor=cursor0)
    code, _ = await ws.closed()
    assert code == 4410
    # The history still has every message.
    assert [m["id"] for m in await api.history_all(b, f"/conversations/{a.user_id}")] == ids[::-1]


@pytest.mark.gen_test(timeout=30)
async def test_a_cursor_after_the_newest_message_is_refused_not_followed(api):
    """A cursor the server never gave out (made up, or kept from before the data was
    reset) would skip every message until the inbox caught up with it: refused as expired,
    so the client falls back to the history calls and starts again."""
    a, b = await api.register(), await api.register()
    sent = await api.send(a, b, "one")
    cursor = (await api.pull(b)).body["next_cursor"]
    major, minor = (int(part) for part in cursor.split("-"))
    assert (await api.pull(b, cursor)).body == {"messages": [], "next_cursor": cursor, "has_more": False}
    ahead = f"{major + 1_000_000}-{minor}"
    assert_error(await api.pull(b, ahead), 410, "cursor_expired")
    ws = await api.connect(b, cursor=ahead)
    code, _ = await ws.closed()
    assert code == 4410
    # Without it, nothing was lost: the pull from the start, and live pushes.
    assert [m["id"] for m in (await api.pull(b)).body["messages"]] == [sent.body["id"]]
    ws = await api.connect(b, cursor=cursor)
    later = await api.send(a, b, "two")
    assert (await ws.next())["id"] == later.body["id"]


@pytest.mark.gen_test(timeout=30)
async def test_reconnect_with_cursor_replays_what_was_missed_then_goes_live(api):
    a, b = await api.register(), await api.register()
    ws = await api.connect(b)
    await api.send(a, b, "seen")
    seen = await ws.next()
    ws.close()
    await ws.closed()
    missed = [(await api.send(a, b, f"missed {i}")).body for i in range(3)]
    ws = await api.connect(b, cursor=seen["cursor"])
    replayed = await ws.take(3)
    assert [strip_cursor(f) for f in replayed] == missed
    live = (await api.send(a, b, "live")).body
    assert strip_cursor(await ws.next()) == live
    assert await ws.nothing(0.2)
    # Every frame's cursor is the one the pull gives for the same message.
    pulled, _ = await api.pull_all(b)
    assert [m["cursor"] for m in pulled[1:]] == [f["cursor"] for f in replayed] + [pulled[-1]["cursor"]]


@pytest.mark.gen_test(timeout=30)
async def test_connecting_without_cursor_starts_live(api):
    a, b = await api.register(), await api.register()
    await api.send(a, b, "old")
    ws = await api.connect(b)
    assert await ws.nothing(0.2)
    new = (await api.send(a, b, "new")).body
    assert strip_cursor(await ws.next()) == new


@pytest.mark.gen_test(timeout=60)
async def test_resume_under_load_has_no_gap_and_no_duplicate(api):
    """Hundreds of missed messages (several replay pages), and sockets resuming while
    waves of concurrent sends land during their replay: every socket gets every
    message after the cursor exactly once, in cursor order, then stays quiet."""
    a, c, b = await api.register(), await api.register(), await api.register()
    ws = await api.connect(b)
    start = (await api.send(a, b, "start")).body
    start_cursor = (await ws.next())["cursor"]
    ws.close()
    await ws.closed()
    missed = await asyncio.gather(*(api.send(a if i % 2 else c, b, f"missed {i}") for i in range(450)))
    assert all(r.status == 201 for r in missed)

    sockets, during = [], []
    for wave in range(5):
        # The wave's commits and notifications interleave with this socket's replay reads,
        # which is where a gap or a duplicate would come from.
        sending = asyncio.gather(*(api.send(a if i % 2 else c, b, f"during {wave}.{i}") for i in range(20)))
        sockets.append(await api.connect(b, cursor=start_cursor))
        during += await sending
    assert all(r.status == 201 for r in during)
    expected = [r.body["id"] for r in missed + during]
    pulled, _ = await api.pull_all(b, cursor=start_cursor, limit=200)
    assert sorted(m["id"] for m in pulled) == sorted(expected)
    assert start["id"] not in expected
    for ws in sockets:
        frames = await ws.take(len(expected), timeout=10)
        assert await ws.nothing(0.05)
        assert len({f["id"] for f in frames}) == len(frames)  # no duplicate
        assert frames == pulled  # no gap, the pull's order and cursors
