"""A push without a cursor (typing, presence: pushed, never stored) goes to a user's
sockets beside the bookkeeping of exactly once (Gateway.push_cursorless)."""
from __future__ import annotations

import json

import pytest

from application.gateway import START
from tests.fakes.channel import RecordingChannel
from tests.unit.courier import Courier, build

TYPING = json.dumps({"type": "typing", "from_user_id": "someone"}).encode()


@pytest.fixture
def live() -> Courier:
    courier = build()
    courier.subscribe_gateway()
    return courier


async def send(courier: Courier, sender, recipient, content: str = "hi"):
    return await courier.send_private(sender.id, {"to_user_id": recipient.id, "content": content})


@pytest.mark.gen_test
async def test_it_goes_to_every_socket_of_the_users_named_and_no_other(live):
    alice, bob, carol = await live.users_named("alice", "bob", "carol")
    phone, laptop, alices, carols = RecordingChannel(), RecordingChannel(), RecordingChannel(), RecordingChannel()
    for user, socket in ((bob, phone), (bob, laptop), (alice, alices), (carol, carols)):
        await live.gateway.attach(user.id, socket, None)
    assert live.gateway.push_cursorless([bob.id, "nobody-here"], TYPING) == 2
    assert phone.payloads == laptop.payloads == [TYPING]
    assert alices.payloads == carols.payloads == []
    assert live.gateway.pushed == 2


@pytest.mark.gen_test
async def test_it_moves_no_cursor_so_stored_messages_still_come_exactly_once(live):
    alice, bob = await live.users_named("alice", "bob")
    first = await send(live, alice, bob, "before")
    socket = RecordingChannel()
    conn = await live.gateway.attach(bob.id, socket, START)
    cursor = conn.last_cursor
    live.gateway.push_cursorless([bob.id], TYPING)
    assert conn.last_cursor == cursor
    second = await send(live, alice, bob, "after")
    assert socket.payloads[1] == TYPING
    assert [m["id"] for m in (socket.messages[0], socket.messages[2])] == [first.id, second.id]


@pytest.mark.gen_test
async def test_during_a_replay_it_is_pushed_at_once_not_held():
    courier = build(yielding_inbox=True)
    courier.subscribe_gateway()
    alice, bob = await courier.users_named("alice", "bob")
    stored = [await send(courier, alice, bob, f"m{i}") for i in range(3)]
    pushed_during = []
    socket = RecordingChannel()
    courier.inbox.before_read.append(lambda: pushed_during.append(courier.gateway.push_cursorless([bob.id], TYPING)))
    await courier.gateway.attach(bob.id, socket, START)
    assert pushed_during == [1]
    assert socket.payloads[0] == TYPING  # before the replay's page: nothing held it back
    assert [m["id"] for m in socket.messages[1:]] == [m.id for m in stored]


@pytest.mark.gen_test
async def test_a_socket_that_is_gone_misses_it(live):
    _, bob = await live.users_named("alice", "bob")
    gone = RecordingChannel(accept=0)
    await live.gateway.attach(bob.id, gone, None)
    assert live.gateway.push_cursorless([bob.id], TYPING) == 0
    assert gone.refused == 1 and live.gateway.pushed == 0
