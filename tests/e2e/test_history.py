"""The history calls: private (both directions, both views) and group, newest first,
paged with before=next_before until null; the limit's default, maximum and validation."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.e2e.support import assert_error, eventually


async def persisted(api, account, path, count):
    """The full history once `count` messages are in it (the store may lag the 201)."""

    async def check():
        messages = await api.history_all(account, path, limit=200)
        return messages if len(messages) >= count else None

    return await eventually(check)


@pytest.mark.gen_test(timeout=30)
async def test_private_history_has_both_directions_newest_first_for_both_sides(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    sent = []
    for i in range(6):
        sender, to = (a, b) if i % 2 == 0 else (b, a)
        r = await api.send(sender, to, f"m{i}")
        assert r.status == 201, r
        sent.append(r.body)
    await api.send(a, c, "to c, not in the a-b conversation")
    await api.send(c, b, "c to b, not in it either")
    a_view = await persisted(api, a, f"/conversations/{b.user_id}", 6)
    b_view = await persisted(api, b, f"/conversations/{a.user_id}", 6)
    assert a_view == b_view == sent[::-1]
    # Exactly the fields of the message object (no cursor: history is not an inbox).
    assert set(a_view[0]) == {"type", "id", "from_user_id", "to_user_id", "content", "created_at", "seq"}


@pytest.mark.gen_test(timeout=30)
async def test_private_history_pages_with_next_before_until_null(api):
    a, b = await api.register(), await api.register()
    ids = []
    for i in range(7):
        r = await api.send(a, b, f"m{i}")
        ids.append(r.body["id"])
    await persisted(api, a, f"/conversations/{b.user_id}", 7)
    pages, before = [], None
    while True:
        r = await api.history(a, f"/conversations/{b.user_id}", before=before, limit=3)
        assert r.status == 200, r
        pages.append([m["id"] for m in r.body["messages"]])
        before = r.body["next_before"]
        if before is None:
            break
        assert isinstance(before, str) and before
    assert pages == [ids[6:3:-1], ids[3:0:-1], ids[0:1]]
    # An exact multiple of the page size ends with null too (no empty page needed).
    r = await api.history(b, f"/conversations/{a.user_id}", limit=7)
    assert [m["id"] for m in r.body["messages"]] == ids[::-1]
    assert r.body["next_before"] is None


@pytest.mark.gen_test(timeout=30)
async def test_history_limit_defaults_to_50_and_is_at_most_200(api):
    a, b = await api.register(), await api.register()
    replies = await asyncio.gather(*(api.send(a, b, f"m{i}") for i in range(55)))
    assert all(r.status == 201 for r in replies)
    await persisted(api, a, f"/conversations/{b.user_id}", 55)
    path = f"/conversations/{b.user_id}"
    r = await api.history(a, path)
    assert r.status == 200 and len(r.body["messages"]) == 50 and r.body["next_before"] is not None, r
    rest = await api.history(a, path, before=r.body["next_before"])
    assert len(rest.body["messages"]) == 5 and rest.body["next_before"] is None
    assert {m["id"] for m in r.body["messages"] + rest.body["messages"]} == {x.body["id"] for x in replies}
    r = await api.history(a, path, limit=200)
    assert r.status == 200 and len(r.body["messages"]) == 55 and r.body["next_before"] is None
    r = await api.history(a, path, limit=1)
    assert r.status == 200 and len(r.body["messages"]) == 1
    for limit in ("201", "0", "-1", "abc", "1.5", "1e2", "+5", "9" * 40, "٣"):
        assert_error(await api.history(a, path, limit=limit), 400)


@pytest.mark.gen_test(timeout=30)
async def test_history_rejects_a_malformed_before(api):
    a, b = await api.register(), await api.register()
    for before in ("abc", "-1", "1-0x", "9" * 40):
        assert_error(await api.history(a, f"/conversations/{b.user_id}", before=before), 400)


@pytest.mark.gen_test(timeout=30)
async def test_private_history_with_unknown_or_malformed_peer(api):
    a = await api.register()
    assert_error(await api.history(a, f"/conversations/{uuid.uuid4()}"), 404)
    assert_error(await api.history(a, "/conversations/not-a-uuid"), 400)
    assert_error(await api.call("GET", f"/api/v1/conversations/{a.user_id}/messages"), 401)


@pytest.mark.gen_test(timeout=30)
async def test_group_history_newest_first_and_paged(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    group = await api.create_group(a, "history", [b])
    gid = group["group_id"]
    sent = []
    for i, sender in enumerate((a, b, a, b, a)):
        r = await api.send_group(sender, gid, f"g{i}")
        assert r.status == 201, r
        sent.append(r.body)
    messages = await persisted(api, b, f"/groups/{gid}", 5)
    assert messages == sent[::-1]
    assert await api.history_all(a, f"/groups/{gid}", limit=2) == sent[::-1]
    assert_error(await api.history(c, f"/groups/{gid}"), 403)
    assert_error(await api.history(a, f"/groups/{uuid.uuid4()}"), 404)
    assert_error(await api.history(a, f"/groups/{gid}", limit=201), 400)
