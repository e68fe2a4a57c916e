"""Presence (issue 16 point 2), in both modes: asked for with presence_subscribe (one
frame per id at once, then every change), online while any socket is open, offline a
grace period after the last one closed (a reload within it changes nothing), hidden by
the user's choice, and GET /users/{id}/presence."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.e2e.support import assert_error, with_settings

QUICK = with_settings(presence_grace=1.0)  # offline soon after the last socket closes
ME = "/api/v1/users/me"


def subscribe(ws, *accounts) -> None:
    ws.send({"type": "presence_subscribe", "user_ids": [a.user_id for a in accounts]})


async def becomes(ws, account, status: str) -> dict:
    """The frames until `account` shows `status` (its socket's arrival is told to the
    store beside the socket's opening, so a subscription right after may see it a moment
    before)."""
    while True:
        frame = await ws.next(timeout=10)
        assert frame["type"] == "presence" and frame["user_id"] == account.user_id, frame
        if frame["status"] == status:
            return frame


async def presence(api, account, token) -> dict:
    r = await api.call("GET", f"/api/v1/users/{account.user_id}/presence", token=token)
    assert r.status == 200, r
    return r.body


@QUICK
@pytest.mark.gen_test(timeout=60)
async def test_a_subscription_is_answered_at_once_then_told_every_change(api):
    a, b, c = [await api.register() for _ in range(3)]
    watcher = await api.connect(a, events=True)
    subscribe(watcher, b, c)
    assert await watcher.take(2) == [
        {"type": "presence", "user_id": b.user_id, "status": "offline", "last_seen": None},
        {"type": "presence", "user_id": c.user_id, "status": "offline", "last_seen": None},
    ]
    b_ws = await api.connect(b)  # either view counts
    frame = await watcher.next()
    assert frame["user_id"] == b.user_id and frame["status"] == "online", frame
    assert abs(frame["last_seen"] - time.time()) < 5
    assert (await presence(api, b, a.token))["status"] == "online"
    b_ws.close()
    frame = await watcher.next(timeout=10)  # after the grace
    assert frame["user_id"] == b.user_id and frame["status"] == "offline" and isinstance(frame["last_seen"], int)
    assert await presence(api, b, a.token) == frame
    assert await watcher.nothing(0.3)


@with_settings(presence_grace=4.0)  # a reconnect on a loaded machine takes well under it
@pytest.mark.gen_test(timeout=60)
async def test_a_reload_within_the_grace_changes_nothing(api):
    a, b = await api.register(), await api.register()
    b_ws = await api.connect(b, events=True)
    watcher = await api.connect(a, events=True)
    subscribe(watcher, b)
    await becomes(watcher, b, "online")
    b_ws.close()
    await asyncio.sleep(0.2)
    b_ws = await api.connect(b, events=True)  # the page reloaded
    assert await watcher.nothing(6.5)  # past the grace and an expiry round: still online
    assert (await presence(api, b, a.token))["status"] == "online"
    # Two sockets: closing one leaves the user online.
    second = await api.connect(b, events=True)
    second.close()
    assert await watcher.nothing(6.5)


@QUICK
@pytest.mark.gen_test(timeout=60)
async def test_a_new_subscription_replaces_the_old_one(api):
    a, b, c = [await api.register() for _ in range(3)]
    watcher = await api.connect(a, events=True)
    subscribe(watcher, b)
    assert (await watcher.next())["user_id"] == b.user_id
    subscribe(watcher, c)
    assert (await watcher.next())["user_id"] == c.user_id
    await api.connect(b)
    assert await watcher.nothing(0.5)  # b is no longer watched
    await api.connect(c)
    assert (await watcher.next())["user_id"] == c.user_id
    subscribe(watcher)  # none
    assert await watcher.nothing(0.3)


@QUICK
@pytest.mark.gen_test(timeout=60)
async def test_a_user_may_hide_its_presence(api):
    a, b = await api.register(), await api.register()
    await api.connect(b, events=True)
    watcher = await api.connect(a, events=True)
    subscribe(watcher, b)
    await becomes(watcher, b, "online")
    r = await api.call("PATCH", ME, {"show_presence": False}, b.token)
    assert r.status == 200 and r.body == {"user_id": b.user_id, "username": b.username,
                                          "send_read_receipts": True, "show_presence": False}, r
    assert await watcher.next() == {"type": "presence", "user_id": b.user_id, "status": "offline", "last_seen": None}
    assert await presence(api, b, a.token) == {"type": "presence", "user_id": b.user_id, "status": "offline",
                                              "last_seen": None}
    other = await api.connect(a, events=True)  # a new subscription sees it hidden too
    subscribe(other, b)
    assert (await other.next())["status"] == "offline"
    r = await api.call("GET", ME + "/settings", token=b.token)
    assert r.status == 200 and r.body == {"send_read_receipts": True, "show_presence": False}, r
    r = await api.call("PATCH", ME, {"show_presence": True}, b.token)
    assert r.status == 200 and r.body["show_presence"] is True
    await becomes(watcher, b, "online")


@QUICK
@pytest.mark.gen_test(timeout=60)
async def test_bad_subscriptions_are_answered_with_an_error(api):
    a = await api.register()
    ws = await api.connect(a, events=True)
    for frame in ({"type": "presence_subscribe"}, {"type": "presence_subscribe", "user_ids": "x"},
                  {"type": "presence_subscribe", "user_ids": [1]},
                  {"type": "presence_subscribe", "user_ids": [str(uuid.uuid4()) for _ in range(201)]}):
        ws.send(frame)
        answer = await ws.next()
        assert answer["type"] == "error" and answer["code"] == "invalid_input", (frame, answer)
    ws.send({"type": "ping"})
    assert await ws.next() == {"type": "pong"}
    # 200 is allowed; an id nobody has is never seen.
    unknown = str(uuid.uuid4())
    ws.send({"type": "presence_subscribe", "user_ids": [unknown] * 3})
    assert await ws.next() == {"type": "presence", "user_id": unknown, "status": "offline", "last_seen": None}
    assert await ws.nothing(0.2)  # once per id


@QUICK
@pytest.mark.gen_test(timeout=60)
async def test_the_presence_endpoint(api):
    a, b = await api.register(), await api.register()
    assert await presence(api, b, a.token) == {"type": "presence", "user_id": b.user_id, "status": "offline",
                                              "last_seen": None}
    assert_error(await api.call("GET", f"/api/v1/users/{uuid.uuid4()}/presence", token=a.token), 404,
                 "user_not_found")
    assert_error(await api.call("GET", f"/api/v1/users/{b.user_id}/presence"), 401)
    for body in ({}, {"show_presence": "no"}, {"show_presence": False, "other": 1}, []):
        assert_error(await api.call("PATCH", ME, body, a.token), 400)
