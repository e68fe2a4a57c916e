"""RelayTyping: what a socket that closes leaves behind."""
from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from adapters.memory.presence import InProcessTypingBus
from application.typing_indicators import RelayTyping

ALICE, BOB = (str(uuid.uuid4()) for _ in range(2))


class Socket:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.events = True
        self.frames: list[bytes] = []

    def send(self, payload: bytes) -> bool:
        self.frames.append(payload)
        return True


class SlowUsers:
    """Every user exists, once `gate` opens (a database's round trip)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def get(self, user_id: str):
        await self.gate.wait()
        return object()


@pytest.mark.gen_test
async def test_a_socket_closed_while_its_typing_frame_is_looked_up_is_not_kept():
    users, bus = SlowUsers(), InProcessTypingBus()
    published = []
    bus._subscribers.append(published.append)
    relay = RelayTyping(groups=None, users=users, bus=bus, encode=orjson.dumps)
    alice = Socket(ALICE)
    frame = asyncio.ensure_future(relay(alice, {"type": "typing", "to_user_id": BOB, "state": "start"}))
    await asyncio.sleep(0)
    relay.socket_closed(alice)  # the tab closed while its start was on the way
    users.gate.set()
    await frame
    await asyncio.sleep(0)
    assert relay._started == {} and relay._relayed == {}
    assert published == []  # a start nobody would ever stop here is not relayed


class NoMemberLists:
    """A group repository that must not be read: a large group's members are not."""

    async def get(self, group_id: str):
        raise AssertionError("the member list was read")


@pytest.mark.gen_test
async def test_typing_in_a_large_group_is_relayed_to_nobody_and_reads_no_member_list():
    from tests.fakes.group_streams import MemoryGroupStreams

    streams, bus = MemoryGroupStreams(iter(range(1, 100)).__next__), InProcessTypingBus()
    published = []
    bus._subscribers.append(published.append)
    group_id, outsider = str(uuid.uuid4()), str(uuid.uuid4())
    streams.switch(group_id, [ALICE, BOB])
    relay = RelayTyping(groups=NoMemberLists(), users=None, bus=bus, encode=orjson.dumps, streams=streams)
    alice, stranger = Socket(ALICE), Socket(outsider)
    await relay(alice, {"type": "typing", "group_id": group_id, "state": "start"})
    await relay(stranger, {"type": "typing", "group_id": group_id, "state": "start"})
    await asyncio.sleep(0)
    assert published == [] and alice.frames == []  # a member: answered as ever (nothing), relayed nowhere
    [refused] = stranger.frames
    assert orjson.loads(refused)["code"] == "not_a_member"
    relay.socket_closed(alice)
    await asyncio.sleep(0)
    assert published == []  # no start was kept, so no stop goes out either
