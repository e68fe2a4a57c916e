"""The socket writer (entrypoints/socket_writer.py): frames a payload once, writes what a
socket was sent during one turn of the loop together, and tells a socket that is closed
or too slow. The e2e tests push through it over real WebSockets."""
from __future__ import annotations

import asyncio
import socket
import struct
import types

import pytest
import tornado.iostream

from entrypoints.http.tornado_overrides import SocketKeepingIOStream, write_to_stream
from entrypoints.socket_writer import SocketWriter, text_frame, text_frame_parts


class Socket:
    def __init__(self, stream, closing: bool = False) -> None:
        self.gone = False
        self.ws_connection = types.SimpleNamespace(stream=stream, is_closing=lambda: closing)
        self.forgotten = self.dropped = 0

    def forget(self) -> None:
        self.forgotten += 1
        self.gone = True

    def drop_slow_reader(self) -> None:
        self.dropped += 1


@pytest.fixture
def pair(io_loop):
    left, right = socket.socketpair()
    right.setblocking(False)
    stream = tornado.iostream.IOStream(left)
    yield stream, right
    stream.close()
    right.close()


def received(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 20)
    except BlockingIOError:
        return b""


@pytest.mark.parametrize("length, header", [
    (0, b"\x81\x00"), (125, b"\x81\x7d"), (126, b"\x81\x7e\x00\x7e"), (65535, b"\x81\x7e\xff\xff"),
    (65536, b"\x81\x7f" + struct.pack("!Q", 65536)),
])
def test_a_text_frame_is_unmasked_with_the_shortest_length(length, header):
    payload = b"x" * length
    assert text_frame(payload) == header + payload


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_frame_of_parts_is_the_frame_of_the_parts_joined(length):
    payload = bytes(range(256)) * (length // 256 + 1)
    cuts = sorted({0, length // 5, length // 2, length - length // 3, length})
    parts = tuple(payload[a:b] for a, b in zip(cuts, cuts[1:], strict=False)) or (b"",)
    assert text_frame_parts(parts) == text_frame(payload[:length])


@pytest.mark.gen_test
async def test_queued_parts_are_written_as_one_frame_in_order_with_the_others(pair):
    stream, peer = pair
    writer, target = SocketWriter(), Socket(stream)
    writer.queue(target, writer.frame(b"one"))
    writer.queue_parts(target, (b'{"a":', b'"2', b'.gB~C~D', b'"}'))
    assert received(peer) == b""  # not before the end of the turn
    await asyncio.sleep(0)
    assert received(peer) == text_frame(b"one") + text_frame(b'{"a":"2.gB~C~D"}')


def test_the_same_payload_object_is_framed_once():
    writer = SocketWriter()
    payload = b'{"type":"private"}'
    assert writer.frame(payload) is writer.frame(payload)
    assert writer.frame(bytes(payload)) == writer.frame(payload)


@pytest.mark.gen_test
async def test_what_a_socket_is_sent_in_one_turn_is_written_together_at_its_end(pair):
    stream, peer = pair
    writer, target = SocketWriter(), Socket(stream)
    writer.queue(target, writer.frame(b"one"))
    writer.queue(target, writer.frame(b"two"))
    assert received(peer) == b""  # not before the end of the turn
    await asyncio.sleep(0)
    assert received(peer) == text_frame(b"one") + text_frame(b"two")


@pytest.mark.gen_test
async def test_a_socket_gone_or_closing_is_not_written_to(pair):
    stream, peer = pair
    writer = SocketWriter()
    gone, closing = Socket(stream), Socket(stream, closing=True)
    gone.gone = True
    writer.queue(gone, writer.frame(b"a"))
    writer.queue(closing, writer.frame(b"b"))
    writer.flush()
    assert received(peer) == b""
    assert (gone.forgotten, closing.forgotten) == (0, 1)


@pytest.mark.gen_test
async def test_a_reader_past_its_write_buffer_is_dropped(pair):
    stream, peer = pair
    stream.max_write_buffer_size = 1024
    writer, slow = SocketWriter(), Socket(stream)
    big = b"x" * (1 << 16)
    for _ in range(64):  # far more than the kernel's buffers take
        writer.queue(slow, writer.frame(bytes(big)))
    writer.flush()
    assert slow.dropped == 1


@pytest.mark.gen_test
async def test_a_frame_to_a_connection_of_the_server_goes_straight_to_its_socket(io_loop):
    """The server's connections are SocketKeepingIOStreams (tornado_overrides.HTTPServer):
    with nothing queued on one, a frame is sent without IOStream.write and its Future."""
    left, right = socket.socketpair()
    right.setblocking(False)
    stream = SocketKeepingIOStream(left)
    stream.write = None  # not called
    try:
        write_to_stream(stream, text_frame(b"hello"))
        assert received(right) == text_frame(b"hello")
    finally:
        del stream.write
        stream.close()
        right.close()
