"""A connection whose user is in large groups: one position per stream it reads (its
vector: the own log and each large group's stream), and the duplicate test kept per
stream (docs/design/large-groups.md, section 6.2).

A plain Connection (application/connection.py) becomes one - the same object, its
class changed - when the gateway first finds a large group for its user. That keeps
the push of a user in no large group exactly as it was: the very frame shared by
every recipient, with no test per socket of which kind the connection is.

A push is a duplicate when it is at or before its stream's position. A group entry
outside the user's intervals (join, leave] is not for this user. Either is skipped;
anything else moves its stream's position on, also when the view does not show it,
so that the cursor keeps each stream's consumed prefix. While the connection
replays, pushes are held with their stream and released after it through the same
tests."""
from __future__ import annotations

from collections.abc import Callable

from application.connection import MAX_HELD, Connection
from domain.cursor import Position
from domain.events import Delivery, Event
from domain.model import Message, cursor_position
from domain.vector import Interval, Slot, Vector

OWN = None  # the own log, in a held push: (stream, position, delivery or event, payload)


class VectorConnection(Connection):
    __slots__ = ()

    vector: Vector
    encode: Callable[[Delivery, str | None], bytes]

    @classmethod
    def of(cls, conn: Connection, vector: Vector, encode: Callable[[Delivery, str | None], bytes]) -> VectorConnection:
        """`conn` as a VectorConnection at `vector` (which includes its own position)."""
        if isinstance(conn, VectorConnection):
            conn.vector = vector
            return conn
        held = conn._held
        conn.__class__ = cls  # the same slots: only the methods change (see the module's doc)
        assert isinstance(conn, VectorConnection)
        conn.vector, conn.encode = vector, encode
        conn._held = [(OWN, position, delivery, payload) for delivery, position, payload in held]
        return conn

    @property
    def last_cursor(self) -> str | None:
        return self.vector.text()

    @last_cursor.setter
    def last_cursor(self, cursor: str | None) -> None:
        raise AttributeError("a VectorConnection moves through its vector")

    def push(self, delivery: Delivery, payload: bytes, position: tuple[int, int] | None = None) -> bool:
        """An own-log entry (the gateway's shared frame in `payload`)."""
        if position is None:
            position = cursor_position(delivery.cursor)
        if self._replaying:
            return self._hold(OWN, position, delivery, payload)
        vector = self.vector
        if vector.own is not None and position <= vector.own:
            return False  # already sent by a replay
        vector.own = position
        cursor = self._cursor()
        if cursor is None:
            return False
        if cursor != delivery.cursor:
            # The cursor names the groups too: a frame of its own (step 4 splices it instead).
            payload = self.encode(Delivery(delivery.event, cursor), self.user_id if self.events else None)
        return self.channel.send(payload)

    def push_group(self, stream: int, position: Position, event: Event) -> bool:
        """An entry of a large group's stream."""
        if self._replaying:
            return self._hold(stream, position, event, None)
        slot = self.vector.slots.get(stream)
        if slot is None or position <= slot.pos or not _inside(slot, position):
            return False  # not this user's (yet: a replay reads it), or sent already
        slot.pos = position
        if not (self.events or (isinstance(event, Message) and event.from_user_id != self.user_id)):
            return False  # outside the original view: the position moved, nothing is sent
        cursor = self._cursor()
        if cursor is None:
            return False
        # TODO(step 4, frame splicing): the body once per notification and only the cursor
        # per socket (encode_parts, queue_parts); for now the whole frame per connection.
        return self.channel.send(self.encode(Delivery(event, cursor), self.user_id if self.events else None))

    def leave_at(self, stream: int, leave: Position) -> None:
        """Close the open interval of a group at `leave` (a leave notification)."""
        slot = self.vector.slots.get(stream)
        if slot is not None and slot.intervals[-1].leave is None and slot.intervals[-1].join <= leave:
            slot.intervals = (*slot.intervals[:-1], Interval(slot.intervals[-1].join, leave))

    def release(self) -> int:
        """The replay has caught up: the held pushes through the duplicate tests; the
        number of frames sent."""
        self._replaying = False
        held, self._held = self._held, []
        sent = 0
        for stream, position, item, payload in held:
            if stream is OWN:
                sent += self.push(item, payload, position)
            else:
                sent += self.push_group(stream, position, item)
        return sent

    def open_groups(self) -> dict[str, int]:
        """The groups (id -> stream) in which this user is a member now."""
        return {slot.group_id: stream for stream, slot in self.vector.slots.items()
                if slot.intervals[-1].leave is None}

    def _hold(self, stream: int | None, position: Position, item: object, payload: bytes | None) -> bool:
        if len(self._held) < MAX_HELD:
            self._held.append((stream, position, item, payload))
        else:
            # Everything held is in the streams too: the replay reads it again from there.
            self._held.clear()
            self._read_again = True
        return False

    def _cursor(self) -> str | None:
        """The vector's cursor. None when it no longer fits inline: the socket is closed
        for resume (the resume cuts a checkpoint; the client's last cursor is still
        good). Step 8 checkpoints a live connection ahead of time instead (section 6.4)."""
        if self.vector.needs_checkpoint():
            self.channel.resume_later(cursor_expired=False)
            return None
        return self.vector.text()


def _inside(slot: Slot, position: Position) -> bool:
    intervals = slot.intervals
    return intervals[-1].holds(position) or any(interval.holds(position) for interval in intervals[:-1])
