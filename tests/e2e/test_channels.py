"""Broadcast channels through the running app (issue 18, point 5; docs/design/large-groups.md,
section 9), in both modes, with COURIER_LARGE_GROUP=3: a channel is large from creation
whatever its size, and only its owner posts in it; its posts reach every member's sockets
and pulls once."""
from __future__ import annotations

import pytest

from tests.e2e.support import assert_error, with_settings

pytestmark = with_settings(large_group=3)

GROUPS = "/api/v1/groups"


async def channel(api, owner, members=(), name: str = "news") -> dict:
    r = await api.call("POST", GROUPS, {"name": name, "member_ids": [m.user_id for m in members],
                                        "kind": "channel"}, owner.token)
    assert r.status == 201, r
    return r.body


def posts(events: list, group_id: str) -> list:
    return [e for e in events if e["type"] == "group" and e["group_id"] == group_id]


@pytest.mark.gen_test(timeout=30)
async def test_a_channel_is_created_with_its_kind_and_count(api):
    owner, bob = await api.register(), await api.register()
    body = await channel(api, owner, [bob])
    assert (body["kind"], body["member_count"], body["member_ids"]) == ("channel", 2, [owner.user_id, bob.user_id])
    r = await api.call("GET", f"{GROUPS}/{body['group_id']}", None, bob.token)
    assert r.status == 200 and r.body == body, r
    plain = await api.call("POST", GROUPS, {"name": "plain", "kind": "group"}, owner.token)
    assert plain.status == 201 and plain.body["kind"] == "group", plain
    listed = await api.call("GET", GROUPS, None, owner.token)
    assert {g["group_id"]: g["kind"] for g in listed.body["groups"]} == {
        body["group_id"]: "channel", plain.body["group_id"]: "group"}


@pytest.mark.gen_test(timeout=30)
async def test_any_other_kind_is_invalid_input_and_null_is_a_group(api):
    owner = await api.register()
    for kind in ("Channel", "", "broadcast", 1, ["channel"]):
        assert_error(await api.call("POST", GROUPS, {"name": "x", "kind": kind}, owner.token), 400, "invalid_input")
    r = await api.call("POST", GROUPS, {"name": "x", "kind": None}, owner.token)
    assert r.status == 201 and r.body["kind"] == "group", r


@pytest.mark.gen_test(timeout=60)
async def test_the_owners_posts_reach_every_member_once_and_others_may_not_post(api):
    owner, bob, carol, stranger = [await api.register() for _ in range(4)]
    live = await api.connect(bob)
    events = await api.connect(carol, events=True)
    gid = (await channel(api, owner, [bob, carol]))["group_id"]  # 3 members: large all the same
    assert (await events.next())["type"] == "group_updated"
    bodies = []
    for i in range(3):
        r = await api.send_group(owner, gid, f"p{i}", client_msg_id=f"k{i}")
        assert r.status == 201, r
        bodies.append(r.body)
    assert [b["seq"] for b in bodies] == [1, 2, 3]
    pushed = await live.take(3)
    assert [m["id"] for m in pushed] == [b["id"] for b in bodies]
    assert all(m["cursor"].startswith("2.") for m in pushed), "a channel keeps a stream of its own"
    assert [m["id"] for m in await events.take(3)] == [b["id"] for b in bodies]
    # Members post nothing: 403 not_allowed, and nothing is written; strangers: not_a_member.
    assert_error(await api.send_group(bob, gid, "me too"), 403, "not_allowed")
    assert_error(await api.send_group(carol, gid, "me too", client_msg_id="c1"), 403, "not_allowed")
    assert_error(await api.send_group(stranger, gid, "hi"), 403, "not_a_member")
    assert await live.nothing() and await events.nothing()
    for member in (bob, carol):
        pulled, _ = await api.pull_all(member)
        assert [m["id"] for m in posts(pulled, gid)] == [b["id"] for b in bodies]
    history = await api.history_all(bob, f"/groups/{gid}")
    assert [m["id"] for m in history] == [b["id"] for b in reversed(bodies)]
    after = await api.send_group(owner, gid, "p3")
    assert after.status == 201 and after.body["seq"] == 4, after  # the refusals took no seq
