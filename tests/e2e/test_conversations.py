"""The conversation list (GET /api/v1/conversations) and read markers (POST .../read),
in both modes (production: after the worker stored what was sent, courier.settle())."""
from __future__ import annotations

import uuid

import pytest

from tests.e2e.support import assert_error

CONVERSATIONS = "/api/v1/conversations"


async def listing(api, account, **query):
    path = CONVERSATIONS + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    r = await api.call("GET", path, token=account.token)
    assert r.status == 200, r
    return r.body


def key(c: dict) -> str:
    return c.get("user_id") if c["type"] == "private" else c["group_id"]


@pytest.mark.gen_test(timeout=60)
async def test_the_list_shows_every_chat_most_recent_first(api, courier):
    a, b, c = await api.register(), await api.register(), await api.register()
    assert await listing(api, a) == {"conversations": [], "next_before": None}
    sent_only = await api.send(a, b, "hello b")  # a only sent here
    assert sent_only.status == 201, sent_only
    await api.send(c, a, "hello a")
    empty = await api.create_group(c, "empty", [a])  # added, no message yet
    await courier.settle()
    body = await listing(api, a)
    assert body["next_before"] is None
    first, second, third = body["conversations"]
    assert first == {"type": "group", "group_id": empty["group_id"], "name": "empty", "last_message": None,
                     "last_seq": 0, "read_seq": 0, "unread_count": 0, "updated_at": first["updated_at"]}
    assert second["type"] == "private" and second["user_id"] == c.user_id and second["username"] == c.username
    assert second["last_message"]["content"] == "hello a" and second["last_seq"] == 1
    assert second["unread_count"] == 1 and second["read_seq"] == 0
    assert third["user_id"] == b.user_id and third["last_message"]["id"] == sent_only.body["id"]
    assert third["unread_count"] == 0 and third["read_seq"] == 1  # one's own send is read
    assert isinstance(third["updated_at"], int)
    # b sees the chat a started; a new message moves it to the top.
    assert [key(x) for x in (await listing(api, b))["conversations"]] == [a.user_id]
    await api.send(b, a, "back")
    await api.send_group(a, empty["group_id"], "now a message")  # not empty any more
    await courier.settle()
    body = await listing(api, a)
    assert [key(x) for x in body["conversations"]] == [empty["group_id"], b.user_id, c.user_id]
    group = body["conversations"][0]
    assert group["last_message"]["content"] == "now a message" and group["last_seq"] == 1
    assert group["unread_count"] == 0
    assert body["conversations"][1]["unread_count"] == 1
    c_view = (await listing(api, c))["conversations"]
    assert c_view[0]["group_id"] == empty["group_id"] and c_view[0]["unread_count"] == 1


@pytest.mark.gen_test(timeout=60)
async def test_the_list_pages_and_validates(api, courier):
    a = await api.register()
    peers = [await api.register() for _ in range(5)]
    for peer in peers:
        await api.send(peer, a, "hi")
    await courier.settle()
    seen, before = [], None
    while True:
        body = await listing(api, a, limit=2, **({"before": before} if before else {}))
        assert len(body["conversations"]) <= 2
        seen += [key(x) for x in body["conversations"]]
        before = body["next_before"]
        if before is None:
            break
    assert seen == [p.user_id for p in reversed(peers)]
    some = str(uuid.uuid4())
    for bad in ("limit=0", "limit=x", "limit=201", "before=nonsense", "before=12_x:y", "before=12_g:notauuid",
                "before=12_g:", f"before=12_g:{some}:extra", f"before=12_p:{some}", f"before=12_g:{some.upper()}"):
        assert_error(await api.call("GET", CONVERSATIONS + "?" + bad, token=a.token), 400)
    assert_error(await api.call("GET", CONVERSATIONS), 401)


@pytest.mark.gen_test(timeout=60)
async def test_groups_appear_when_added_and_disappear_when_removed(api, courier):
    a, b = await api.register(), await api.register()
    group = await api.create_group(a, "team")
    assert (await listing(api, b))["conversations"] == []
    await api.send_group(a, group["group_id"], "before b")
    await courier.settle()
    r = await api.call("POST", f"/api/v1/groups/{group['group_id']}/members", {"user_id": b.user_id}, a.token)
    assert r.status == 200, r
    (entry,) = (await listing(api, b))["conversations"]
    assert entry["group_id"] == group["group_id"] and entry["unread_count"] == 0  # older messages are not unread
    r = await api.call("DELETE", f"/api/v1/groups/{group['group_id']}/members/{b.user_id}", token=b.token)
    assert r.status == 204, r
    assert (await listing(api, b))["conversations"] == []


@pytest.mark.gen_test(timeout=60)
async def test_read_markers_move_forward_and_reach_the_readers_other_devices(api, courier):
    a, b = await api.register(), await api.register()
    for text in ("one", "two", "three"):
        await api.send(b, a, text)
    group = await api.create_group(b, "team", [a])
    await api.send_group(b, group["group_id"], "g1")
    await courier.settle()
    other_device = await api.connect(a, events=True)
    original = await api.connect(a)
    read = f"{CONVERSATIONS}/{b.user_id}/read"
    r = await api.call("POST", read, {"seq": 2}, a.token)
    assert r.status == 200 and r.body == {"read_seq": 2, "unread_count": 1}, r
    event = await other_device.next()
    assert event == {"type": "read", "id": event["id"], "conversation": {"type": "private", "user_id": b.user_id},
                     "user_id": a.user_id, "seq": 2, "cursor": event["cursor"]}
    # Lower or equal: no change, no second event.
    for seq in (1, 2):
        r = await api.call("POST", read, {"seq": seq}, a.token)
        assert r.status == 200 and r.body == {"read_seq": 2, "unread_count": 1}, r
    assert await other_device.nothing()
    assert await original.nothing()  # the original view never shows read events
    assert_error(await api.call("POST", read, {"seq": 4}, a.token), 400)  # beyond the last
    for body in ({}, {"seq": "1"}, {"seq": -1}, {"seq": True}):
        assert_error(await api.call("POST", read, body, a.token), 400)
    assert_error(await api.call("POST", f"{CONVERSATIONS}/{uuid.uuid4()}/read", {"seq": 0}, a.token), 404)
    assert_error(await api.call("POST", read, {"seq": 1}), 401)
    group_read = f"/api/v1/groups/{group['group_id']}/read"
    r = await api.call("POST", group_read, {"seq": 1}, a.token)
    assert r.status == 200 and r.body == {"read_seq": 1, "unread_count": 0}, r
    event = await other_device.next()
    assert event["conversation"] == {"type": "group", "group_id": group["group_id"]} and event["seq"] == 1
    outsider = await api.register()
    assert_error(await api.call("POST", group_read, {"seq": 1}, outsider.token), 403)
    assert_error(await api.call("POST", f"/api/v1/groups/{uuid.uuid4()}/read", {"seq": 1}, a.token), 404)
    assert_error(await api.call("POST", group_read, {"seq": 2}, a.token), 400)
    conversations = (await listing(api, a))["conversations"]
    assert [(x["read_seq"], x["unread_count"]) for x in conversations] == [(1, 0), (2, 1)]
    # In the event view (GET /events) too; never in the original pull.
    events = (await api.events(a)).body["events"]
    assert [e["type"] for e in events if e["type"] == "read"] == ["read", "read"]
    assert all(m["type"] != "read" for m in (await api.pull(a)).body["messages"])
