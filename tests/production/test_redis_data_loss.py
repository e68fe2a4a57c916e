"""Redis loses its data (FLUSHALL on a redis-server of the test's own) under a large group
(COURIER_LARGE_GROUP=3; docs/design/large-groups.md, section 7.3): until `courier worker`
has rebuilt it, a send to the group answers 503; the worker restores the group's state
from MySQL (its stream, members, seq) before it sets seq:complete; sends then go on with the
next seq, the members read them live and by pull, a cursor from before the loss answers
410, and MySQL ends with every message once, seqs 1..N."""
from __future__ import annotations

import pytest

from tests.e2e.support import assert_error
from tests.production.support import (
    Sender,
    assert_stored_exactly_once,
    production_settings,
    until_stored,
)

pytestmark = [pytest.mark.redis, pytest.mark.mysql]


@pytest.mark.gen_test(timeout=90)
async def test_a_large_group_after_redis_lost_its_data(own_redis, mysql_url, secret, commands, gateways, api):
    settings = production_settings(own_redis.url, mysql_url, secret, large_group=3)
    gateway = await gateways(settings).start()
    worker = commands("worker", settings, name="worker-1", COURIER_LARGE_GROUP=3).start()
    await worker.ready()
    client = api(gateway)
    a, b, c, d = [await client.register() for _ in range(4)]
    gid = (await client.create_group(a, "big", [b, c, d]))["group_id"]  # large from creation
    sender = Sender(client, a)
    before = [await sender.send(f"before {i}", group_id=gid) for i in range(5)]
    pulled, old_cursor = await client.pull_all(c)
    assert [m["id"] for m in pulled] == before and old_cursor is not None and old_cursor.startswith("2.")
    await until_stored(mysql_url, set(before))

    # The worker is stopped (so that nothing rebuilds yet), then Redis loses everything.
    assert await worker.stop() == 0
    own_redis.command("FLUSHALL")
    r = await client.send_group(a, gid, "during the loss")
    assert_error(r, 503, "service_unavailable")  # the small path would fan a large group out

    rebuilt = commands("worker", settings, name="worker-2", COURIER_LARGE_GROUP=3).start()
    await rebuilt.ready()  # it checks seq:complete before it is ready
    assert "large groups restored from the database: 1" in rebuilt.output()
    live = await client.connect(b)
    after = [await sender.send(f"after {i}", group_id=gid) for i in range(3)]
    frames = await live.take(3)
    assert [(f["id"], f["seq"]) for f in frames] == [(i, 6 + n) for n, i in enumerate(after)]
    pulled, _ = await client.pull_all(c)  # the stream starts anew: only what came after the loss
    assert [m["id"] for m in pulled] == after
    r = await client.pull(c, old_cursor)
    assert r.status == 410, r
    assert_error(await client.send_group(await client.register(), gid, "not a member"), 403)
    ids = set(before) | set(after)
    assert_stored_exactly_once(await until_stored(mysql_url, ids), ids)
    history = await client.history_all(d, f"/groups/{gid}")
    assert [(m["id"], m["seq"]) for m in reversed(history)] == [
        (i, n) for n, i in enumerate(before + after, start=1)]
    assert rebuilt.running
