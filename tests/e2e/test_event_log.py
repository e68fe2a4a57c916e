"""The event log (issue 14), in both modes: one's own sends and group changes are in the
log; the event view (GET /api/v1/events, /ws?events=1) shows them, the original view
(GET /messages, the default /ws) does not; a cursor of one view resumes the other."""
from __future__ import annotations

import pytest

from tests.e2e.support import assert_error


def kinds(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


@pytest.mark.gen_test(timeout=30)
async def test_own_sends_reach_the_senders_other_devices_in_the_event_view_only(api):
    a, b = await api.register(), await api.register()
    phone = await api.connect(a, events=True)
    laptop = await api.connect(a)  # the original view
    sent = (await api.send(a, b, "from the laptop", client_msg_id="c-1")).body
    frame = await phone.next()
    assert frame["id"] == sent["id"] and frame["client_msg_id"] == "c-1" and frame["from_user_id"] == a.user_id
    assert frame["cursor"]
    assert await laptop.nothing()  # the original view: the sender never gets its own push
    # The recipient's frame never carries the sender's client_msg_id.
    r = await api.events(b)
    assert r.status == 200, r
    assert set(r.body) == {"events", "next_cursor", "has_more"}
    [received] = r.body["events"]
    assert received["id"] == sent["id"] and "client_msg_id" not in received
    # The pull: the event view has the own send, the original view does not.
    assert [e["id"] for e in (await api.events(a)).body["events"]] == [sent["id"]]
    assert (await api.pull(a)).body["messages"] == []


@pytest.mark.gen_test(timeout=30)
async def test_a_note_to_oneself_stays_in_the_original_pull_and_is_one_entry(api):
    a = await api.register()
    note = (await api.send(a, a, "remember the milk")).body
    assert [m["id"] for m in (await api.pull(a)).body["messages"]] == [note["id"]]
    assert [e["id"] for e in (await api.events(a)).body["events"]] == [note["id"]]


@pytest.mark.gen_test(timeout=60)
async def test_the_original_pull_passes_over_own_sends_and_pages_exactly_once(api):
    a, b = await api.register(), await api.register()
    expected = []
    for i in range(30):
        await api.send(a, b, f"mine {i}")
        if i % 4 == 0:
            expected.append((await api.send(b, a, f"theirs {i}")).body["id"])
    got, cursor = await api.pull_all(a, limit=2)
    assert [m["id"] for m in got] == expected
    # After the last message's cursor: no message from others; the event view still has
    # the sender's own sends that came after it.
    assert (await api.pull(a, cursor)).body["messages"] == []
    after = (await api.events(a, cursor)).body["events"]
    assert after and all(e["from_user_id"] == a.user_id for e in after)
    assert [e["content"] for e in after] == ["mine 29"]  # the last "theirs" came after "mine 28"


@pytest.mark.gen_test(timeout=30)
async def test_group_changes_reach_every_member_the_one_added_or_removed_included(api):
    owner, bob, carol = await api.register(), await api.register(), await api.register()
    sockets = {who.user_id: await api.connect(who, events=True) for who in (owner, bob, carol)}
    group = await api.create_group(owner, "team", [bob])
    gid = group["group_id"]
    for who in (owner, bob):
        created = await sockets[who.user_id].next()
        assert created["type"] == "group_updated" and created["group_id"] == gid and created["name"] == "team"
        assert created["by_user_id"] == owner.user_id and created["cursor"]
    r = await api.call("POST", f"/api/v1/groups/{gid}/members", {"user_id": carol.user_id}, owner.token)
    assert r.status == 200, r
    for who in (owner, bob, carol):  # carol sees the group appear
        added = await sockets[who.user_id].next()
        assert (added["type"], added["user_id"], added["by_user_id"]) == ("member_added", carol.user_id,
                                                                          owner.user_id)
    r = await api.call("PATCH", f"/api/v1/groups/{gid}", {"name": "the team"}, owner.token)
    assert r.status == 200 and r.body["name"] == "the team" and r.body["group_id"] == gid, r
    for who in (owner, bob, carol):
        renamed = await sockets[who.user_id].next()
        assert (renamed["type"], renamed["name"]) == ("group_updated", "the team")
    r = await api.call("DELETE", f"/api/v1/groups/{gid}/members/{bob.user_id}", None, bob.token)  # bob leaves
    assert r.status == 204, r
    for who in (owner, bob, carol):  # bob sees the group go
        removed = await sockets[who.user_id].next()
        assert (removed["type"], removed["user_id"], removed["by_user_id"]) == ("member_removed", bob.user_id,
                                                                                bob.user_id)
    assert await sockets[bob.user_id].nothing()
    # None of it is in the original view.
    for who in (owner, bob, carol):
        assert (await api.pull(who)).body["messages"] == []
    assert kinds((await api.events(carol)).body["events"]) == ["member_added", "group_updated", "member_removed"]


@pytest.mark.gen_test(timeout=30)
async def test_renaming_is_for_the_owner_and_checked(api):
    owner, bob, stranger = await api.register(), await api.register(), await api.register()
    gid = (await api.create_group(owner, "team", [bob]))["group_id"]
    r = await api.call("PATCH", f"/api/v1/groups/{gid}", {"name": "mine now"}, bob.token)
    assert_error(r, 403)
    r = await api.call("PATCH", f"/api/v1/groups/{gid}", {"name": "x"}, stranger.token)
    assert_error(r, 403)
    r = await api.call("PATCH", f"/api/v1/groups/{gid}", {"name": ""}, owner.token)
    assert_error(r, 400)
    r = await api.call("PATCH", f"/api/v1/groups/{gid}", {"name": "x" * 101}, owner.token)
    assert_error(r, 400)
    r = await api.call("PATCH", "/api/v1/groups/00000000-0000-4000-8000-000000000000", {"name": "x"}, owner.token)
    assert_error(r, 404)
    r = await api.call("PATCH", f"/api/v1/groups/{gid}", {"name": "fine"})
    assert_error(r, 401)
    r = await api.call("GET", f"/api/v1/groups/{gid}", None, bob.token)
    assert r.body["name"] == "team"


@pytest.mark.gen_test(timeout=30)
async def test_a_cursor_of_one_view_resumes_the_other_exactly_once(api):
    a, b = await api.register(), await api.register()
    first = (await api.send(b, a, "one")).body
    reply = (await api.send(a, b, "my reply")).body
    cursor = (await api.pull(a)).body["next_cursor"]  # the cursor of "one"
    second = (await api.send(b, a, "two")).body
    mine = (await api.send(a, b, "my second reply", client_msg_id="r2")).body
    # The event view resumes from the original view's cursor ...
    events = (await api.events(a, cursor)).body["events"]
    assert [e["id"] for e in events] == [reply["id"], second["id"], mine["id"]]
    # ... and a socket in the event view replays the same, then goes on live.
    ws = await api.connect(a, cursor=cursor, events=True)
    replayed = await ws.take(3)
    assert [f["id"] for f in replayed] == [reply["id"], second["id"], mine["id"]]
    assert replayed[2]["client_msg_id"] == "r2"
    third = (await api.send(b, a, "three")).body
    assert (await ws.next())["id"] == third["id"]
    # The original view resumes from an event cursor: messages from others only.
    socket = await api.connect(a, cursor=events[1]["cursor"])
    assert (await socket.next())["id"] == third["id"]
    assert await socket.nothing()
    assert first["id"] not in [e["id"] for e in events]


@pytest.mark.gen_test(timeout=30)
async def test_bad_event_view_requests_are_clear_errors(api):
    a = await api.register()
    assert_error(await api.refused(account=a, events="yes"), 400)
    r = await api.call("GET", "/api/v1/events?cursor=nonsense", token=a.token)
    assert_error(r, 400)
    r = await api.call("GET", "/api/v1/events?limit=0", token=a.token)
    assert_error(r, 400)
    r = await api.call("GET", "/api/v1/events")
    assert_error(r, 401)
