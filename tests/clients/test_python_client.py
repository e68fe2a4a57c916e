"""The Python client (clients/python, courier_client) against a live Courier, in both
modes: its calls, its sends' retries (a lost reply, a server down, 429, 503) and its
event stream (a live start, a server restarted mid-stream, dropped sockets, an
expired cursor), each checked as "nothing lost, nothing twice"."""
from __future__ import annotations

import asyncio
import logging
import time
from functools import partial

import pytest
from courier_client import RESYNC, Client, CourierError

from tests.clients.conftest import PASSWORD, users
from tests.services import waiting

FAST = dict(backoff_base=0.1, backoff_max=1.0)  # the stream's reconnections, quick for tests

# Live servers in both modes, restarted in some tests: a loaded run takes its time.
eventually = partial(waiting.eventually, timeout=20.0, interval=0.1)


async def history_ids(client: Client, peer_id: str) -> list[str]:
    return [m["id"] async for m in client.iter_private_history(peer_id, page_size=7)]


@pytest.mark.gen_test(timeout=90)
async def test_every_call_of_the_api(deploy, clients, readers):
    courier = await deploy()
    alice, bob, carol = await users(clients, courier.base_url, 3)
    assert (await alice.me())["user_id"] == alice.user_id
    assert (await alice.find_user(bob.username))["user_id"] == bob.user_id
    assert (await alice.get_user(bob.user_id)) == {"user_id": bob.user_id, "username": bob.username}

    with pytest.raises(CourierError) as refused:
        await alice.register(bob.username, PASSWORD)
    assert (refused.value.status, refused.value.code) == (409, "username_taken")
    with pytest.raises(CourierError) as refused:
        await clients(courier.base_url).login(bob.username, "wrong password")
    assert refused.value.status == 401
    with pytest.raises(CourierError) as refused:
        await alice.find_user("nobody-" + alice.username[:10])
    assert (refused.value.status, refused.value.code) == (404, "user_not_found")

    bob_events = readers(bob.events(**FAST))
    await eventually(lambda: _true(bob_events.stream.connected))

    sent = [await alice.send_private(bob.user_id, f"private {i}") for i in range(12)]
    assert [m["seq"] for m in sent] == list(range(1, 13))
    group = await alice.create_group("team", [bob.user_id])
    assert group["member_ids"] == [alice.user_id, bob.user_id] and group["owner_id"] == alice.user_id
    in_group = await alice.send_group(group["group_id"], "standup in 5")
    await alice.add_member(group["group_id"], carol.user_id)
    assert (await carol.get_group(group["group_id"]))["name"] == "team"
    assert (await alice.rename_group(group["group_id"], "the team"))["name"] == "the team"
    await alice.remove_member(group["group_id"], carol.user_id)
    side = await alice.create_group("side")
    assert await alice.invite(side["group_id"], carol.user_id) == {
        "group_id": side["group_id"], "user_id": carol.user_id, "invited_by": alice.user_id}
    assert (await carol.add_member(side["group_id"], carol.user_id))["member_count"] == 2  # by invitation
    with pytest.raises(CourierError) as refused:
        await carol.get_group(group["group_id"])
    assert refused.value.status == 403
    assert [g["group_id"] async for g in bob.iter_groups()] == [group["group_id"]]

    edited = await alice.edit_message(sent[0]["id"], "private 0, edited")
    assert edited["content"] == "private 0, edited" and edited["edited_at"]
    await alice.delete_message(sent[1]["id"])
    with pytest.raises(CourierError) as refused:
        await bob.edit_message(sent[2]["id"], "not mine")
    assert refused.value.status == 403

    # The event stream: every message, the group's changes, the edit and the deletion, once.
    await bob_events.until(lambda r: len(r.of_type("message_deleted")) == 1, what="the deletion")
    assert bob_events.message_ids == [m["id"] for m in sent] + [in_group["id"]]
    assert [(e["type"], e.get("name")) for e in bob_events.of_type("group_updated")] == \
        [("group_updated", "team"), ("group_updated", "the team")]
    assert [e["user_id"] for e in bob_events.of_type("member_added", "member_removed")] == [carol.user_id] * 2
    assert [e["id"] for e in bob_events.of_type("message_updated")] == [sent[0]["id"]]
    cursors = [e["cursor"] for e in bob_events.events]
    assert len(set(cursors)) == len(cursors)

    # History (paged: 12 messages in pages of 7) and the conversation list, once the
    # worker has stored them (production).
    expected = [m["id"] for m in reversed(sent)]
    await eventually(lambda: _equal(history_ids(bob, alice.user_id), expected))
    page = await bob.private_history(alice.user_id, limit=5)
    assert len(page["messages"]) == 5 and page["next_before"] is not None
    older = await bob.private_history(alice.user_id, before=page["next_before"], limit=5)
    assert older["messages"][0]["seq"] == page["messages"][-1]["seq"] - 1
    assert [m["id"] async for m in bob.iter_group_history(group["group_id"])] == [in_group["id"]]
    tombstone = (await bob.private_history(alice.user_id, before=3, limit=1))["messages"][0]
    assert tombstone["deleted"] is True

    async def listed():
        return [c async for c in bob.iter_conversations(page_size=1)]
    def complete(chats):
        return len(chats) == 2 and {c["type"]: c["last_seq"] for c in chats} == {"private": 12, "group": 1}
    chats = await eventually(lambda: _when(listed(), complete))
    private = next(c for c in chats if c["type"] == "private")
    assert private["user_id"] == alice.user_id and private["unread_count"] > 0
    assert await bob.mark_read_private(alice.user_id, 12) == {"read_seq": 12, "unread_count": 0}
    assert (await bob.mark_read_group(group["group_id"], 1))["read_seq"] == 1
    reads = await alice.group_reads(group["group_id"])
    assert {r["user_id"]: r["read_seq"] for r in reads}[bob.user_id] == 1
    await bob_events.until(lambda r: len(r.of_type("read")) == 2, what="bob's read events")

    # Settings, presence on the stream, typing, leaving, logging out.
    assert (await bob.update_settings(send_read_receipts=False))["send_read_receipts"] is False
    assert (await bob.settings())["send_read_receipts"] is False
    assert (await alice.presence(bob.user_id))["status"] == "online"
    alice_events = readers(alice.events(**FAST))
    await eventually(lambda: _true(alice_events.stream.connected))
    alice_events.stream.subscribe_presence([bob.user_id])
    await alice_events.until(lambda r: any(e.get("user_id") == bob.user_id for e in r.of_type("presence")),
                             what="bob's presence")
    assert bob_events.stream.typing("start", to_user_id=alice.user_id)
    await alice_events.until(lambda r: r.of_type("typing"), what="bob typing")
    await bob.leave_group(group["group_id"])
    await bob.logout()
    with pytest.raises(CourierError) as refused:
        await bob.me()
    assert refused.value.status == 401


async def _true(value) -> bool:
    return bool(value)


async def _equal(awaitable, expected) -> bool:
    return await awaitable == expected


async def _when(awaitable, check):
    value = await awaitable
    return value if check(value) else None


@pytest.mark.gen_test(timeout=60)
async def test_a_send_whose_answer_is_lost_is_sent_again_and_delivered_once(deploy, clients, proxies, readers):
    courier = await deploy()
    proxy = await proxies(courier)
    alice, bob = await users(clients, courier.base_url, 2)
    via_proxy = clients(proxy.base_url, backoff_base=0.05)
    via_proxy.token, via_proxy.user_id = alice.token, alice.user_id
    bob_events = readers(bob.events(**FAST))
    await eventually(lambda: _true(bob_events.stream.connected))

    proxy.lose_next_reply(b"POST /api/v1/messages")
    message = await via_proxy.send_private(bob.user_id, "sent twice, delivered once")
    assert proxy.replies_lost == 1  # the first attempt was taken, and its answer lost
    group = await alice.create_group("g", [bob.user_id])
    proxy.lose_next_reply(f"POST /api/v1/groups/{group['group_id']}/messages".encode())
    in_group = await via_proxy.send_group(group["group_id"], "to the group, once")
    assert proxy.replies_lost == 2

    await bob_events.until(lambda r: len(r.message_ids) == 2, what="both messages")
    await asyncio.sleep(0.3)
    assert bob_events.message_ids == [message["id"], in_group["id"]]
    pulled = (await bob.pull_events())["events"]
    assert [e["id"] for e in pulled if e["type"] in ("private", "group")] == [message["id"], in_group["id"]]


@pytest.mark.gen_test(timeout=90)
async def test_a_send_waits_for_a_server_that_is_down(deploy, clients, readers, caplog):
    courier = await deploy()
    alice, bob = await users(clients, courier.base_url, 2, backoff_base=0.1, backoff_max=0.5)
    before = await alice.send_private(bob.user_id, "before")
    await courier.stop_gateway()
    caplog.set_level(logging.INFO, logger="courier_client")
    sending = asyncio.ensure_future(alice.send_private(bob.user_id, "while the server is down"))
    await asyncio.sleep(1.0)
    assert not sending.done()
    await courier.start_gateway()
    during = await asyncio.wait_for(sending, 20)
    assert during["seq"] == before["seq"] + 1
    assert "network_error" in caplog.text
    async def pulled_ids():
        return [e["id"] for e in (await bob.pull_events())["events"]]
    assert await pulled_ids() == [before["id"], during["id"]]


@pytest.mark.gen_test(timeout=60)
async def test_sends_past_the_rate_limit_wait_for_retry_after(deploy, clients, caplog):
    courier = await deploy(COURIER_SEND_RATE=1)  # one a second, in bursts of two
    alice, bob = await users(clients, courier.base_url, 2)
    caplog.set_level(logging.INFO, logger="courier_client")
    started = time.monotonic()
    sent = [await alice.send_private(bob.user_id, f"m{i}") for i in range(5)]
    assert time.monotonic() - started >= 2.0
    assert "429 rate_limited" in caplog.text
    assert [m["seq"] for m in sent] == [1, 2, 3, 4, 5]
    pulled = (await bob.pull_events())["events"]
    assert [e["id"] for e in pulled] == [m["id"] for m in sent]


@pytest.mark.parametrize("mode", ["production"], indirect=True)
@pytest.mark.gen_test(timeout=90)
async def test_sends_answered_503_while_redis_is_down_are_retried(deploy, own_redis, clients, caplog):
    courier = await deploy(COURIER_REDIS_URL=own_redis.url)
    alice, bob = await users(clients, courier.base_url, 2, backoff_base=0.1, backoff_max=0.5)
    before = await alice.send_private(bob.user_id, "before")
    caplog.set_level(logging.INFO, logger="courier_client")
    own_redis.kill()
    sending = asyncio.ensure_future(alice.send_private(bob.user_id, "while redis is down"))
    await eventually(lambda: _true("503" in caplog.text), timeout=15)
    assert not sending.done()
    own_redis.start()
    during = await asyncio.wait_for(sending, 30)
    assert during["seq"] == before["seq"] + 1
    pulled = await eventually(lambda: _when(bob.pull_events(), lambda p: len(p["events"]) >= 2))
    assert [e["id"] for e in pulled["events"]] == [before["id"], during["id"]]


async def send_all(sender: Client, to_user_id: str, n: int, pause: float = 0.05) -> list[str]:
    ids = []
    for i in range(n):
        ids.append((await sender.send_private(to_user_id, f"message {i}"))["id"])
        await asyncio.sleep(pause)
    return ids


@pytest.mark.gen_test(timeout=120)
async def test_the_stream_resumes_across_a_server_restart_nothing_lost_nothing_twice(deploy, clients, readers):
    courier = await deploy()
    alice, bob = await users(clients, courier.base_url, 2, backoff_base=0.1, backoff_max=0.5)
    bob_events = readers(bob.events(**FAST))
    await eventually(lambda: _true(bob_events.stream.connected))
    n = 40
    sending = asyncio.ensure_future(send_all(alice, bob.user_id, n))
    await bob_events.until(lambda r: len(r.message_ids) >= 10, what="the first messages")
    await courier.restart_gateway()  # while alice keeps sending, and bob's stream is open
    sent = await asyncio.wait_for(sending, 60)
    await bob_events.until(lambda r: len(r.message_ids) >= n, what=f"{n} messages")
    await asyncio.sleep(0.5)  # room for a late duplicate
    assert bob_events.message_ids == sent  # every one, once, in order
    assert bob_events.stream.connects >= 2
    assert bob_events.stream.cursor == bob_events.events[-1]["cursor"]


@pytest.mark.gen_test(timeout=120)
async def test_the_stream_resumes_after_dropped_sockets(deploy, clients, proxies, readers):
    courier = await deploy()
    proxy = await proxies(courier)
    alice, bob = await users(clients, courier.base_url, 2)
    via_proxy = clients(proxy.base_url)
    via_proxy.token = bob.token
    bob_events = readers(via_proxy.events(**FAST))
    await eventually(lambda: _true(bob_events.stream.connected))
    n = 60
    sending = asyncio.ensure_future(send_all(alice, bob.user_id, n, pause=0.03))
    for _ in range(3):
        await asyncio.sleep(0.4)
        proxy.cut()  # no close frame: the connection is just gone
    await asyncio.sleep(0.2)
    await proxy.pause()  # and for a while nothing answers at all
    await asyncio.sleep(0.8)
    await proxy.resume()
    sent = await asyncio.wait_for(sending, 60)
    await bob_events.until(lambda r: len(r.message_ids) >= n, what=f"{n} messages")
    await asyncio.sleep(0.5)
    assert bob_events.message_ids == sent
    assert bob_events.stream.connects >= 4


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
@pytest.mark.gen_test(timeout=90)
async def test_an_expired_cursor_falls_back_to_the_retained_log_and_says_so(deploy, clients, proxies, readers):
    courier = await deploy(COURIER_INBOX_MAXLEN=5)
    proxy = await proxies(courier)
    alice, bob = await users(clients, courier.base_url, 2)
    via_proxy = clients(proxy.base_url)
    via_proxy.token = bob.token
    bob_events = readers(via_proxy.events(**FAST))
    await eventually(lambda: _true(bob_events.stream.connected))
    first = await send_all(alice, bob.user_id, 2, pause=0)
    await bob_events.until(lambda r: len(r.message_ids) == 2, what="the first two")
    last_seen = bob_events.stream.cursor
    await proxy.pause()  # bob is away while 10 more come: the inbox keeps 5
    missed = await send_all(alice, bob.user_id, 10, pause=0)
    retained = [e["id"] for e in (await bob.pull_events())["events"]]
    assert retained == missed[-5:]
    await proxy.resume()
    await bob_events.until(lambda r: r.of_type(RESYNC), what="the resync")
    # The stream reads the retained log after it says resync: a send before that read would
    # trim the log's oldest entry away (the inbox keeps 5), so wait for what it retained.
    await bob_events.until(lambda r: set(retained) <= set(r.message_ids), what="the retained log")
    later = await alice.send_private(bob.user_id, "after the gap")
    await bob_events.until(lambda r: later["id"] in r.message_ids, what="the live message")
    await asyncio.sleep(0.3)
    types = [e["type"] for e in bob_events.events]
    resync = bob_events.of_type(RESYNC)
    assert resync == [{"type": RESYNC, "expired_cursor": last_seen}]
    assert types.index(RESYNC) == 2  # after the two it had, before anything else
    assert bob_events.message_ids == first + retained + [later["id"]]
    assert bob_events.stream.resyncs == 1


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_where_a_stream_starts(deploy, clients, readers):
    courier = await deploy()
    alice, bob = await users(clients, courier.base_url, 2)
    old = await send_all(alice, bob.user_id, 3, pause=0)
    live = readers(bob.events(**FAST))  # from the end of the log as it is now
    from_start = readers(bob.events(from_start=True, **FAST))
    await eventually(lambda: _true(live.stream.connected and from_start.stream.connected))
    assert live.stream.cursor is not None  # the end of the log was found before the socket
    new = await send_all(alice, bob.user_id, 2, pause=0)
    await live.until(lambda r: len(r.message_ids) == 2)
    await from_start.until(lambda r: len(r.message_ids) == 5)
    assert live.message_ids == new
    assert from_start.message_ids == old + new
    after_first = readers(bob.events(cursor=from_start.events[0]["cursor"], **FAST))
    await after_first.until(lambda r: len(r.message_ids) == 4)
    assert after_first.message_ids == old[1:] + new


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_a_revoked_token_ends_the_stream_with_401(deploy, clients, readers):
    courier = await deploy()
    (bob,) = await users(clients, courier.base_url, 1)
    other_device = clients(courier.base_url)
    other_device.token = bob.token
    bob_events = readers(other_device.events(**FAST))
    await eventually(lambda: _true(bob_events.stream.connected))
    await bob.logout()
    await eventually(lambda: _true(bob_events.error is not None))
    assert isinstance(bob_events.error, CourierError) and bob_events.error.status == 401


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_pings_keep_a_quiet_stream_and_find_a_dead_one(deploy, clients, proxies, readers):
    courier = await deploy()
    proxy = await proxies(courier)
    alice, bob = await users(clients, courier.base_url, 2)
    via_proxy = clients(proxy.base_url)
    via_proxy.token = bob.token
    bob_events = readers(via_proxy.events(ping_interval=0.2, ping_timeout=0.6, **FAST))
    await eventually(lambda: _true(bob_events.stream.connected))
    await asyncio.sleep(1.5)  # quiet, but its pings are answered: the socket stays
    assert bob_events.stream.connects == 1
    proxy.freeze()  # the connection is still open, but nothing comes through any more
    sent = (await alice.send_private(bob.user_id, "through a dead connection"))["id"]
    await bob_events.until(lambda r: r.message_ids == [sent], what="the message, after a new connection")
    assert bob_events.stream.connects == 2
