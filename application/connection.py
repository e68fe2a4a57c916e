"""One socket of a user, as the gateway keeps it: its view, its place in the user's log
and the live pushes held back while it replays (application/gateway.py says how exactly
once is kept). A connection whose user is in large groups keeps a place in each of
their streams too: application/vector_connection.py."""
from __future__ import annotations

from typing import Protocol

from domain.events import Delivery
from domain.model import cursor_position

MAX_HELD = 1000  # live pushes kept back during one connection's replay


class ClientChannel(Protocol):
    """One client's open socket, as the gateway sees it."""

    def send(self, payload: bytes) -> bool:
        """Queue a frame; False when the connection is gone (closed, or dropped as too slow)."""

    def send_parts(self, parts: tuple[bytes, ...]) -> bool:
        """Queue a frame whose payload is b"".join(parts) (a spliced frame: its parts are
        shared with other sockets, only the join is this socket's); False as send."""

    async def drain(self) -> None:
        """Wait until the queued frames have been handed to the network (a replay
        paces itself on this, so a large backlog never outgrows the buffer)."""

    def resume_later(self, cursor_expired: bool) -> None:
        """Close the connection so the client resumes from its last cursor
        (telling it when that cursor has expired)."""


_NOWHERE = (-1, -1)  # before every position: a connection without a cursor takes anything


class Connection:
    """One socket of a user. `events` chooses its view of the user's log (domain.events):
    True, every event (own sends, group changes); False, the original view: messages
    from others (never one's own, not even a note to oneself: the sender has it)."""

    # `vector`, `frames` and `_prefix` are VectorConnection's (the same layout, so that a
    # connection can become one when its user joins a large group); a plain connection
    # never reads them.
    __slots__ = ("user_id", "channel", "events", "_last_cursor", "_last_position", "_replaying", "_read_again",
                 "_held", "vector", "frames", "_prefix")

    def __init__(self, user_id: str, channel: ClientChannel, last_cursor: str | None, events: bool = False):
        self.user_id = user_id
        self.channel = channel
        self.events = events
        self.last_cursor = last_cursor
        self._replaying = False
        self._read_again = False
        self._held: list = []  # (delivery, position, payload); VectorConnection's: (stream, position, item, payload)

    @property
    def last_cursor(self) -> str | None:
        return self._last_cursor

    @last_cursor.setter
    def last_cursor(self, cursor: str | None) -> None:
        # The position is kept beside the cursor (parsed at the next push) so that a
        # push compares two tuples instead of parsing two cursors per socket.
        self._last_cursor = cursor
        self._last_position: tuple[int, int] | None = None

    def push(self, delivery: Delivery, payload: bytes, position: tuple[int, int] | None = None) -> bool:
        """`position` is cursor_position(delivery.cursor), when the caller has it already."""
        if position is None:
            position = cursor_position(delivery.cursor)
        if self._replaying:
            if len(self._held) < MAX_HELD:
                self._held.append((delivery, position, payload))
            else:
                # Everything held is in the inbox too: let the replay read it
                # from there instead of holding an unbounded list in memory.
                self._held.clear()
                self._read_again = True
            return False
        last = self._last_position
        if last is None:
            cursor = self._last_cursor
            last = self._last_position = _NOWHERE if cursor is None else cursor_position(cursor)
        if position <= last:
            return False  # already sent by a replay
        self._last_cursor = delivery.cursor
        self._last_position = position
        return self.channel.send(payload)
