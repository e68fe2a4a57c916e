"""SPEC section 1: "run two `courier serve` processes on two ports against one
Redis, a user on one receives what is sent through the other", and a user with
sockets on both gets every message on both, once. Real processes: two
`courier serve` and one `courier worker`, on the claimed Redis database and the
run's MariaDB database."""
from __future__ import annotations

import asyncio

import pytest

from tests.production.support import (
    Collector,
    assert_stored_exactly_once,
    production_settings,
    until_stored,
)

pytestmark = [pytest.mark.redis, pytest.mark.mysql]


async def start_stack(commands, redis_url, mysql_url, secret):
    settings = production_settings(redis_url, mysql_url, secret)
    one = commands("serve", settings, name="gateway-1").start()
    two = commands("serve", settings, name="gateway-2").start()
    worker = commands("worker", settings).start()
    await asyncio.gather(one.ready(), two.ready(), worker.ready())
    return one, two, worker


@pytest.mark.gen_test(timeout=60)
async def test_a_user_on_one_gateway_receives_what_is_sent_through_the_other(
        commands, api, redis_url, mysql_url, secret):
    one, two, worker = await start_stack(commands, redis_url, mysql_url, secret)
    api1, api2 = api(one), api(two)
    a = await api1.register()
    b = await api2.register()  # accounts are shared: the database is
    c = await api1.register()
    ws_a, ws_b = await api1.connect(a), await api2.connect(b)

    sent = await api1.send(a, b, "through gateway 1")
    assert sent.status == 201, sent
    frame = await ws_b.next()
    assert frame["id"] == sent.body["id"] and frame["content"] == "through gateway 1"
    back = await api2.send(b, a, "through gateway 2")
    frame = await ws_a.next()
    assert frame["id"] == back.body["id"]

    # A group with members on both gateways: everyone but the sender, wherever they are.
    group = await api1.create_group(a, "both", [b, c])
    ws_c = await api2.connect(c)
    g = await api2.send_group(b, group["group_id"], "to the group")
    assert g.status == 201, g
    assert (await ws_a.next())["id"] == g.body["id"]
    assert (await ws_c.next())["id"] == g.body["id"]
    assert await ws_b.nothing(0.2)

    # client_msg_id is idempotent across gateways: the retry through the other one
    # gets the original, and nobody receives it twice.
    first = await api1.send(a, b, "once", client_msg_id="k-1")
    retry = await api2.send(a, b, "once", client_msg_id="k-1")
    assert retry.status == 201 and retry.body["id"] == first.body["id"], retry
    assert (await ws_b.next())["id"] == first.body["id"]
    assert await ws_b.nothing(0.3)

    # The worker stores each message once; history reads the same through either gateway.
    ids = {sent.body["id"], back.body["id"], g.body["id"], first.body["id"]}
    assert_stored_exactly_once(await until_stored(mysql_url, ids), ids)
    h1 = await api1.history_all(a, f"/conversations/{b.user_id}")
    h2 = await api2.history_all(b, f"/conversations/{a.user_id}")
    assert [m["id"] for m in h1] == [m["id"] for m in h2] == [first.body["id"], back.body["id"], sent.body["id"]]
    assert worker.running and one.running and two.running


@pytest.mark.gen_test(timeout=60)
async def test_a_user_with_sockets_on_both_gateways_gets_every_message_on_both_once(
        commands, api, redis_url, mysql_url, secret):
    one, two, worker = await start_stack(commands, redis_url, mysql_url, secret)
    api1, api2 = api(one), api(two)
    a, b, c = await api1.register(), await api2.register(), await api1.register()
    group = await api1.create_group(c, "g", [a, b])
    b_sockets = [Collector(await api1.connect(b), "b@1"), Collector(await api2.connect(b), "b@2"),
                 Collector(await api2.connect(b), "b@2'")]
    a_socket = Collector(await api1.connect(a), "a@1")

    # Concurrent sends through both gateways, private and group, from two senders.
    async def burst(sender_api, sender, n):
        ids = set()
        for i in range(n):
            if i % 3 == 0:
                r = await sender_api.send_group(sender, group["group_id"], f"g{i}")
            else:
                r = await sender_api.send(sender, b, f"p{i}")
            assert r.status == 201, r
            ids.add(r.body["id"])
        return ids

    from_a, from_c = await asyncio.gather(burst(api1, a, 60), burst(api2, c, 60))
    to_b = from_a | from_c
    # b's own sends reach none of b's sockets.
    own = await api2.send(b, a, "from b")
    for socket in b_sockets:
        await socket.until_has(to_b)
    await a_socket.until_has({own.body["id"]})
    await asyncio.sleep(0.3)  # room for a late duplicate to show up
    for socket in b_sockets:
        socket.assert_exactly_once(to_b)
    group_from_c = {f["id"] for f in b_sockets[0].frames if f["type"] == "group" and f["id"] in from_c}
    a_socket.assert_exactly_once({own.body["id"]} | group_from_c)
    all_ids = to_b | {own.body["id"]}
    assert_stored_exactly_once(await until_stored(mysql_url, all_ids), all_ids)
    for socket in (*b_sockets, a_socket):
        await socket.close()
