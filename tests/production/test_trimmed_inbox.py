"""A cursor older than what the Redis inbox retains answers 410 cursor_expired
(pull) and 4410 (resume), as in the embedded mode (tests/e2e/test_pull_resume.py).
Redis trims whole macro nodes (stream-node-max-entries, 100 by default), so an
inbox of 5 is only trimmed on a redis-server of the test's own with nodes of 5."""
from __future__ import annotations

import shutil

import pytest

from tests.e2e.support import assert_error
from tests.production.support import production_settings
from tests.services.redis import PrivateRedis

pytestmark = [pytest.mark.redis, pytest.mark.mysql]


@pytest.fixture
def small_nodes_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(str(tmp_path), "--stream-node-max-entries", "5")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.gen_test(timeout=30)
async def test_a_cursor_older_than_what_is_retained_is_410(small_nodes_redis, mysql_url, secret, gateways, api):
    gateway = await gateways(production_settings(small_nodes_redis.url, mysql_url, secret, inbox_maxlen=5)).start()
    client = api(gateway)
    a, b = await client.register(), await client.register()
    ws_b = await client.connect(b)
    ids = [(await client.send(a, b, f"m{i}")).body["id"] for i in range(12)]
    frames = await ws_b.take(12)
    assert [f["id"] for f in frames] == ids
    assert_error(await client.pull(b, frames[0]["cursor"]), 410, "cursor_expired")
    retained, _ = await client.pull_all(b)
    retained_ids = [m["id"] for m in retained]
    assert 5 <= len(retained_ids) <= 10 and retained_ids == ids[-len(retained_ids):]
    # A cursor inside what is retained reads on, with nothing lost after it.
    r = await client.pull(b, retained[0]["cursor"])
    assert r.status == 200 and [m["id"] for m in r.body["messages"]] == retained_ids[1:], r
    # The last trimmed entry's cursor lost nothing, but Redis cannot tell: expired too.
    last_trimmed = frames[len(ids) - len(retained_ids) - 1]["cursor"]
    assert_error(await client.pull(b, last_trimmed), 410, "cursor_expired")
    ws = await client.connect(b, cursor=frames[0]["cursor"])
    code, _ = await ws.closed()
    assert code == 4410
    # A resume from a retained cursor replays the rest, then goes live.
    ws = await client.connect(b, cursor=retained[-3]["cursor"])
    assert [f["id"] for f in await ws.take(2)] == retained_ids[-2:]
    live = await client.send(a, b, "live")
    assert (await ws.next())["id"] == live.body["id"]


@pytest.mark.gen_test(timeout=30)
async def test_an_event_cursor_older_than_what_the_log_retains_is_410(small_nodes_redis, mysql_url, secret,
                                                                       gateways, api):
    """Issue 14: the event view (GET /api/v1/events, /ws?events=1) has the log's retention:
    a group change's or an own send's cursor trimmed away answers 410 and 4410."""
    settings = production_settings(small_nodes_redis.url, mysql_url, secret, inbox_maxlen=5, group_changes=0)
    gateway = await gateways(settings).start()
    client = api(gateway)
    a, b, c = await client.register(), await client.register(), await client.register()
    ws_b = await client.connect(b, events=True)
    gid = (await client.create_group(a, "team", [b]))["group_id"]
    first = await ws_b.next()
    assert first["type"] == "group_updated"
    for i in range(4):
        for method, path in (("POST", f"/api/v1/groups/{gid}/members"),
                             ("DELETE", f"/api/v1/groups/{gid}/members/{c.user_id}")):
            r = await client.call(method, path, {"user_id": c.user_id} if method == "POST" else None, a.token)
            assert r.status in (200, 204), r
        assert (await client.send(b, a, f"mine {i}", client_msg_id=f"k{i}")).status == 201
    frames = [first] + await ws_b.take(12)
    assert_error(await client.events(b, first["cursor"]), 410, "cursor_expired")
    for events in (True, False):
        ws = await client.connect(b, cursor=first["cursor"], events=events)
        code, _ = await ws.closed()
        assert code == 4410
    retained, _ = await client.events_all(b)
    assert 5 <= len(retained) <= 10 and retained == frames[-len(retained):]
    assert retained[-1]["client_msg_id"] == "k3"
    r = await client.events(b, retained[0]["cursor"])
    assert r.status == 200 and r.body["events"] == retained[1:], r
    ws = await client.connect(b, cursor=retained[-3]["cursor"], events=True)
    assert await ws.take(2) == retained[-2:]
    r = await client.call("PATCH", f"/api/v1/groups/{gid}", {"name": "live"}, a.token)
    assert r.status == 200, r
    live = await ws.next()
    assert (live["type"], live["name"]) == ("group_updated", "live")
