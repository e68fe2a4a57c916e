"""Keeping the cursor of a live socket bounded (docs/design/large-groups.md, sections 6.4
and 22): a connection whose cursor lists 12 groups has a checkpoint written in the
background, and its cursor then names it; a push that would list a 17th group while no
checkpoint has landed is held, like a replay, until one has, and is then sent by the
replay that follows; a failed write closes the socket for resume. Over the fakes of
tests/unit/test_gateway_large_groups.py."""
from __future__ import annotations

import asyncio

import pytest

from adapters.memory.bus import InProcessBus
from application.gateway import Gateway
from application.timeline import Timeline
from domain import errors
from domain.cursor import INLINE_GROUPS, MAX_CURSOR_LENGTH, parse_cursor
from entrypoints.container import encode_delivery
from tests.fakes.checkpoints import MemoryCursorCheckpoints
from tests.fakes.group_streams import MemoryGroupStreams
from tests.fakes.idempotency import MemoryIdempotencyKeys
from tests.fakes.inbox import MemoryInbox
from tests.unit.test_gateway_large_groups import BOB, DAVE, World

GROUPS = 40


class GatedCheckpoints(MemoryCursorCheckpoints):
    """Saves wait for `gate`; with `fail`, they raise ServiceUnavailable."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False
        self.waiting = 0

    async def save(self, user_id, groups):
        self.waiting += 1
        await self.gate.wait()
        self.waiting -= 1
        if self.fail:
            raise errors.ServiceUnavailable("checkpoint")
        return await super().save(user_id, groups)


def world(checkpoints: MemoryCursorCheckpoints) -> tuple[World, MemoryCursorCheckpoints]:
    bus = InProcessBus()
    inbox = MemoryInbox(bus, MemoryIdempotencyKeys())
    streams = MemoryGroupStreams(inbox.next_id, publish=bus.publish)
    gateway = Gateway(inbox, encode_delivery, 0.3, timeline=Timeline(inbox, streams, checkpoints), subscriber=bus)
    bus._subscribers.append(gateway.on_notification)
    w = World(bus, inbox, streams, gateway)
    for i in range(GROUPS):
        w.streams.switch(f"G{i}", [BOB, DAVE])
    return w, checkpoints


def assert_bounded(cursors: list[str]) -> None:
    for cursor in cursors:
        assert len(cursor) <= MAX_CURSOR_LENGTH
        assert len(parse_cursor(cursor).groups) <= INLINE_GROUPS


async def assert_each_cursor_resumes_exactly(w: World, channel) -> None:
    ids = channel.ids
    for index, cursor in enumerate(channel.cursors):
        _, resumed = await w.attach(BOB, cursor)
        assert sorted(resumed.ids) == sorted(ids[index + 1:]), index


@pytest.mark.gen_test
async def test_a_live_connection_is_checkpointed_ahead_of_time_and_nothing_is_held():
    w, checkpoints = world(MemoryCursorCheckpoints())
    conn, channel = await w.attach(BOB)
    sent = []
    for i in range(GROUPS):
        sent.append(w.post(f"G{i}").id)
        await asyncio.sleep(0)  # the write lands before the next push: nothing waits for it
        await asyncio.sleep(0)
        assert channel.ids == sent, i  # each push went out at once
    assert channel.closed_for_resume == []
    assert_bounded(channel.cursors)
    assert len(checkpoints.saved) >= 2  # 40 groups moved: a checkpoint per 12 or so
    assert all(len(groups) >= 12 for _, _, groups in checkpoints.saved)
    assert ".k" in channel.cursors[-1]
    await w.gateway.settled()
    await assert_each_cursor_resumes_exactly(w, channel)


@pytest.mark.gen_test
async def test_a_push_needing_a_17th_group_is_held_until_the_checkpoint_lands_then_sent_once():
    checkpoints = GatedCheckpoints()
    w, _ = world(checkpoints)
    conn, channel = await w.attach(BOB)
    checkpoints.gate.clear()
    sent = [w.post(f"G{i}").id for i in range(GROUPS)]  # no turn of the loop: the write cannot land
    await asyncio.sleep(0)
    assert channel.ids == sent[:INLINE_GROUPS]  # the 17th group waits for the checkpoint
    assert channel.closed_for_resume == [] and checkpoints.waiting == 1
    later = [w.post(f"G{i}").id for i in range(3)]  # held too, behind it
    assert channel.ids == sent[:INLINE_GROUPS]
    checkpoints.gate.set()
    await w.gateway.settled()
    assert channel.ids[:INLINE_GROUPS] == sent[:INLINE_GROUPS]
    assert sorted(channel.ids) == sorted(sent + later)  # every entry once, none lost
    assert channel.closed_for_resume == []
    assert_bounded(channel.cursors)
    again = w.post("G5").id
    assert channel.ids[-1] == again
    await assert_each_cursor_resumes_exactly(w, channel)


@pytest.mark.gen_test
async def test_a_failed_checkpoint_write_closes_the_socket_for_resume_and_its_last_cursor_resumes():
    checkpoints = GatedCheckpoints()
    w, _ = world(checkpoints)
    conn, channel = await w.attach(BOB)
    checkpoints.gate.clear()
    checkpoints.fail = True
    sent = [w.post(f"G{i}").id for i in range(GROUPS)]
    checkpoints.gate.set()
    await w.gateway.settled()
    assert channel.closed_for_resume == ["try_again"]  # 1013
    assert channel.ids == sent[:INLINE_GROUPS]
    assert_bounded(channel.cursors)
    checkpoints.fail = False
    _, resumed = await w.attach(BOB, channel.cursors[-1])
    assert resumed.ids == sent[INLINE_GROUPS:]
    assert_bounded(resumed.cursors)
