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
tests.

Frames are spliced (application/frames.py): the entry's JSON is built once per
notification, and each socket adds its cursor from two cached texts, the parts of its
vector before and after the stream that moved (`prefix`). Those stay valid while only
that stream moves, which is what a socket in one busy group sees."""
from __future__ import annotations

from application.connection import MAX_HELD, Connection
from application.frames import Frames, Splice
from domain.cursor import INLINE_GROUPS, MAX_CURSOR_LENGTH, Position, stream_id
from domain.events import Delivery
from domain.model import Message, cursor_position
from domain.vector import Interval, Slot, Vector

OWN = None  # the own log, in a held push: (stream, position, delivery or splice, payload)

# A connection's cached prefix (`prefix`): the stream it is for, the cursor's text before
# and after that stream's part (before None: the own log's legacy form), the room left for
# the part within MAX_CURSOR_LENGTH (-1: too many groups already), and where the cursor
# puts the stream when it does not list it (None for the own log).
Prefix = tuple[int | None, bytes | None, bytes, int, Position | None]

# A cursor that lists this many groups asks the gateway for a checkpoint ahead of time,
# so that the write has landed before a 17th group needs it (section 6.4).
PRE_CHECKPOINT = 12


class VectorConnection(Connection):
    __slots__ = ()

    vector: Vector
    frames: Frames
    _prefix: Prefix | None

    @classmethod
    def of(cls, conn: Connection, vector: Vector, frames: Frames) -> VectorConnection:
        """`conn` as a VectorConnection at `vector` (which includes its own position)."""
        if isinstance(conn, VectorConnection):
            conn.vector, conn._prefix = vector, None
            return conn
        held = conn._held
        conn.__class__ = cls  # the same slots: only the methods change (see the module's doc)
        assert isinstance(conn, VectorConnection)
        conn.vector, conn.frames, conn._prefix = vector, frames, None
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
        before = vector.own
        if before is not None and position <= before:
            return False  # already sent by a replay
        vector.own = position
        prefix = self._prefix
        if prefix is None or prefix[0] is not OWN:
            prefix = self.prefix(OWN)
        if prefix[1] is None and delivery.cursor == stream_id(position):
            return self.channel.send(payload)  # the legacy form: the very frame of everyone
        # The cursor names the groups too: the entry's parts, shared, and this cursor's.
        sent = self._send(prefix, self.frames.own(delivery, payload, position), position)
        if sent is None:
            vector.own = before  # not pushed: the replay after the checkpoint reads it
            self._full()
            return False
        return sent

    def push_group(self, stream: int, position: Position, splice: Splice) -> bool:
        """An entry of a large group's stream (`splice`: its parts, shared by every socket)."""
        if self._replaying:
            return self._hold(stream, position, splice, None)
        # This runs once per socket of a group's notification: the common case is written
        # out here (no call but the channel's) rather than through _inside and _send.
        slot = self.vector.slots.get(stream)
        if slot is None or position <= slot.pos:
            return False  # not this user's (yet: a replay reads it), or sent already
        last = slot.intervals[-1]
        if not (last.join < position and (last.leave is None or position <= last.leave)) \
                and not _inside(slot, position):
            return False
        before = slot.pos
        slot.pos = position
        prefix = self._prefix
        if prefix is not None and prefix[0] != stream:
            # Another stream's texts hold this one's part: they are stale now, even when
            # nothing is sent below.
            prefix = self._prefix = None
        if self.events:
            viewer: str | None = self.user_id
        else:
            event = splice.event
            if not (isinstance(event, Message) and event.from_user_id != self.user_id):
                return False  # outside the original view: the position moved, nothing is sent
            viewer = None
        if prefix is None:
            prefix = self.prefix(stream)
        _, head_cursor, tail_cursor, room, default = prefix
        part = splice.part
        if head_cursor is not None and position != default and len(part) <= room:
            head, close = splice.view(viewer) if viewer is not None or splice.shared is None else splice.shared
            return self.channel.send_parts((head, head_cursor, part, tail_cursor, close))
        sent = self._send_whole(splice)  # rare: see _send
        if sent is None:
            slot.pos = before  # not pushed: the replay after the checkpoint reads it
            self._full()
            return False
        return sent

    def prefix(self, stream: int | None) -> Prefix:
        """The cursor's texts around `stream`'s part (None: the own log), kept until the
        vector changes elsewhere: a push to this stream moves only its own part. A push
        to another stream asks again (the cache is for the last stream pushed), and
        anything else that changes the vector (a replay, a leave) forgets it."""
        vector = self.vector
        around, others = vector.around(stream)
        if around is None:
            before, after = None, b""
            room = MAX_CURSOR_LENGTH
        else:
            before, after = around[0].encode(), around[1].encode()
            listed = others + (stream is not None)  # a group pushed is listed (see _send)
            room = MAX_CURSOR_LENGTH - len(before) - len(after) if listed <= INLINE_GROUPS else -1
            if listed >= PRE_CHECKPOINT and self.frames.checkpoint_due is not None:
                self.frames.checkpoint_due(self, False)  # ahead of time: nothing is held
        default = None if stream is None else vector.default(stream)
        prefix = self._prefix = (stream, before, after, room, default)
        return prefix

    def forget_prefix(self) -> None:
        self._prefix = None

    def _send(self, prefix: Prefix, splice: Splice, position: Position) -> bool | None:
        """Send the entry with this connection's cursor; None when the cursor does not fit
        inline any more (nothing was sent: the caller puts the position back)."""
        _, before, after, room, default = prefix
        part = splice.part
        if before is None or position == default or len(part) > room:
            # Rare: a legacy own cursor told apart from the notification's, a group the
            # cursor does not list at this position, or a cursor that no longer fits.
            return self._send_whole(splice)
        head, close = splice.view(self.user_id if self.events else None)
        return self.channel.send_parts((head, before, part, after, close))

    def _send_whole(self, splice: Splice) -> bool | None:
        if self.vector.needs_checkpoint():
            return None
        cursor = self.vector.text()
        if cursor is None:
            return False
        head, close = splice.view(self.user_id if self.events else None)
        return self.channel.send(b"".join((head, cursor.encode(), close)))

    def leave_at(self, stream: int, leave: Position) -> None:
        """Close the open interval of a group at `leave` (a leave notification)."""
        slot = self.vector.slots.get(stream)
        if slot is not None and slot.intervals[-1].leave is None and slot.intervals[-1].join <= leave:
            slot.intervals = (*slot.intervals[:-1], Interval(slot.intervals[-1].join, leave))
            self._prefix = None

    def release(self) -> int:
        """The replay has caught up: the held pushes through the duplicate tests; the
        number of frames sent."""
        self._replaying = False
        self._prefix = None  # the replay moved the vector (and perhaps its memberships)
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

    def _full(self) -> None:
        """A push was not sent: the cursor would need a checkpoint. The gateway holds the
        connection until one is written, then replays it from its vector (which reads
        that push again); without a gateway that checkpoints, the socket is closed for
        resume (the client's last cursor is still good; the resume cuts a checkpoint)."""
        self._prefix = None
        if self.frames.checkpoint_due is not None:
            self.frames.checkpoint_due(self, True)
        else:
            self.channel.resume_later(cursor_expired=False)


def _inside(slot: Slot, position: Position) -> bool:
    intervals = slot.intervals
    return intervals[-1].holds(position) or any(interval.holds(position) for interval in intervals[:-1])
