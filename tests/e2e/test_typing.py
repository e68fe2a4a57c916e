"""Typing indicators (issue 16 point 1), in both modes: relayed to the other
participants' event-view sockets and never to the typer's, ended by a stop or by itself,
refused for a non-member, capped at two frames a second per socket, and unseen on the
original view."""
from __future__ import annotations

import asyncio
import uuid

import pytest

PING = {"type": "ping"}


def typing(state: str, **target) -> dict:
    return {"type": "typing", "state": state, **target}


async def pong(ws) -> None:
    """The socket is open and has sent everything before this."""
    ws.send(PING)
    assert await ws.next() == {"type": "pong"}


@pytest.mark.gen_test(timeout=60)
async def test_private_typing_reaches_the_other_user_only(api):
    a, b = await api.register(), await api.register()
    a_ws, a_other, b_ws = (await api.connect(a, events=True), await api.connect(a, events=True),
                           await api.connect(b, events=True))
    a_ws.send(typing("start", to_user_id=b.user_id))
    assert await b_ws.next() == {"type": "typing", "user_id": a.user_id, "to_user_id": b.user_id, "state": "start"}
    a_ws.send(typing("stop", to_user_id=b.user_id))
    assert await b_ws.next() == {"type": "typing", "user_id": a.user_id, "to_user_id": b.user_id, "state": "stop"}
    # Not the typer's own sockets.
    await pong(a_ws)
    assert await a_other.nothing(0.3)


@pytest.mark.gen_test(timeout=60)
async def test_group_typing_reaches_every_other_member(api):
    a, b, c, d = [await api.register() for _ in range(4)]
    group = await api.create_group(a, "team", [b, c])
    sockets = {who.user_id: await api.connect(who, events=True) for who in (a, b, c, d)}
    sockets[b.user_id].send(typing("start", group_id=group["group_id"]))
    expected = {"type": "typing", "user_id": b.user_id, "group_id": group["group_id"], "state": "start"}
    assert await sockets[a.user_id].next() == expected
    assert await sockets[c.user_id].next() == expected
    await pong(sockets[b.user_id])
    assert await sockets[d.user_id].nothing(0.2)  # not a member


@pytest.mark.gen_test(timeout=60)
async def test_a_start_ends_by_itself_and_a_closed_socket_ends_its_typing(api):
    a, b = await api.register(), await api.register()
    a_ws, b_ws = await api.connect(a, events=True), await api.connect(b, events=True)
    a_ws.send(typing("start", to_user_id=b.user_id))
    assert (await b_ws.next())["state"] == "start"
    # No new start within 6 s: the server sends the stop.
    loop = asyncio.get_running_loop()
    started = loop.time()
    frame = await b_ws.next(timeout=10)
    assert frame == {"type": "typing", "user_id": a.user_id, "to_user_id": b.user_id, "state": "stop"}
    assert loop.time() - started > 4  # by itself, not at once
    # A socket that closes while typing: the stop comes at once.
    typer = await api.connect(a, events=True)
    typer.send(typing("start", to_user_id=b.user_id))
    assert (await b_ws.next())["state"] == "start"
    typer.close()
    assert (await b_ws.next(timeout=3))["state"] == "stop"


@pytest.mark.gen_test(timeout=60)
async def test_only_a_participant_may_type_and_the_socket_stays_open(api):
    a, b, c = [await api.register() for _ in range(3)]
    group = await api.create_group(a, "team", [b])
    c_ws, a_ws = await api.connect(c, events=True), await api.connect(a, events=True)
    c_ws.send(typing("start", group_id=group["group_id"]))
    frame = await c_ws.next()
    assert frame["type"] == "error" and frame["code"] == "not_a_member", frame
    c_ws.send(typing("start", group_id=str(uuid.uuid4())))  # no such group: the same answer
    assert (await c_ws.next())["code"] == "not_a_member"
    await pong(c_ws)
    assert await a_ws.nothing(0.2)
    await asyncio.sleep(1.0)  # every typing frame counts against the cap of two a second
    c_ws.send(typing("start", to_user_id=str(uuid.uuid4())))
    assert (await c_ws.next())["code"] == "user_not_found"


@pytest.mark.gen_test(timeout=60)
async def test_malformed_typing_frames_are_answered_with_an_error(api):
    a, b = await api.register(), await api.register()
    ws = await api.connect(a, events=True)
    for frame in (typing("typing", to_user_id=b.user_id), {"type": "typing", "to_user_id": b.user_id},
                  typing("start"), typing("start", to_user_id=b.user_id, group_id=b.user_id),
                  typing("start", to_user_id=12)):
        ws.send(frame)
        answer = await ws.next()
        assert answer["type"] == "error" and answer["code"] == "invalid_input", (frame, answer)
        await asyncio.sleep(0.55)  # under the cap of two a second
    await pong(ws)


@pytest.mark.gen_test(timeout=60)
async def test_at_most_two_typing_frames_a_second_are_relayed(api):
    a, b = await api.register(), await api.register()
    a_ws, b_ws = await api.connect(a, events=True), await api.connect(b, events=True)
    for state in ("start", "stop", "start", "stop", "start", "stop"):
        a_ws.send(typing(state, to_user_id=b.user_id))
    await pong(a_ws)
    assert [f["state"] for f in await b_ws.take(2)] == ["start", "stop"]
    assert await b_ws.nothing(0.3)  # the other four were dropped, silently
    assert await a_ws.nothing(0.1)
    await asyncio.sleep(1.0)
    a_ws.send(typing("start", to_user_id=b.user_id))
    assert (await b_ws.next())["state"] == "start"


@pytest.mark.gen_test(timeout=60)
async def test_the_original_view_never_sees_typing(api):
    a, b = await api.register(), await api.register()
    b_original, b_events = await api.connect(b), await api.connect(b, events=True)
    a_original = await api.connect(a)
    a_original.send(typing("start", to_user_id=b.user_id))  # ignored, as any unknown frame was
    await pong(a_original)
    assert await b_events.nothing(0.3)
    a_events = await api.connect(a, events=True)
    a_events.send(typing("start", to_user_id=b.user_id))
    assert (await b_events.next())["state"] == "start"
    assert await b_original.nothing(0.3)
    # The original view still gets its messages, and only them.
    sent = (await api.send(a, b, "hello")).body
    assert (await b_original.next())["id"] == sent["id"]


@pytest.mark.gen_test(timeout=60)
async def test_a_repeated_start_reaches_a_socket_opened_meanwhile(api):
    a, b = await api.register(), await api.register()
    a_ws, b_ws = await api.connect(a, events=True), await api.connect(b, events=True)
    a_ws.send(typing("start", to_user_id=b.user_id))
    assert (await b_ws.next())["state"] == "start"
    late = await api.connect(b, events=True)  # b's other device, opened while a types
    await asyncio.sleep(1.0)  # the cap
    a_ws.send(typing("start", to_user_id=b.user_id))  # a keeps typing
    assert (await late.next())["state"] == "start"
    assert (await b_ws.next())["state"] == "start"
