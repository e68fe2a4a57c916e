"""Production: typing and presence across gateways (issue 16 point 4). Typing reaches a
recipient on another gateway; presence counts a user's sockets on every gateway, tells a
watcher on another gateway of each change, and a gateway killed with kill -9 has its
users shown offline within 30 s, never stuck online."""
from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.client import Api
from tests.production.support import TOPOLOGIES, across_topologies, production_settings

pytestmark = [pytest.mark.redis, pytest.mark.mysql]


@pytest.fixture(params=TOPOLOGIES)
def redis_url(request, redis_url):
    """One Redis, or the local cluster with COURIER_TEST_CLUSTER=1."""
    return across_topologies(request, redis_url)


async def two_gateways(gateways, redis_url, mysql_url, secret, **overrides):
    one = await gateways(production_settings(redis_url, mysql_url, secret, **overrides)).start()
    two = await gateways(production_settings(redis_url, mysql_url, secret, **overrides)).start()
    return one, two


async def becomes(ws, account, status: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        frame = await ws.next(timeout=max(0.1, deadline - time.monotonic()))
        assert frame["type"] == "presence" and frame["user_id"] == account.user_id, frame
        if frame["status"] == status:
            return frame


def subscribe(ws, *accounts) -> None:
    ws.send({"type": "presence_subscribe", "user_ids": [a.user_id for a in accounts]})


@pytest.mark.gen_test(timeout=60)
async def test_typing_reaches_the_other_gateway(gateways, api, redis_url, mysql_url, secret):
    one, two = await two_gateways(gateways, redis_url, mysql_url, secret)
    api1, api2 = api(one), api(two)
    a, b, c = await api1.register(), await api1.register(), await api1.register()
    group = await api1.create_group(a, "team", [b, c])
    a_ws, b_ws, c_ws = (await api1.connect(a, events=True), await api2.connect(b, events=True),
                        await api1.connect(c, events=True))
    a_ws.send({"type": "typing", "to_user_id": b.user_id, "state": "start"})
    assert await b_ws.next() == {"type": "typing", "user_id": a.user_id, "to_user_id": b.user_id, "state": "start"}
    await asyncio.sleep(0.6)
    a_ws.send({"type": "typing", "group_id": group["group_id"], "state": "start"})
    for ws in (b_ws, c_ws):
        assert await ws.next() == {"type": "typing", "user_id": a.user_id, "group_id": group["group_id"],
                                   "state": "start"}
    a_ws.close()  # its starts end at once, on both gateways
    stops = {(f["state"], f.get("to_user_id") or f.get("group_id")) for f in await b_ws.take(2)}
    assert stops == {("stop", b.user_id), ("stop", group["group_id"])}
    assert (await c_ws.next())["state"] == "stop"


@pytest.mark.gen_test(timeout=60)
async def test_presence_counts_every_gateway_and_reaches_a_watcher_on_another(gateways, api, redis_url, mysql_url,
                                                                             secret):
    one, two = await two_gateways(gateways, redis_url, mysql_url, secret, presence_grace=1.0)
    api1, api2 = api(one), api(two)
    a, b = await api1.register(), await api1.register()
    watcher = await api1.connect(a, events=True)
    subscribe(watcher, b)
    assert await watcher.next() == {"type": "presence", "user_id": b.user_id, "status": "offline", "last_seen": None}
    on_two = await api2.connect(b, events=True)
    await becomes(watcher, b, "online")
    on_one = await api1.connect(b)
    await asyncio.sleep(0.3)
    on_two.close()  # still on gateway one
    assert await watcher.nothing(3.0)
    r = await api2.call("GET", f"/api/v1/users/{b.user_id}/presence", token=a.token)
    assert r.status == 200 and r.body["status"] == "online", r
    on_one.close()
    frame = await becomes(watcher, b, "offline")
    assert isinstance(frame["last_seen"], int)


@pytest.mark.gen_test(timeout=90)
async def test_a_gateway_killed_with_kill_9_has_its_users_offline_within_30_seconds(
        gateways, api, commands, redis_url, mysql_url, secret):
    settings = production_settings(redis_url, mysql_url, secret)  # the default grace (10 s)
    one = await gateways(settings).start()
    doomed = await commands("serve", settings, name="doomed").start().ready()
    api1, api_doomed = api(one), Api(doomed)
    try:
        a, b = await api1.register(), await api1.register()
        watcher = await api1.connect(a, events=True)
        subscribe(watcher, b)
        await becomes(watcher, b, "offline")
        await api_doomed.connect(b, events=True)
        await becomes(watcher, b, "online")
        assert await doomed.kill() == -9
        killed_at = time.monotonic()
        frame = await becomes(watcher, b, "offline", timeout=40)
        took = time.monotonic() - killed_at
        assert took < 30, f"offline only {took:.1f} s after the kill"
        assert isinstance(frame["last_seen"], int)
        r = await api1.call("GET", f"/api/v1/users/{b.user_id}/presence", token=a.token)
        assert r.body["status"] == "offline"
    finally:
        api_doomed.close()
