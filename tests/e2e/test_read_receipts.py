"""Read receipts (issue 15 point 3), in both modes: the reader's `read` event also goes
to the other user of a private chat and to the other members of a small group (event
view only), GET /groups/{id}/reads for any group, and PATCH /users/me
{"send_read_receipts"} to turn them off."""
from __future__ import annotations

import uuid

import pytest

from tests.e2e.support import assert_error, with_settings

ME = "/api/v1/users/me"


def read_event(event: dict, reader, conversation: dict, seq: int) -> bool:
    return event == {"type": "read", "id": event["id"], "conversation": conversation, "user_id": reader.user_id,
                     "seq": seq, "cursor": event["cursor"]}


async def read_private(api, reader, peer, seq: int):
    r = await api.call("POST", f"/api/v1/conversations/{peer.user_id}/read", {"seq": seq}, reader.token)
    assert r.status == 200, r
    return r.body


async def read_group(api, reader, group_id: str, seq: int):
    r = await api.call("POST", f"/api/v1/groups/{group_id}/read", {"seq": seq}, reader.token)
    assert r.status == 200, r
    return r.body


async def reads(api, account, group_id: str) -> dict:
    r = await api.call("GET", f"/api/v1/groups/{group_id}/reads", token=account.token)
    assert r.status == 200, r
    assert set(r.body) == {"reads"}
    return {entry["user_id"]: entry["read_seq"] for entry in r.body["reads"]}


@pytest.mark.gen_test(timeout=60)
async def test_a_private_read_goes_to_the_sender_as_a_receipt(api, courier):
    a, b = await api.register(), await api.register()
    await api.send(a, b, "one")
    await api.send(a, b, "two")
    await courier.settle()
    sender_events, sender_original = await api.connect(a, events=True), await api.connect(a)
    reader_device = await api.connect(b, events=True)
    assert await read_private(api, b, a, 2) == {"read_seq": 2, "unread_count": 0}
    conversation = {"type": "private", "user_id": a.user_id}  # as the reader sees it
    receipt, own = await sender_events.next(), await reader_device.next()
    assert read_event(receipt, b, conversation, 2), receipt
    assert read_event(own, b, conversation, 2) and own["id"] == receipt["id"], own
    await read_private(api, b, a, 2)  # a retry: nothing new anywhere
    assert await sender_events.nothing() and await reader_device.nothing()
    assert await sender_original.nothing()  # the original view never shows read events
    events, _ = await api.events_all(a)
    assert [e["id"] for e in events if e["type"] == "read"] == [receipt["id"]]


@pytest.mark.gen_test(timeout=60)
async def test_reading_up_to_ones_own_last_message_is_no_move_and_no_event(api, courier):
    """A send moves the sender's marker to it without an event of its own; a read of that
    same seq afterwards changes nothing, so it appends nothing either (nor a receipt)."""
    a, b = await api.register(), await api.register()
    await api.send(b, a, "hi")
    await api.send(a, b, "one")
    await api.send(a, b, "two")
    group = await api.create_group(a, members=[b])
    await api.send_group(a, group["group_id"], "all")
    await courier.settle()
    assert await read_private(api, a, b, 3) == {"read_seq": 3, "unread_count": 0}
    assert await read_group(api, a, group["group_id"], 1) == {"read_seq": 1, "unread_count": 0}
    assert await read_private(api, a, b, 1) == {"read_seq": 3, "unread_count": 0}  # lower: nothing either
    for account in (a, b):
        events, _ = await api.events_all(account)
        assert [e for e in events if e["type"] == "read"] == [], account


@with_settings(receipts_max_group=3)
@pytest.mark.gen_test(timeout=60)
async def test_group_receipts_go_to_the_members_of_small_groups_only(api, courier):
    a, b, c, d = [await api.register() for _ in range(4)]
    small = await api.create_group(a, "small", [b, c])  # 3 members: at the limit
    large = await api.create_group(a, "large", [b, c, d])  # 4: above it
    for group in (small, large):
        r = await api.send_group(a, group["group_id"], "hello")
        assert r.status == 201, r
    await courier.settle()
    owner, other, reader_device = (await api.connect(a, events=True), await api.connect(c, events=True),
                                   await api.connect(b, events=True))
    await read_group(api, b, small["group_id"], 1)
    conversation = {"type": "group", "group_id": small["group_id"]}
    for socket in (owner, other, reader_device):
        event = await socket.next()
        assert read_event(event, b, conversation, 1), event
    await read_group(api, b, large["group_id"], 1)
    event = await reader_device.next()  # the reader's own devices still sync
    assert read_event(event, b, {"type": "group", "group_id": large["group_id"]}, 1), event
    assert await owner.nothing() and await other.nothing()
    # Any group answers its markers on demand (the sender's own send counts as read).
    assert await reads(api, d, large["group_id"]) == {a.user_id: 1, b.user_id: 1, c.user_id: 0, d.user_id: 0}
    assert await reads(api, c, small["group_id"]) == {a.user_id: 1, b.user_id: 1, c.user_id: 0}


@pytest.mark.gen_test(timeout=60)
async def test_reads_is_for_members_only(api, courier):
    a, b, outsider = await api.register(), await api.register(), await api.register()
    group = await api.create_group(a, "team", [b])
    path = f"/api/v1/groups/{group['group_id']}/reads"
    r = await api.call("GET", path, token=a.token)
    assert r.status == 200 and r.body == {"reads": [{"user_id": a.user_id, "read_seq": 0},
                                                    {"user_id": b.user_id, "read_seq": 0}]}, r
    assert_error(await api.call("GET", path, token=outsider.token), 403)
    assert_error(await api.call("GET", f"/api/v1/groups/{uuid.uuid4()}/reads", token=a.token), 404)
    assert_error(await api.call("GET", path), 401)
    r = await api.call("DELETE", f"/api/v1/groups/{group['group_id']}/members/{b.user_id}", token=b.token)
    assert r.status == 204, r
    assert_error(await api.call("GET", path, token=b.token), 403)  # a member no more


@pytest.mark.gen_test(timeout=60)
async def test_receipts_off_keeps_markers_to_oneself(api, courier):
    a, b, c = await api.register(), await api.register(), await api.register()
    # GET /users/me stays the contract's object; the preference is PATCH's answer.
    r = await api.call("GET", ME, token=b.token)
    assert r.status == 200 and r.body == {"user_id": b.user_id, "username": b.username}, r
    r = await api.call("PATCH", ME, {"send_read_receipts": False}, b.token)
    assert r.status == 200 and r.body == {"user_id": b.user_id, "username": b.username,
                                          "send_read_receipts": False, "show_presence": True}, r
    await api.send(a, b, "private")
    group = await api.create_group(a, "team", [b, c])
    await api.send_group(a, group["group_id"], "group")
    await courier.settle()
    sender, member, reader_device = (await api.connect(a, events=True), await api.connect(c, events=True),
                                     await api.connect(b, events=True))
    await read_private(api, b, a, 1)
    await read_group(api, b, group["group_id"], 1)
    first, second = await reader_device.next(), await reader_device.next()
    assert read_event(first, b, {"type": "private", "user_id": a.user_id}, 1), first
    assert read_event(second, b, {"type": "group", "group_id": group["group_id"]}, 1), second
    assert await sender.nothing() and await member.nothing()
    # Nobody else sees b's marker; b sees its own.
    assert await reads(api, a, group["group_id"]) == {a.user_id: 1, b.user_id: None, c.user_id: 0}
    assert (await reads(api, b, group["group_id"]))[b.user_id] == 1
    # Back on: the next move is a receipt again.
    r = await api.call("PATCH", ME, {"send_read_receipts": True}, b.token)
    assert r.status == 200 and r.body["send_read_receipts"] is True, r
    await api.send(a, b, "again")
    assert (await sender.next())["content"] == "again"  # a's own send, in its event view
    await courier.settle()
    await read_private(api, b, a, 2)
    event = await sender.next()
    assert read_event(event, b, {"type": "private", "user_id": a.user_id}, 2), event
    assert (await reads(api, a, group["group_id"]))[b.user_id] == 1


@pytest.mark.gen_test(timeout=60)
async def test_the_receipts_preference_is_validated(api, courier):
    a = await api.register()
    for body in ({}, {"send_read_receipts": "false"}, {"send_read_receipts": None}, {"send_read_receipts": 0},
                 {"send_read_receipts": False, "username": "x"}, []):
        assert_error(await api.call("PATCH", ME, body, a.token), 400)
    assert_error(await api.call("PATCH", ME, raw=b"not json", token=a.token), 400)
    assert_error(await api.call("PATCH", ME, {"send_read_receipts": False}), 401)
    # Nothing was changed by the refused bodies: receipts are still on.
    r = await api.call("PATCH", ME, {"send_read_receipts": True}, a.token)
    assert r.status == 200 and r.body["send_read_receipts"] is True, r
