"""Edits and deletions of a large group's messages (docs/design/large-groups.md, section
10), in both modes, with COURIER_LARGE_GROUP=3: the change goes once into the group's
stream, not into every member's log. Another member's event socket gets message_updated /
message_deleted once (a retried PATCH or a second DELETE emits nothing), the original view
none; pulls, resumes and history show the message as it is now, edited or a tombstone."""
from __future__ import annotations

import pytest

from tests.e2e.support import with_settings
from tests.e2e.test_edits import as_now, changes, delete, edit, tombstone
from tests.e2e.test_large_groups import group_messages, sent

pytestmark = with_settings(large_group=3)


@pytest.mark.gen_test(timeout=90)
async def test_an_edit_and_a_delete_in_a_large_group_reach_a_socket_once_and_every_read_shows_them(api):
    owner, bob, carol, dave = [await api.register() for _ in range(4)]
    watcher = await api.connect(carol, events=True)
    plain = await api.connect(dave)  # the original view: messages only
    gid = (await api.create_group(owner, "big", [bob, carol, dave]))["group_id"]  # 4 members: large at once
    assert (await watcher.next())["type"] == "group_updated"
    before = await sent(api, owner, gid, "before")
    start = (await watcher.next())["cursor"]
    helo = await sent(api, bob, gid, "helo", client_msg_id="edit-me")
    oops = await sent(api, bob, gid, "oops")
    assert [m["content"] for m in await watcher.take(2)] == ["helo", "oops"]
    assert [m["content"] for m in await plain.take(3)] == ["before", "helo", "oops"]

    r = await edit(api, bob, helo["id"], "hello")  # at once: production's persister may lag
    assert r.status == 200, r
    edited_at = r.body["edited_at"]
    again = await edit(api, bob, helo["id"], "hello")  # a retry: no second event
    assert again.status == 200 and again.body["edited_at"] == edited_at, again
    assert (await delete(api, owner, oops["id"])).status == 204  # the group's owner may
    assert (await delete(api, owner, oops["id"])).status == 204  # a second DELETE: nothing new

    updated, deleted = await watcher.take(2)
    assert {k: v for k, v in updated.items() if k != "cursor"} == {
        "type": "message_updated", "id": helo["id"], "seq": helo["seq"], "message_type": "group",
        "group_id": gid, "from_user_id": bob.user_id, "content": "hello", "edited_at": edited_at}
    assert deleted["type"] == "message_deleted" and deleted["id"] == oops["id"] and deleted["seq"] == oops["seq"]
    assert isinstance(deleted["deleted_at"], int) and "content" not in deleted and deleted["group_id"] == gid
    assert await watcher.nothing() and await plain.nothing()

    # Pulls show the messages as they are now; the event view has each change once.
    pulled, _ = await api.pull_all(carol, start)
    assert pulled == [as_now(helo, pulled[0]["cursor"], content="hello", edited_at=edited_at),
                      tombstone(oops, pulled[1]["cursor"])]
    for who in (owner, bob, carol, dave):
        events, _ = await api.events_all(who)
        assert [(e["type"], e["id"]) for e in changes(events)] == [("message_updated", helo["id"]),
                                                                  ("message_deleted", oops["id"])], who
    # The sender's own entry, with its client_msg_id, edited.
    mine, _ = await api.events_all(bob)
    [own] = [e for e in group_messages(mine, gid) if e["id"] == helo["id"]]
    assert (own["content"], own["edited_at"], own["client_msg_id"]) == ("hello", edited_at, "edit-me")
    # A resume from before the messages, in either view.
    every = await api.connect(carol, cursor=start, events=True)
    resumed = await every.take(4)
    assert [f["type"] for f in resumed] == ["group", "group", "message_updated", "message_deleted"]
    assert resumed[:2] == pulled and await every.nothing()
    original = await api.connect(carol, cursor=start)
    assert await original.take(2) == pulled and await original.nothing()
    # History (the MessageStore), newest first.
    history = await api.history_all(carol, f"/groups/{gid}")
    assert [m["id"] for m in history] == [oops["id"], helo["id"], before["id"]]
    assert history[0]["deleted"] is True and "content" not in history[0]
    assert (history[1]["content"], history[1]["edited_at"]) == ("hello", edited_at)


@pytest.mark.gen_test(timeout=60)
async def test_a_change_goes_to_the_members_at_its_time_as_in_a_small_group(api):
    """The members at the time of the change (docs/api.md): a newcomer reads the change
    of a message from before its join, not the message; one who left reads neither."""
    owner, bob, carol, dave, newcomer, leaver = [await api.register() for _ in range(6)]
    gid = (await api.create_group(owner, "big", [bob, carol, dave, leaver]))["group_id"]
    old = await sent(api, bob, gid, "old")
    r = await api.call("DELETE", f"/api/v1/groups/{gid}/members/{leaver.user_id}", None, leaver.token)
    assert r.status == 204, r
    r = await api.call("POST", f"/api/v1/groups/{gid}/members", {"user_id": newcomer.user_id}, owner.token)
    assert r.status == 200, r
    assert (await edit(api, bob, old["id"], "old, edited")).status == 200
    events, _ = await api.events_all(newcomer)
    assert [e["id"] for e in changes(events)] == [old["id"]] and group_messages(events, gid) == []
    events, _ = await api.events_all(leaver)
    assert changes(events) == [] and [e["id"] for e in group_messages(events, gid)] == [old["id"]]
    events, _ = await api.events_all(dave)
    assert [e["type"] for e in changes(events)] == ["message_updated"]


@pytest.mark.gen_test(timeout=60)
async def test_a_large_groups_rename_reaches_every_member_once_through_its_stream(api):
    """A rename of a large group goes once into its stream (GroupEvents.renamed), not into
    every member's log: the event view still gets it once, live, in a pull and in a resume;
    a member who left before it does not; the original view none."""
    owner, bob, carol, dave, leaver = [await api.register() for _ in range(5)]
    gid = (await api.create_group(owner, "big", [bob, carol, dave, leaver]))["group_id"]
    r = await api.call("DELETE", f"/api/v1/groups/{gid}/members/{leaver.user_id}", None, leaver.token)
    assert r.status == 204, r
    watcher = await api.connect(carol, events=True)
    plain = await api.connect(dave)
    first = await sent(api, owner, gid, "first")
    start = (await watcher.next())["cursor"]
    r = await api.call("PATCH", f"/api/v1/groups/{gid}", {"name": "bigger"}, owner.token)
    assert r.status == 200 and r.body["name"] == "bigger", r
    renamed = await watcher.next()
    assert {k: v for k, v in renamed.items() if k not in ("id", "cursor", "created_at")} == {
        "type": "group_updated", "group_id": gid, "name": "bigger", "by_user_id": owner.user_id}
    assert (await plain.next())["id"] == first["id"]
    assert await watcher.nothing() and await plain.nothing()

    def renames(events):
        return [e for e in events if e["type"] == "group_updated" and e.get("name") == "bigger"]

    for who in (owner, bob, carol, dave):
        events, _ = await api.events_all(who)
        assert [e["id"] for e in renames(events)] == [renamed["id"]], who
    gone, _ = await api.events_all(leaver)
    assert renames(gone) == []
    resumed = await api.connect(carol, cursor=start, events=True)
    assert [f["id"] for f in await resumed.take(1)] == [renamed["id"]] and await resumed.nothing()
    assert (await api.call("GET", f"/api/v1/groups/{gid}", None, bob.token)).body["name"] == "bigger"
