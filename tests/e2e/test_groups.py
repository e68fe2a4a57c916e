"""Groups over HTTP: create, list, get (members only), add, leave, remove, send, and
group pushes to every online member except the sender."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.e2e.support import assert_error, is_uuid, with_settings

GROUPS = "/api/v1/groups"
GROUP_FIELDS = {"type", "id", "group_id", "from_user_id", "content", "created_at", "seq"}


@pytest.mark.gen_test(timeout=30)
async def test_create_answers_201_with_the_group(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    r = await api.call("POST", GROUPS, {"name": "Team <Rocket> 🚀 ", "member_ids": [b.user_id, c.user_id]}, a.token)
    assert r.status == 201, r
    assert set(r.body) == {"group_id", "name", "owner_id", "member_ids", "kind", "member_count"}
    assert (r.body["kind"], r.body["member_count"]) == ("group", 3)
    assert is_uuid(r.body["group_id"])
    assert r.body["name"] == "Team <Rocket> 🚀 "
    assert r.body["owner_id"] == a.user_id
    assert r.body["member_ids"] == [a.user_id, b.user_id, c.user_id]
    # member_ids is optional; the owner is always a member, listed once.
    alone = await api.call("POST", GROUPS, {"name": "solo"}, a.token)
    assert alone.status == 201 and alone.body["member_ids"] == [a.user_id], alone
    dup = await api.call("POST", GROUPS, {"name": "dup", "member_ids": [a.user_id, b.user_id, b.user_id]}, a.token)
    assert dup.status == 201 and dup.body["member_ids"] == [a.user_id, b.user_id], dup


@pytest.mark.gen_test(timeout=30)
async def test_create_validates_its_input(api):
    a = await api.register()
    for body in ({}, {"name": ""}, {"name": 42}, {"name": None}, {"name": "x", "member_ids": "not a list"},
                 {"name": "x", "member_ids": ["not-a-uuid"]}, {"name": "x", "member_ids": [42]},
                 {"name": "x", "member_ids": {"a": 1}}):
        assert_error(await api.call("POST", GROUPS, body, a.token), 400)
    assert_error(await api.call("POST", GROUPS, {"name": "x", "member_ids": [str(uuid.uuid4())]}, a.token), 404)
    assert_error(await api.call("POST", GROUPS, {"name": "x"}), 401)
    assert_error(await api.call("POST", GROUPS, raw=b"[1]", token=a.token), 400)
    r = await api.call("GET", GROUPS, token=a.token)
    assert r.status == 200 and r.body == {"groups": [], "next_before": None}, r


@pytest.mark.gen_test(timeout=30)
async def test_list_shows_the_callers_groups(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    g1 = await api.create_group(a, "one", [b])
    g2 = await api.create_group(b, "two", [])
    r = await api.call("GET", GROUPS, token=b.token)
    assert r.status == 200 and r.body == {"groups": [g2, g1], "next_before": None}, r  # newest joined first
    assert (await api.call("GET", GROUPS, token=a.token)).body == {"groups": [g1], "next_before": None}
    assert (await api.call("GET", GROUPS, token=c.token)).body == {"groups": [], "next_before": None}
    assert_error(await api.call("GET", GROUPS), 401)


@pytest.mark.gen_test(timeout=30)
async def test_get_is_for_members_only(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    group = await api.create_group(a, "members", [b])
    path = f"{GROUPS}/{group['group_id']}"
    for member in (a, b):
        r = await api.call("GET", path, token=member.token)
        assert r.status == 200 and r.body == group, r
    assert_error(await api.call("GET", path, token=c.token), 403)
    assert_error(await api.call("GET", f"{GROUPS}/{uuid.uuid4()}", token=a.token), 404, "group_not_found")
    assert_error(await api.call("GET", f"{GROUPS}/not-a-uuid", token=a.token), 400)
    assert_error(await api.call("GET", path), 401)


@pytest.mark.gen_test(timeout=30)
async def test_members_add_members(api):
    a, b, c, d = [await api.register() for _ in range(4)]
    group = await api.create_group(a, "grow", [b])
    members = f"{GROUPS}/{group['group_id']}/members"
    r = await api.call("POST", members, {"user_id": c.user_id}, b.token)  # any member may add
    assert r.status == 200, r
    assert r.body == {**group, "member_ids": [a.user_id, b.user_id, c.user_id], "member_count": 3}
    assert_error(await api.call("POST", members, {"user_id": c.user_id}, a.token), 409, "already_a_member")
    assert_error(await api.call("POST", members, {"user_id": a.user_id}, c.token), 409, "already_a_member")
    assert_error(await api.call("POST", members, {"user_id": c.user_id}, d.token), 403)  # not a member
    assert_error(await api.call("POST", members, {"user_id": str(uuid.uuid4())}, a.token), 404)
    assert_error(await api.call("POST", members, {"user_id": "nope"}, a.token), 400)
    assert_error(await api.call("POST", members, {}, a.token), 400)
    assert_error(await api.call("POST", f"{GROUPS}/{uuid.uuid4()}/members", {"user_id": d.user_id}, a.token), 404)
    r = await api.call("GET", f"{GROUPS}/{group['group_id']}", token=c.token)
    assert r.status == 200 and r.body["member_ids"] == [a.user_id, b.user_id, c.user_id], r


@pytest.mark.gen_test(timeout=30)
async def test_leave_and_remove(api):
    a, b, c, d = [await api.register() for _ in range(4)]
    group = await api.create_group(a, "shrink", [b, c, d])
    gid = group["group_id"]

    def member(user):
        return f"{GROUPS}/{gid}/members/{user.user_id}"

    # A member may not remove another one.
    assert_error(await api.call("DELETE", member(c), token=b.token), 403)
    # Leaving.
    r = await api.call("DELETE", member(b), token=b.token)
    assert r.status == 204 and r.body is None, r
    assert_error(await api.call("GET", f"{GROUPS}/{gid}", token=b.token), 403)
    assert_error(await api.call("DELETE", member(b), token=b.token), 403)  # no longer a member
    # The owner removes.
    r = await api.call("DELETE", member(c), token=a.token)
    assert r.status == 204, r
    r = await api.call("GET", f"{GROUPS}/{gid}", token=a.token)
    assert r.body["member_ids"] == [a.user_id, d.user_id], r
    assert_error(await api.call("DELETE", member(c), token=a.token), 404)  # not a member any more
    assert_error(await api.call("DELETE", f"{GROUPS}/{gid}/members/nope", token=a.token), 400)
    assert_error(await api.call("DELETE", f"{GROUPS}/{uuid.uuid4()}/members/{a.user_id}", token=a.token), 404)
    # The owner leaves: the longest-standing remaining member takes over.
    assert (await api.call("DELETE", member(a), token=a.token)).status == 204
    r = await api.call("GET", f"{GROUPS}/{gid}", token=d.token)
    assert r.status == 200 and r.body["owner_id"] == d.user_id and r.body["member_ids"] == [d.user_id], r
    assert (await api.call("GET", GROUPS, token=a.token)).body == {"groups": [], "next_before": None}


@pytest.mark.gen_test(timeout=30)
async def test_group_send_answers_201_and_only_members_may_send(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    group = await api.create_group(a, "send", [b])
    gid = group["group_id"]
    r = await api.send_group(a, gid, "hi group")
    assert r.status == 201, r
    assert set(r.body) == GROUP_FIELDS
    assert r.body["type"] == "group" and r.body["group_id"] == gid
    assert r.body["from_user_id"] == a.user_id and r.body["content"] == "hi group"
    assert_error(await api.send_group(c, gid, "let me in"), 403)
    assert_error(await api.send_group(a, str(uuid.uuid4()), "hi"), 404)
    assert_error(await api.send_group(a, "not-a-uuid", "hi"), 400)
    assert_error(await api.send_group(a, gid, ""), 400)
    assert_error(await api.call("POST", f"{GROUPS}/{gid}/messages", raw=b"nope", token=a.token), 400)
    assert_error(await api.call("POST", f"{GROUPS}/{gid}/messages", {"content": "x"}), 401)
    # A member who left may no longer send, and no longer receives.
    assert (await api.call("DELETE", f"{GROUPS}/{gid}/members/{b.user_id}", token=b.token)).status == 204
    assert_error(await api.send_group(b, gid, "I left"), 403)
    await api.send_group(a, gid, "after b left")
    pulled, _ = await api.pull_all(b)
    assert [m["content"] for m in pulled] == ["hi group"]


@pytest.mark.gen_test(timeout=30)
async def test_group_push_reaches_every_online_member_but_the_sender(api):
    a, b, c, d = [await api.register() for _ in range(4)]
    outsider = await api.register()
    group = await api.create_group(a, "push", [b, c, d])  # d stays offline
    sockets = {who.user_id: await api.connect(who) for who in (a, b, c, outsider)}
    r = await api.send_group(b, group["group_id"], "to the group")
    assert r.status == 201, r
    for who in (a, c):
        frame = await sockets[who.user_id].next()
        assert set(frame) == GROUP_FIELDS | {"cursor"}
        assert {k: v for k, v in frame.items() if k != "cursor"} == r.body
    assert await sockets[b.user_id].nothing(0.2)  # the sender
    assert await sockets[outsider.user_id].nothing(0.05)
    # The offline member finds it in the pull.
    pulled, _ = await api.pull_all(d)
    assert [m["id"] for m in pulled] == [r.body["id"]]
    # A newly added member receives from now on.
    await api.call("POST", f"{GROUPS}/{group['group_id']}/members", {"user_id": outsider.user_id}, a.token)
    r2 = await api.send_group(a, group["group_id"], "welcome")
    assert (await sockets[outsider.user_id].next())["id"] == r2.body["id"]


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_adds_of_one_user_add_it_once(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    group = await api.create_group(a, "race", [b])
    members = f"{GROUPS}/{group['group_id']}/members"
    replies = await asyncio.gather(*(api.call("POST", members, {"user_id": c.user_id}, who.token)
                                     for who in (a, b, a, b)))
    assert sorted(r.status for r in replies) == [200, 409, 409, 409], replies
    r = await api.call("GET", f"{GROUPS}/{group['group_id']}", token=c.token)
    assert r.body["member_ids"] == [a.user_id, b.user_id, c.user_id], r


@with_settings(large_group=0)
@pytest.mark.gen_test(timeout=30)
async def test_a_channel_is_refused_while_large_groups_are_off(api):
    # COURIER_LARGE_GROUP=0: nothing would carry a channel's stream.
    a = await api.register()
    r = await api.call("POST", GROUPS, {"name": "news", "kind": "channel"}, a.token)
    assert_error(r, 400, "invalid_input")
    assert "COURIER_LARGE_GROUP" in r.body["error"]["message"]
    assert (await api.call("GET", GROUPS, None, a.token)).body["groups"] == []
