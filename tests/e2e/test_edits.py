"""Edit and delete (issue 15 point 4), in both modes: who may, the events every
participant gets (the sender included), history - and the pull and a resume, in either
view - showing the edit or the tombstone, and a retried PATCH or second DELETE emitting
nothing."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.e2e.support import assert_error


def changes(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] in ("message_updated", "message_deleted")]


async def edit(api, account, message_id, content):
    return await api.call("PATCH", f"/api/v1/messages/{message_id}", {"content": content}, account.token)


async def delete(api, account, message_id):
    return await api.call("DELETE", f"/api/v1/messages/{message_id}", None, account.token)


@pytest.mark.gen_test(timeout=60)
async def test_a_private_edit_reaches_both_sides_once_and_history_shows_it(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    sent = (await api.send(a, b, "helo")).body
    r = await edit(api, a, sent["id"], "hello")
    assert r.status == 200, r
    assert r.body["content"] == "hello" and r.body["id"] == sent["id"] and r.body["seq"] == sent["seq"]
    assert isinstance(r.body["edited_at"], int)
    again = await edit(api, a, sent["id"], "hello")  # a retry: no second event
    assert again.status == 200 and again.body["edited_at"] == r.body["edited_at"], again
    for who in (a, b):
        [event] = changes((await api.events(who)).body["events"])
        assert event["type"] == "message_updated" and event["id"] == sent["id"] and event["seq"] == sent["seq"]
        assert event["content"] == "hello" and event["edited_at"] == r.body["edited_at"]
        assert event["from_user_id"] == a.user_id and event["to_user_id"] == b.user_id and event["cursor"]
    # The original view shows messages only.
    assert [m["id"] for m in (await api.pull(b)).body["messages"]] == [sent["id"]]
    [shown] = (await api.history(b, f"/conversations/{a.user_id}")).body["messages"]
    assert shown["content"] == "hello" and shown["edited_at"] == r.body["edited_at"]
    # Who may not: the recipient (403), a stranger (404), anyone on an unknown id (404).
    assert_error(await edit(api, b, sent["id"], "mine now"), 403, "not_your_message")
    assert_error(await edit(api, c, sent["id"], "mine now"), 404, "message_not_found")
    assert_error(await edit(api, a, str(uuid.uuid4()), "x"), 404, "message_not_found")
    assert_error(await edit(api, a, sent["id"], ""), 400)
    assert_error(await delete(api, b, sent["id"]), 403, "not_your_message")


@pytest.mark.gen_test(timeout=60)
async def test_a_delete_leaves_a_tombstone_and_a_second_delete_emits_nothing(api):
    a, b = await api.register(), await api.register()
    sent = (await api.send(a, b, "oops")).body
    kept = (await api.send(b, a, "fine")).body
    r = await delete(api, a, sent["id"])
    assert r.status == 204, r
    assert (await delete(api, a, sent["id"])).status == 204
    for who in (a, b):
        [event] = changes((await api.events(who)).body["events"])
        assert event["type"] == "message_deleted" and event["id"] == sent["id"] and event["seq"] == sent["seq"]
        assert isinstance(event["deleted_at"], int) and "content" not in event
    page = (await api.history(a, f"/conversations/{b.user_id}")).body["messages"]
    assert page[0]["id"] == kept["id"]
    assert page[1] == {"type": "private", "id": sent["id"], "seq": sent["seq"], "from_user_id": a.user_id,
                       "to_user_id": b.user_id, "created_at": sent["created_at"], "deleted": True}
    assert_error(await edit(api, a, sent["id"], "back"), 404)


@pytest.mark.gen_test(timeout=60)
async def test_the_same_patch_or_delete_sent_several_times_at_once_is_one_change(api):
    """A client retrying before the first answer came (or the sender and the group's
    owner deleting at once): every request answered as the first, one event each."""
    owner, member = await api.register(), await api.register()
    group = await api.create_group(owner, members=[member])
    sent = (await api.send_group(member, group["group_id"], "typo")).body
    edited = await asyncio.gather(*(edit(api, member, sent["id"], "fixed") for _ in range(5)))
    assert [r.status for r in edited] == [200] * 5, edited
    assert all(r.body["content"] == "fixed" for r in edited)
    deleted = await asyncio.gather(*(delete(api, who, sent["id"]) for who in (member, owner) * 3))
    assert [r.status for r in deleted] == [204] * 6, deleted
    for who in (owner, member):
        got = changes((await api.events(who)).body["events"])
        assert [e["type"] for e in got] == ["message_updated", "message_deleted"], got
    [shown] = (await api.history(owner, f"/groups/{group['group_id']}")).body["messages"]
    assert shown["deleted"] is True


@pytest.mark.gen_test(timeout=60)
async def test_in_a_group_the_owner_may_delete_and_every_member_gets_the_events(api):
    owner, member, other = await api.register(), await api.register(), await api.register()
    group = await api.create_group(owner, members=[member, other])
    sent = (await api.send_group(member, group["group_id"], "first")).body
    assert (await edit(api, member, sent["id"], "first!")).status == 200
    assert_error(await delete(api, other, sent["id"]), 403)
    assert (await delete(api, owner, sent["id"])).status == 204
    for who in (owner, member, other):
        got = changes((await api.events(who)).body["events"])
        assert [e["type"] for e in got] == ["message_updated", "message_deleted"], got
        assert all(e["group_id"] == group["group_id"] for e in got)
    [shown] = (await api.history(other, f"/groups/{group['group_id']}")).body["messages"]
    assert shown["deleted"] is True and "content" not in shown


@pytest.mark.gen_test(timeout=60)
async def test_the_edit_reaches_an_open_event_socket_only(api):
    a, b = await api.register(), await api.register()
    sent = (await api.send(a, b, "x")).body
    events_socket, original = await api.connect(b, events=True), await api.connect(b)
    assert (await edit(api, a, sent["id"], "y")).status == 200
    frame = await events_socket.next()
    assert frame["type"] == "message_updated" and frame["content"] == "y"
    assert await original.nothing()


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("settings_overrides", [{"edit_window": 0}], ids=["closed"])
async def test_an_edit_after_the_window_is_403_and_a_delete_still_allowed(api):
    a, b = await api.register(), await api.register()
    sent = (await api.send(a, b, "old")).body
    await asyncio.sleep(1.1)
    assert_error(await edit(api, a, sent["id"], "new"), 403, "edit_window_closed")
    assert (await delete(api, a, sent["id"])).status == 204


def as_now(sent: dict, cursor: str, **changed) -> dict:
    """The message of a 201 as a pull or a resume shows it now, at its cursor."""
    body = {k: v for k, v in sent.items() if k != "client_msg_id"}
    return {**body, **changed, "cursor": cursor}


def tombstone(sent: dict, cursor: str) -> dict:
    kept = ("type", "id", "group_id", "to_user_id", "from_user_id", "created_at", "seq")
    return {**{k: sent[k] for k in kept if k in sent}, "deleted": True, "cursor": cursor}


async def cursor_of_one(api, account) -> str:
    """The account's cursor after the one message it got so far."""
    [first] = (await api.pull(account)).body["messages"]
    return first["cursor"]


@pytest.mark.gen_test(timeout=60)
async def test_pull_and_resume_show_an_edited_message_as_it_is_now(api):
    a, b = await api.register(), await api.register()
    await api.send(a, b, "before")
    start = await cursor_of_one(api, b)
    sent = (await api.send(a, b, "helo", client_msg_id="edit-me")).body
    later = (await api.send(a, b, "after")).body
    r = await edit(api, a, sent["id"], "hello")
    assert r.status == 200, r
    edited_at = r.body["edited_at"]

    pulled = (await api.pull(b, start)).body["messages"]
    cursor = pulled[0]["cursor"]
    assert pulled == [as_now(sent, cursor, content="hello", edited_at=edited_at),
                      as_now(later, pulled[1]["cursor"])]
    events = (await api.events(b, start)).body["events"]
    assert events[0] == pulled[0]
    assert [e["type"] for e in events] == ["private", "private", "message_updated"]
    # The sender's own entry too, with its client_msg_id (the event view).
    own = [e for e in (await api.events(a)).body["events"] if e["id"] == sent["id"] and e["type"] == "private"]
    assert [(e["content"], e["edited_at"], e["client_msg_id"]) for e in own] == [("hello", edited_at, "edit-me")]

    # A resume from a cursor before the message, in either view.
    original = await api.connect(b, cursor=start)
    assert await original.take(2) == pulled
    assert await original.nothing()
    every = await api.connect(b, cursor=start, events=True)
    assert await every.take(3) == events
    assert await every.nothing()


@pytest.mark.gen_test(timeout=60)
async def test_pull_and_resume_show_a_deleted_message_as_a_tombstone(api):
    owner, member = await api.register(), await api.register()
    group = await api.create_group(owner, members=[member])
    await api.send_group(member, group["group_id"], "before")
    start = await cursor_of_one(api, owner)
    sent = (await api.send_group(member, group["group_id"], "oops")).body
    assert (await edit(api, member, sent["id"], "oops!")).status == 200
    assert (await delete(api, owner, sent["id"])).status == 204  # the group's owner may

    pulled = (await api.pull(owner, start)).body["messages"]
    assert pulled == [tombstone(sent, pulled[0]["cursor"])]
    events = (await api.events(owner, start)).body["events"]
    assert events[0] == pulled[0] and "content" not in events[0]
    assert [e["type"] for e in events] == ["group", "message_updated", "message_deleted"]
    # The member's own entry: a tombstone too (with its client_msg_id, had it one).
    [own] = [e for e in (await api.events(member)).body["events"] if e["id"] == sent["id"] and e["type"] == "group"]
    assert own == tombstone(sent, own["cursor"])

    original = await api.connect(owner, cursor=start)
    assert await original.take(1) == pulled
    assert await original.nothing()
    every = await api.connect(owner, cursor=start, events=True)
    assert await every.take(3) == events
    assert await every.nothing()
