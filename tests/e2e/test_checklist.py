"""The original checklist of the design: every item is a test (item 8, the log lines,
is in test_logs.py)."""
from __future__ import annotations

import time

import pytest

PRIVATE = {"type", "id", "from_user_id", "to_user_id", "content", "created_at", "seq", "cursor"}
GROUP = {"type", "id", "group_id", "from_user_id", "content", "created_at", "seq", "cursor"}


@pytest.mark.gen_test(timeout=30)
async def test_1_users_a_and_b_both_connect(api):
    a, b = await api.register(), await api.register()
    ws_a, ws_b = await api.connect(a), await api.connect(b)
    for ws in (ws_a, ws_b):
        ws.send({"type": "ping"})
        assert await ws.next() == {"type": "pong"}


@pytest.mark.gen_test(timeout=30)
async def test_2_a_to_b_and_b_to_a_arrive_at_once(api):
    a, b = await api.register(), await api.register()
    ws_a, ws_b = await api.connect(a), await api.connect(b)
    started = time.monotonic()
    sent = await api.send(a, b, "hi B")
    frame = await ws_b.next(timeout=1)
    assert frame["id"] == sent.body["id"] and frame["content"] == "hi B"
    sent = await api.send(b, a, "hi A")
    frame = await ws_a.next(timeout=1)
    assert frame["id"] == sent.body["id"] and frame["content"] == "hi A"
    assert time.monotonic() - started < 2  # "at once": pushed, not polled
    assert await ws_a.nothing(0.1) and await ws_b.nothing(0.01)


@pytest.mark.gen_test(timeout=30)
async def test_3_a_group_message_reaches_every_online_member_except_the_sender(api):
    members = [await api.register() for _ in range(4)]
    sender = members[0]
    group = await api.create_group(sender, "all", members[1:])
    sockets = [await api.connect(m) for m in members]
    sent = await api.send_group(sender, group["group_id"], "to all")
    assert sent.status == 201, sent
    for ws in sockets[1:]:
        frame = await ws.next()
        assert frame["id"] == sent.body["id"] and frame["group_id"] == group["group_id"]
    assert await sockets[0].nothing(0.2)


@pytest.mark.gen_test(timeout=30)
async def test_4_the_sender_never_receives_its_own_push(api):
    a, b = await api.register(), await api.register()
    group = await api.create_group(a, "g", [b])
    ws_a1, ws_a2 = await api.connect(a), await api.connect(a)  # two devices of the sender
    ws_b = await api.connect(b)
    await api.send(a, b, "private")
    await api.send_group(a, group["group_id"], "group")
    await api.send(a, a, "note to self")
    await ws_b.take(2)
    assert await ws_a1.nothing(0.3) and await ws_a2.nothing(0.01)


@pytest.mark.gen_test(timeout=30)
async def test_5_an_offline_member_does_not_disturb_delivery(api):
    online = [await api.register() for _ in range(2)]
    offline = await api.register()
    sender = await api.register()
    group = await api.create_group(sender, "g", [online[0], offline, online[1]])
    # The offline member was online once and went away: no stale socket may get in the way.
    gone = await api.connect(offline)
    gone.close()
    await gone.closed()
    sockets = [await api.connect(m) for m in online]
    ids = [(await api.send_group(sender, group["group_id"], f"m{i}")).body["id"] for i in range(3)]
    for ws in sockets:
        assert [f["id"] for f in await ws.take(3)] == ids
    pulled, _ = await api.pull_all(offline)
    assert [m["id"] for m in pulled] == ids


@pytest.mark.gen_test(timeout=30)
async def test_6_the_pushed_message_has_every_field(api):
    a, b = await api.register(), await api.register()
    group = await api.create_group(a, "g", [b])
    ws_b = await api.connect(b)
    private = (await api.send(a, b, "private one")).body
    frame = await ws_b.next()
    assert set(frame) == PRIVATE
    assert {k: frame[k] for k in PRIVATE - {"cursor"}} == private
    assert frame["type"] == "private" and frame["from_user_id"] == a.user_id and frame["to_user_id"] == b.user_id
    assert isinstance(frame["created_at"], int) and abs(frame["created_at"] - time.time()) < 60
    assert isinstance(frame["cursor"], str) and frame["cursor"]
    grouped = (await api.send_group(a, group["group_id"], "group one")).body
    frame2 = await ws_b.next()
    assert set(frame2) == GROUP
    assert {k: frame2[k] for k in GROUP - {"cursor"}} == grouped
    assert frame2["type"] == "group" and frame2["group_id"] == group["group_id"]
    assert isinstance(frame2["cursor"], str) and frame2["cursor"] != frame["cursor"]


@pytest.mark.gen_test(timeout=30)
async def test_7_after_a_disconnect_and_reconnect_the_socket_receives_again(api):
    a, b = await api.register(), await api.register()
    ws = await api.connect(b)
    await api.send(a, b, "first")
    assert (await ws.next())["content"] == "first"
    ws.close()
    await ws.closed()
    ws = await api.connect(b)
    sent = await api.send(a, b, "again")
    assert (await ws.next())["id"] == sent.body["id"]
