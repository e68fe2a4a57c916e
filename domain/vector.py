"""A user's position in every stream it reads: the vector a cursor stands for, once
resolved against the user's memberships (application/timeline.py), and how it moves.

Exactly once is kept per stream: a position means "everything at or before it was
delivered". A cursor lists a group only when its position differs from what the cursor
would otherwise give it - the checkpoint's position, else the user's earliest join
still kept - so that a quiet group costs a cursor nothing (docs/design/large-groups.md,
section 3.1)."""
from __future__ import annotations

from dataclasses import dataclass, field

from domain.cursor import Cursor, Position, fits_inline, format_cursor, spliced_around


@dataclass(frozen=True, slots=True)
class Interval:
    """A stretch of a user's membership of a large group, in the group's stream: the
    entries after `join` up to and including `leave` (None: still a member)."""

    join: Position
    leave: Position | None = None

    def holds(self, position: Position) -> bool:
        return self.join < position and (self.leave is None or position <= self.leave)

    def reaches_past(self, position: Position) -> bool:
        """Whether some entry after `position` could be inside this interval."""
        return self.leave is None or self.leave > position


@dataclass(slots=True)
class Slot:
    """One large group in a user's vector."""

    group_id: str
    stream: int  # the group's stream number (sno): what a cursor names it by
    intervals: tuple[Interval, ...]  # the user's, oldest first: never empty in a vector
    pos: Position

    @property
    def start(self) -> Position:
        """Where a cursor that does not list the group puts it: the earliest join kept.
        (Not the current join: a cursor made before a leave and a rejoin, in which the
        group was quiet, must still read the first interval's entries after it.)"""
        return self.intervals[0].join

    def may_read_past(self, newest: Position) -> bool:
        """Whether the stream may hold an entry for this user after `pos`."""
        return newest > self.pos and any(interval.reaches_past(self.pos) for interval in self.intervals)


@dataclass(slots=True)
class Vector:
    own: Position | None  # None: from the start of what the own log keeps
    slots: dict[int, Slot] = field(default_factory=dict)  # stream number -> slot
    checkpoint: int | None = None
    base: dict[int, Position] = field(default_factory=dict)  # the checkpoint's positions

    def advance_own(self, position: Position) -> None:
        self.own = position

    def advance(self, stream: int, position: Position) -> None:
        self.slots[stream].pos = position

    def listed(self) -> dict[int, Position]:
        """The groups the cursor must name: those not where it would put them otherwise."""
        return {stream: slot.pos for stream, slot in self.slots.items()
                if slot.pos != self.base.get(stream, slot.start)}

    def moved(self) -> dict[int, Position]:
        """Every group past its start: what a checkpoint of this vector keeps."""
        return {stream: slot.pos for stream, slot in self.slots.items() if slot.pos != slot.start}

    def cursor(self) -> Cursor:
        return Cursor(own=self.own, groups=self.listed(), checkpoint=self.checkpoint)

    def needs_checkpoint(self) -> bool:
        """Whether the cursor no longer fits inline (over 16 groups, or too long)."""
        return not fits_inline(self.cursor())

    def rebase(self, checkpoint: int, base: dict[int, Position]) -> None:
        """The vector's group positions are kept as `checkpoint` (moved() as it was saved):
        the cursor names it and lists only the groups that move on from it."""
        self.checkpoint, self.base = checkpoint, base

    def around(self, stream: int | None) -> tuple[tuple[str, str] | None, int]:
        """The cursor's text around the part of `stream` (None: the own log), as
        domain.cursor.spliced_around gives it, and how many groups it lists besides."""
        listed = self.listed()
        if stream is not None:
            listed.pop(stream, None)
        return spliced_around(Cursor(own=self.own, groups=listed, checkpoint=self.checkpoint), stream), len(listed)

    def default(self, stream: int) -> Position:
        """Where the cursor puts a group it does not list."""
        return self.base.get(stream, self.slots[stream].start)

    def text(self) -> str | None:
        """The cursor's text; None for a vector that is at the very start of everything."""
        cursor = self.cursor()
        if cursor.own is None and cursor.is_legacy:
            return None
        return format_cursor(cursor)

