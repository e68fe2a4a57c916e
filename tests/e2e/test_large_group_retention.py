"""A large group's stream is trimmed like an inbox (issue 18 point 4): a cursor from
before what the stream retains answers 410 cursor_expired on the pulls and 4410 on /ws,
never a silent gap, and the history still has every message."""
from __future__ import annotations

import pytest

from tests.e2e.support import assert_error, with_settings


# Embedded only: Redis trims whole macro nodes (100 entries by default), so a stream of
# maxlen 5 is never trimmed there; the contract suite (tests/contract/test_group_streams.py)
# trims Redis exactly and checks the same answers.
@pytest.mark.embedded_only
@with_settings(large_group=3, inbox_maxlen=5)
@pytest.mark.gen_test(timeout=30)
async def test_a_cursor_older_than_what_the_group_stream_retains_is_410_and_4410(api):
    owner, bob, carol, dave = [await api.register() for _ in range(4)]
    gid = (await api.create_group(owner, "big", [bob, carol, dave]))["group_id"]
    ws = await api.connect(bob)
    first = await api.send_group(owner, gid, "m0")
    cursor0 = (await ws.next())["cursor"]
    ids = [first.body["id"]]
    for i in range(1, 12):
        ids.append((await api.send_group(owner, gid, f"m{i}")).body["id"])
    pushed = await ws.take(11)
    assert [m["id"] for m in pushed] == ids[1:]
    assert_error(await api.pull(bob, cursor0), 410, "cursor_expired")
    assert_error(await api.events(bob, cursor0), 410, "cursor_expired")
    # A cursor inside what is retained keeps working.
    r = await api.pull(bob, pushed[-2]["cursor"])
    assert r.status == 200 and [m["id"] for m in r.body["messages"]] == ids[-1:], r
    back = await api.connect(bob, cursor=cursor0)
    code, _ = await back.closed()
    assert code == 4410
    assert [m["id"] for m in await api.history_all(bob, f"/groups/{gid}")] == ids[::-1]
