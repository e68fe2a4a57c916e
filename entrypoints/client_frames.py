"""What a client may send on its socket: one handler per frame type.

entrypoints/ws.py reads a frame (a JSON object; anything else closes the socket with
1008) and hands it to the handler registered for its "type". A frame of a type nobody
registered, or with no "type", is ignored: room for future client messages (docs/api.md). A new
type (typing, read receipts) is a new handler registered in the container
(entrypoints/container.py): ws.py does not change.

A handler is called with the socket and the frame. It may return an awaitable: Tornado
awaits it before reading the socket's next frame. An exception in a handler is logged
and the socket aborted, as for any error in on_message.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol


class ClientSocket(Protocol):
    """A client's open socket, as a frame handler sees it."""

    @property
    def user_id(self) -> str:
        """The user the socket was opened for."""

    def send(self, payload: bytes) -> bool:
        """Queue a frame to the client; False when the socket is gone."""


ClientFrameHandler = Callable[[ClientSocket, dict], "Awaitable[None] | None"]


class ClientFrames:
    """The frame types a client may send, each with its handler."""

    __slots__ = ("_handlers",)

    def __init__(self, handlers: Mapping[str, ClientFrameHandler]):
        self._handlers = dict(handlers)

    @property
    def types(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def dispatch(self, socket: ClientSocket, frame: dict) -> Awaitable[None] | None:
        """Hand `frame` (a JSON object) to the handler of its type; None when it has none."""
        kind = frame.get("type")
        handler = self._handlers.get(kind) if type(kind) is str else None
        if handler is None:
            return None
        return handler(socket, frame)


PONG = b'{"type":"pong"}'


def answer_ping(socket: ClientSocket, frame: dict) -> None:
    """{"type": "ping"} -> {"type": "pong"}: browsers cannot send WebSocket ping frames."""
    socket.send(PONG)
