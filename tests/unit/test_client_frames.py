"""What a client sends on its socket goes, by its "type", to the handler registered for
that type (entrypoints/client_frames.py); ws.py only parses. Malformed frames (not a
JSON object) close the socket in ws.py: tests/e2e/test_websocket.py covers those."""
from __future__ import annotations

import asyncio

import pytest

from entrypoints.client_frames import PONG, ClientFrames, answer_ping
from entrypoints.container import Container
from entrypoints.settings import Settings


class Socket:
    user_id = "u1"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, payload: bytes) -> bool:
        self.sent.append(payload)
        return True


def test_a_ping_is_answered_with_a_pong():
    socket = Socket()
    assert ClientFrames({"ping": answer_ping}).dispatch(socket, {"type": "ping", "id": 7}) is None
    assert socket.sent == [PONG] and PONG == b'{"type":"pong"}'


@pytest.mark.parametrize("frame", [
    {}, {"type": "something-new", "data": [1, 2]}, {"type": None}, {"type": 1}, {"type": ["ping"]},
    {"type": {"ping": 1}}, {"type": "PING"}, {"kind": "ping"},
])
def test_a_frame_of_a_type_without_a_handler_is_ignored(frame):
    socket = Socket()
    assert ClientFrames({"ping": answer_ping}).dispatch(socket, frame) is None
    assert socket.sent == []


@pytest.mark.gen_test
async def test_a_new_type_needs_only_a_handler_and_may_be_async():
    seen = []

    async def typing(socket, frame):
        await asyncio.sleep(0)
        seen.append((socket.user_id, frame["to"]))

    frames = ClientFrames({"ping": answer_ping, "typing": typing})
    assert frames.types == {"ping", "typing"}
    await frames.dispatch(Socket(), {"type": "typing", "to": "u2"})  # ws.py returns it to Tornado, which awaits it
    assert seen == [("u1", "u2")]


def test_the_container_registers_every_client_frame(tmp_path):
    container = Container(settings=Settings(data_dir=tmp_path))
    assert container.client_frames().types == {"ping", "typing", "presence_subscribe"}
