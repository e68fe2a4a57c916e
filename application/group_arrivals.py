"""What the local members of a large group that enter it together need, read once per
gateway and group (docs/design/large-groups.md, section 25): at a switch every member
enters at the floor, and a gateway with a thousand of them would otherwise replay a
thousand connections, each reading its memberships and the stream on its own.

One read of the members' intervals, and one of the stream after the start through a
member still in the group from there on (its reading is the whole stream after the
start), give every connection what a replay of its own would: the caller clips the
entries to each member's intervals as it pushes them (VectorConnection.push_group)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from application.ports import GroupStreams, StreamEntry
from domain.cursor import Position
from domain.vector import Interval

PAGE = 200


@dataclass(frozen=True, slots=True)
class Arrival:
    intervals: dict[str, tuple[Interval, ...]]  # of the arriving users that have any kept
    entries: list[StreamEntry]  # the stream after the start, oldest first


async def read_arrival(streams: GroupStreams, group_id: str, start: Position,
                       user_ids: Sequence[str]) -> Arrival | None:
    """The arriving users' intervals and the entries after `start`; None when none of
    them reads the whole stream after `start` (all left again, or their joins are not
    applied yet): the connections then replay one by one, which reads each one's part."""
    intervals = await streams.intervals(group_id, user_ids)
    reader = next((user_id for user_id, kept in intervals.items()
                   if kept[-1].leave is None and kept[-1].join <= start), None)
    if reader is None:
        return None
    entries: list[StreamEntry] = []
    after = start
    while True:
        page = await streams.read(group_id, reader, after, PAGE)
        entries.extend(page)
        if len(page) < PAGE:
            return Arrival(intervals, entries)
        after = page[-1].position
