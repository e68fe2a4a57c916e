"""The design's promise: "run two `courier serve` processes on two ports against one
Redis, a user on one receives what is sent through the other", and a user with
sockets on both gets every message on both, once. Real processes: two
`courier serve` and one `courier worker`, on the claimed Redis database and the
run's MariaDB database."""
from __future__ import annotations

import asyncio

import pytest

from tests.production.support import (
    Collector,
    GroupChanges,
    Sender,
    assert_history_agrees,
    assert_stored_exactly_once,
    check_event_view,
    check_original_view,
    start_stack,
    until_stored,
)

pytestmark = [pytest.mark.redis, pytest.mark.mysql]


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


@pytest.mark.gen_test(timeout=60)
async def test_an_event_view_socket_on_one_gateway_sees_the_own_send_made_through_the_other(
        commands, api, redis_url, mysql_url, secret):
    """Issue 14: a's other device, in the event view on gateway 2, gets what a sent through
    gateway 1 (with its client_msg_id) and the group changes a made there, each once; a's
    original-view socket on gateway 2 gets only b's messages; seqs agree with the history."""
    one, two, worker = await start_stack(commands, redis_url, mysql_url, secret)
    api1, api2 = api(one), api(two)
    a, b, c = await api1.register(), await api2.register(), await api1.register()
    events_a = Collector(await api2.connect(a, events=True), "a events@2")
    original_a = Collector(await api2.connect(a), "a@2")
    events_b = Collector(await api1.connect(b, events=True), "b events@1")
    changes = GroupChanges(api1, a)
    group = await changes.create("both", [b])
    a_sends, b_sends = Sender(api1, a), Sender(api2, b)
    for i in range(10):
        await a_sends.send(f"a{i}", to=b)
        await b_sends.send(f"b{i}", to=a)
        await a_sends.send(f"ag{i}", group_id=group["group_id"])
        if i % 3 == 0:
            await changes.add(group["group_id"], c)
            await changes.rename(group["group_id"], f"both {i}")
            await changes.remove(group["group_id"], c)
    # A retry through the other gateway: the same message, not a second one.
    key, first = next(iter(a_sends.accepted.items()))
    retry = await api2.send(a, b, "a0", client_msg_id=key)
    assert retry.status == 201 and retry.body["id"] == first, retry
    ids = a_sends.ids | b_sends.ids
    assert_stored_exactly_once(await until_stored(mysql_url, ids), ids)
    log = await check_event_view(api2, a, events_a, ids, changes.made, a_sends.accepted)
    await check_original_view(original_a, a, log)
    await assert_history_agrees(api2, a, log)
    await check_event_view(api1, b, events_b, ids, changes.made, b_sends.accepted)
    assert worker.running and one.running and two.running
