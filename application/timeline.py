"""What a user reads: its own log merged with the streams of its large groups, each
clipped to the user's membership intervals (docs/design/large-groups.md, section 5).

With large groups on (COURIER_LARGE_GROUP), the pulls read through it (it is their
LogReader), and the gateway replays through it, reading on from the vector each
connection keeps (read_on). With them off, application/inbox_reader.py reads the own log
alone, as before.

Exactly once is kept per stream: each stream is read once, after the vector's position
in it, and every delivery carries the vector just after it as its cursor. Across
streams the order is the server's: by stream id, the own log first on a tie, then by
stream number."""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from application.ports import CursorCheckpoints, GroupMembership, GroupStreams, Inbox, LogReader, TimelinePage
from domain import errors
from domain.cursor import Cursor, Position, parse_cursor, stream_id
from domain.events import Delivery, Event, in_original_view
from domain.model import cursor_position
from domain.vector import Slot, Vector

_LAST: Position = (2**64 - 1, 2**64 - 1)  # after every stream id

# The fewest entries read from a group's stream at a time: a page of 50 over 50 busy
# groups reads about a page in all, not 50 pages (the merge reads a stream again when
# its batch runs out before the page is full).
MIN_GROUP_BATCH = 16


@dataclass
class Timeline(LogReader):
    inbox: Inbox
    streams: GroupStreams
    checkpoints: CursorCheckpoints

    async def resolve(self, user_id: str, cursor: str | None) -> Vector:
        """The vector a cursor stands for: each large group at the cursor's position for
        it, else the checkpoint's, else the user's earliest join kept. InvalidCursor for a
        text that is no cursor; CursorExpired when the checkpoint is gone, or a group the
        cursor places has no interval kept at or before that place any more; CursorUnknown
        when it names a stream no group has, or a place after a stream's newest entry."""
        vector, _ = await self._resolve(user_id, cursor)
        return vector

    async def read(self, user_id: str, cursor: Any, limit: int, *, events: bool = True) -> TimelinePage:
        """Up to `limit` deliveries after `cursor`, oldest first, each with the cursor that
        resumes right after it. `events` False: the original view (messages from others,
        domain.events.in_original_view); what it passes over still moves the vector on."""
        vector, newest = await self._resolve(user_id, cursor)
        shown, has_more = await self.read_on(
            user_id, vector, newest, limit, lambda event: events or in_original_view(event, user_id))
        # Nothing shown: the cursor asked with, None for none (an empty one too, as the
        # inbox's reader answers it).
        return TimelinePage(shown, shown[-1].cursor if shown else (cursor or None), has_more)

    async def refresh(self, user_id: str, vector: Vector) -> dict[int, Position]:
        """For a vector kept live (a gateway's connection): the user's memberships as they
        stand now - the intervals of its groups brought up to date, a group joined since
        added at its start (where a cursor that does not list it puts it) - and each
        stream's newest id, for read_on."""
        newest: dict[int, Position] = {}
        for membership in await self.streams.memberships(user_id, vector.slots.keys()):
            newest[membership.stream] = membership.newest
            if not membership.intervals:
                continue  # a join under way, or a record no longer kept: the vector keeps what it has
            slot = vector.slots.get(membership.stream)
            if slot is None:
                vector.slots[membership.stream] = Slot(membership.group_id, membership.stream,
                                                       membership.intervals, membership.intervals[0].join)
            else:
                slot.intervals = membership.intervals
        return newest

    async def read_on(self, user_id: str, vector: Vector, newest: dict[int, Position], limit: int,
                      shows: Callable[[Event], bool]) -> tuple[list[Delivery], bool]:
        """Up to `limit` deliveries that `shows` lets through, after the vector, which is
        moved past each entry read (shown or passed over), each with the cursor of the
        vector just after it; and whether more may follow. `newest`: each stream's newest
        id (a stream not in it is read whenever the slot's intervals reach past it)."""
        sources = [_Stream(0, vector.own, limit + 1, partial(self._own_entries, user_id), vector.advance_own)]
        readable = [slot for slot in vector.slots.values()
                    if slot.may_read_past(newest.get(slot.stream, _LAST))]
        batch = max(MIN_GROUP_BATCH, 2 * (limit + 1) // max(1, len(readable)))
        sources.extend(_Stream(1 + slot.stream, slot.pos, batch, partial(self._group_entries, slot.group_id, user_id),
                               partial(vector.advance, slot.stream)) for slot in readable)
        shown: list[Delivery] = []
        while True:
            await asyncio.gather(*(source.fill() for source in sources if source.wants_more))
            ready = [source for source in sources if source.buffer]
            if not ready:
                return shown, False
            source = min(ready, key=lambda s: (s.buffer[0].position, s.rank))
            entry = source.buffer[0]
            visible = shows(entry.event)
            if visible and len(shown) == limit:
                return shown, True
            source.buffer.popleft()
            source.advance(entry.position)
            if visible:
                shown.append(Delivery(entry.event, await self._text(user_id, vector)))

    async def live_cursor(self, user_id: str) -> str:
        """The cursor of "now": the own log's newest entry ("0-0" when it has none) and each
        large group at its stream's newest entry. Over 16 moved groups: a checkpoint."""
        vector = await self.live_vector(user_id)
        return await self.text(user_id, vector)

    async def live_vector(self, user_id: str) -> Vector:
        """The vector of live_cursor (resolving its text gives the same one)."""
        own = await self.inbox.last_cursor(user_id)
        memberships = await self.streams.memberships(user_id, ())
        vector = Vector(own=cursor_position(own) if own is not None else (0, 0))
        for membership in memberships:
            if membership.intervals:
                vector.slots[membership.stream] = Slot(membership.group_id, membership.stream,
                                                       membership.intervals, membership.newest)
        return vector

    async def text(self, user_id: str, vector: Vector) -> str:
        """The vector's cursor (through a checkpoint when it does not fit inline)."""
        return await self._text(user_id, vector)

    async def _resolve(self, user_id: str, text: str | None) -> tuple[Vector, dict[int, Position]]:
        cursor = Cursor(own=None) if text is None or text == "" else parse_cursor(text)
        base = {} if cursor.checkpoint is None else await self.checkpoints.load(user_id, cursor.checkpoint)
        named = {**base, **cursor.groups}
        memberships = await self.streams.memberships(user_id, named.keys())
        if named.keys() - {membership.stream for membership in memberships}:
            raise errors.CursorUnknown("the cursor names a group stream that does not exist")
        vector = Vector(own=cursor.own, checkpoint=cursor.checkpoint, base=base)
        newest: dict[int, Position] = {}
        for membership in memberships:
            slot = _slot(membership, named.get(membership.stream))
            if slot is not None:
                vector.slots[slot.stream], newest[slot.stream] = slot, membership.newest
        return vector, newest

    async def _own_entries(self, user_id: str, after: Position | None, limit: int) -> list[_Entry]:
        page = await self.inbox.read(user_id, None if after is None else stream_id(after), limit)
        return [_Entry(cursor_position(delivery.cursor), delivery.event) for delivery in page]

    async def _group_entries(self, group_id: str, user_id: str, after: Position | None, limit: int) -> list[_Entry]:
        assert after is not None  # a slot always has a position
        page = await self.streams.read(group_id, user_id, after, limit)
        return [_Entry(entry.position, entry.event) for entry in page]

    async def _text(self, user_id: str, vector: Vector) -> str:
        """The vector's cursor, through a new checkpoint when it no longer fits inline.
        (Saved as the need comes, one write per 16 groups newly moved at most; the design
        has a page's checkpoints written together, which a later step may do.)"""
        if vector.needs_checkpoint():
            moved = vector.moved()
            vector.rebase(await self.checkpoints.save(user_id, moved), moved)
        text = vector.text()
        assert text is not None, "a vector moved past an entry, or with an own position, has a text"
        return text


def _slot(membership: GroupMembership, named: Position | None) -> Slot | None:
    """The group's slot at the place a cursor names (None: at the start)."""
    if not membership.intervals:
        if named is not None:
            # Its intervals were purged: whatever came after `named` is no longer kept.
            raise errors.CursorExpired("the cursor's place in a group is no longer kept; use the history calls")
        return None  # a join under way: its interval is not applied yet, so nothing to read
    slot = Slot(membership.group_id, membership.stream, membership.intervals, membership.intervals[0].join)
    if named is not None:
        if named < slot.start:
            raise errors.CursorExpired("the cursor's place in a group is no longer kept; use the history calls")
        if named > membership.newest:
            raise errors.CursorUnknown()
        slot.pos = named
    return slot


@dataclass(frozen=True, slots=True)
class _Entry:
    position: Position
    event: Event


class _Stream:
    """One stream of the merge: a batch read ahead, read again once it runs out (and
    not again once a batch came back short: the stream has no more)."""

    def __init__(self, rank: int, after: Position | None, batch: int,
                 read: Callable[[Position | None, int], Awaitable[list[_Entry]]],
                 advance: Callable[[Position], None]):
        self.rank = rank
        self.buffer: deque[_Entry] = deque()
        self.advance = advance  # moves the vector past an entry of this stream
        self._after, self._batch, self._read = after, batch, read
        self._exhausted = False

    @property
    def wants_more(self) -> bool:
        return not self.buffer and not self._exhausted

    async def fill(self) -> None:
        entries = await self._read(self._after, self._batch)
        self.buffer.extend(entries)
        self._exhausted = len(entries) < self._batch
        if entries:
            self._after = entries[-1].position
