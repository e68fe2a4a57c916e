"""The socket writer: frames what the gateway pushes and writes it to the WebSockets.

Its one job is getting bytes onto the sockets, fast: which frames go to a socket is the
gateway's business (application/gateway.py), when a socket opens or closes the
handler's (entrypoints/ws.py).

- A payload is framed once (RFC 6455, unmasked: server frames are never masked) and
  the frame is remembered: the gateway hands the same bytes object to every socket a
  message goes to, so a fan-out to a thousand sockets is one JSON encoding, one frame
  and a thousand socket sends (Gorilla's PreparedMessage).
- Frames for one socket during one turn of the event loop are written together, at
  the end of the turn: when the gateway pushes several notifications in one go (the
  subscriber found several waiting, i.e. exactly when it is behind), a socket costs one
  system call instead of one per frame. A frame waits at most until the loop's next turn.
- Frames are written without Tornado's write_message, which would frame the payload
  again for every socket and make a Future, a coroutine and a Task per frame:
  tornado_overrides.write_to_stream hands them to the socket directly when nothing is
  queued on it.
- A socket that falls more than its write buffer (ws_write_buffer) behind is told to
  drop itself as a slow reader; one that is closed, to forget itself.
"""
from __future__ import annotations

import asyncio
import struct
from typing import Protocol

import tornado.iostream
import tornado.websocket

from entrypoints.http.tornado_overrides import has_unsent, write_to_stream

PING_FRAME = b"\x89\x00"  # FIN + ping opcode, no payload
_TEXT_FIN = 0x81  # FIN + text opcode; frames from a server are never masked
_HEADER_16 = struct.Struct("!BBH").pack
WRITE_CHUNK = 64 * 1024  # frames for one socket are joined into writes of about this size


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented, uncompressed text frame (RFC 6455 section 5.2)."""
    length = len(payload)
    if length < 126:
        return bytes((_TEXT_FIN, length)) + payload
    if length <= 0xFFFF:
        return struct.pack("!BBH", _TEXT_FIN, 126, length) + payload
    return struct.pack("!BBQ", _TEXT_FIN, 127, length) + payload


def text_frame_parts(parts: tuple[bytes, ...]) -> bytes:
    """text_frame(b"".join(parts)), joining once: the header is computed from the parts'
    total length, and the header and the parts are copied into one bytes object. (A
    spliced frame: docs/design/large-groups.md, section 6.3.)"""
    length = sum(map(len, parts))
    if length < 126:
        header = bytes((_TEXT_FIN, length))
    elif length <= 0xFFFF:
        header = _HEADER_16(_TEXT_FIN, 126, length)
    else:
        header = struct.pack("!BBQ", _TEXT_FIN, 127, length)
    return b"".join((header, *parts))


class WritableSocket(Protocol):
    """What the writer needs of a socket (entrypoints/ws.py's SocketHandler)."""

    gone: bool  # forgotten (closed, or closing): nothing more is written to it
    ws_connection: tornado.websocket.WebSocketProtocol | None

    def forget(self) -> None:
        """The socket is closed: stop pushing to it."""

    def drop_slow_reader(self) -> None:
        """Its write buffer is full: close it, for the client to resume from its cursor."""


class SocketWriter:
    """Frames payloads and writes them; one per process, shared by its sockets."""

    __slots__ = ("_payload", "_frame", "_pending", "_scheduled")

    def __init__(self) -> None:
        self._payload: bytes | None = None
        self._frame = b""
        self._pending: dict[WritableSocket, bytes | list[bytes]] = {}
        self._scheduled = False

    def frame(self, payload: bytes) -> bytes:
        if payload is not self._payload:
            self._frame = text_frame(payload)
            self._payload = payload
        return self._frame

    def queue(self, socket: WritableSocket, frame: bytes) -> None:
        """Write `frame` to `socket` at the end of this turn of the loop."""
        pending = self._pending
        queued = pending.get(socket)
        if queued is None:
            pending[socket] = frame
            if not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self.flush)
        elif type(queued) is list:
            queued.append(frame)
        else:
            pending[socket] = [queued, frame]

    def queue_parts(self, socket: WritableSocket, parts: tuple[bytes, ...]) -> None:
        """Write a frame whose payload is the parts joined (a frame of this socket's
        own, made of parts it shares with others) at the end of this turn of the loop."""
        self.queue(socket, text_frame_parts(parts))

    def flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for socket, queued in pending.items():
            _write(socket, queued)

    async def drain(self, socket: WritableSocket) -> None:
        """Wait until what was queued for `socket` so far has been handed to the kernel."""
        self.flush()
        protocol = socket.ws_connection
        if protocol is None or protocol.is_closing() or not has_unsent(protocol.stream):
            return
        try:
            # Resolves once everything queued so far has been handed to the kernel.
            await protocol.stream.write(b"")
        except (tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
            socket.forget()


def _write(socket: WritableSocket, queued: bytes | list[bytes]) -> None:
    """Write what was gathered for one socket during one turn of the loop, in writes
    of up to WRITE_CHUNK bytes: each is taken whole or refused whole by the write
    buffer limit, so a reader that falls behind still gets every frame that fits
    before it is dropped (a replay of a large backlog makes progress)."""
    if socket.gone:
        return
    protocol = socket.ws_connection
    if protocol is None or protocol.is_closing():
        socket.forget()
        return
    stream = protocol.stream
    try:
        if type(queued) is bytes:
            write_to_stream(stream, queued)
            return
        chunk: list[bytes] = []
        size = 0
        for frame in queued:
            chunk.append(frame)
            size += len(frame)
            if size >= WRITE_CHUNK:
                write_to_stream(stream, b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            write_to_stream(stream, chunk[0] if len(chunk) == 1 else b"".join(chunk))
    except tornado.iostream.StreamBufferFullError:
        socket.drop_slow_reader()
    except (tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
        socket.forget()
