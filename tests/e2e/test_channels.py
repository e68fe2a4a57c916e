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


async def invite(api, actor, group_id: str, user) -> object:
    return await api.call("POST", f"{GROUPS}/{group_id}/invitations", {"user_id": user.user_id}, actor.token)


async def join(api, user, group_id: str) -> object:
    return await api.call("POST", f"{GROUPS}/{group_id}/members", {"user_id": user.user_id}, user.token)


@pytest.mark.gen_test(timeout=60)
async def test_an_invitee_is_told_joins_by_itself_and_receives_the_posts_after(api):
    owner, bob, carol = [await api.register() for _ in range(3)]
    gid = (await channel(api, owner, [bob], name="daily news"))["group_id"]
    before = await api.send_group(owner, gid, "before carol")
    assert before.status == 201, before
    told = await api.connect(carol, events=True)
    original = await api.connect(carol)
    r = await invite(api, owner, gid, carol)
    assert r.status == 201 and r.body == {"group_id": gid, "user_id": carol.user_id, "invited_by": owner.user_id}, r
    event = await told.next()
    assert {k: v for k, v in event.items() if k not in ("id", "created_at", "cursor")} == {
        "type": "group_invited", "group_id": gid, "user_id": carol.user_id, "name": "daily news",
        "by_user_id": owner.user_id}
    assert await original.nothing()  # the original view shows messages only
    again = await invite(api, owner, gid, carol)
    assert again.status == 200 and again.body == r.body, again
    assert await told.nothing()  # told once
    # Not a member yet: the invitee reads nothing of the channel.
    assert_error(await api.call("GET", f"{GROUPS}/{gid}", None, carol.token), 403, "not_a_member")
    joined = await join(api, carol, gid)
    assert joined.status == 200, joined
    assert (joined.body["member_ids"], joined.body["member_count"]) == ([owner.user_id, bob.user_id, carol.user_id], 3)
    added = await told.next()
    assert (added["type"], added["user_id"], added["by_user_id"]) == ("member_added", carol.user_id, carol.user_id)
    after = await api.send_group(owner, gid, "after carol")
    assert after.status == 201, after
    assert (await original.next())["id"] == after.body["id"]
    assert (await told.next())["id"] == after.body["id"]
    events, _ = await api.events_all(carol)
    assert [e["type"] for e in events] == ["group_invited", "member_added", "group"]
    assert [m["id"] for m in posts(events, gid)] == [after.body["id"]]
    # The invitation is spent: once out, carol needs another to come back.
    r = await api.call("DELETE", f"{GROUPS}/{gid}/members/{carol.user_id}", None, carol.token)
    assert r.status == 204, r
    assert_error(await join(api, carol, gid), 403, "not_a_member")


@pytest.mark.gen_test(timeout=60)
async def test_only_the_owner_invites_and_only_oneself_joins_by_invitation(api):
    owner, bob, carol, dave = [await api.register() for _ in range(4)]
    gid = (await channel(api, owner, [bob]))["group_id"]
    assert_error(await invite(api, bob, gid, carol), 403, "forbidden")
    assert_error(await invite(api, dave, gid, carol), 403, "not_a_member")
    assert_error(await invite(api, owner, gid, bob), 409, "already_a_member")
    assert_error(await api.call("POST", f"{GROUPS}/{gid}/invitations", {"user_id": "0" * 8}, owner.token),
                 400, "invalid_input")
    unknown = {"user_id": "00000000-0000-4000-8000-000000000000"}
    assert_error(await api.call("POST", f"{GROUPS}/{gid}/invitations", unknown, owner.token), 404, "user_not_found")
    assert_error(await api.call("POST", f"{GROUPS}/{unknown['user_id']}/invitations", {"user_id": carol.user_id},
                                owner.token), 404, "group_not_found")
    assert_error(await join(api, carol, gid), 403, "not_a_member")  # not invited
    assert (await invite(api, owner, gid, carol)).status == 201
    r = await api.call("POST", f"{GROUPS}/{gid}/members", {"user_id": dave.user_id}, carol.token)
    assert_error(r, 403, "not_a_member")  # an invitee adds itself, no one else
    events, _ = await api.events_all(carol)
    assert [e["type"] for e in events] == ["group_invited"]
    assert (await api.events_all(dave))[0] == []


@pytest.mark.gen_test(timeout=60)
async def test_the_members_of_a_channel_see_posts_only_and_a_joiner_its_own_join(api):
    owner, bob, carol, dave = [await api.register() for _ in range(4)]
    watcher = await api.connect(bob, events=True)
    gid = (await channel(api, owner, [bob]))["group_id"]
    assert (await watcher.next())["type"] == "group_updated"
    r = await api.call("POST", f"{GROUPS}/{gid}/members", {"user_id": carol.user_id}, bob.token)  # a member adds
    assert r.status == 200, r
    assert (await invite(api, owner, gid, dave)).status == 201
    assert (await join(api, dave, gid)).status == 200
    r = await api.call("DELETE", f"{GROUPS}/{gid}/members/{carol.user_id}", None, carol.token)
    assert r.status == 204, r
    post = await api.send_group(owner, gid, "only this")
    assert post.status == 201, post
    assert (await watcher.next())["id"] == post.body["id"]  # no join nor leave before it
    assert await watcher.nothing()
    for member, expected in ((bob, ["group_updated", "group"]), (owner, ["group_updated", "group"]),
                             (dave, ["group_invited", "member_added", "group"])):
        events, _ = await api.events_all(member)
        assert [e["type"] for e in events] == expected, member
    events, _ = await api.events_all(carol)
    assert [(e["type"], e["user_id"]) for e in events] == [("member_added", carol.user_id),
                                                           ("member_removed", carol.user_id)]
