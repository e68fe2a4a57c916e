"""GroupStreams kept in memory: one log per large group, the members' intervals and
each user's set of large groups, with the rules the Redis scripts will follow
(docs/design/large-groups.md, sections 4.2-4.3 and 7.1). The writes are the tests'
own helpers (switch, post, join, leave, trim), since the port has only the read side yet.

Ids come from `next_id`, which a test shares with the MemoryInbox (its next_id), so
that every log's ids grow with one clock, as stream:last-id and the stream ids in Redis
do: a group's entries after its switch then come after its own-log entries before it."""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from application.ports import GroupMembership, GroupStreams, StreamEntry
from domain import errors
from domain.cursor import Position
from domain.events import MEMBER_ADDED, MEMBER_REMOVED, Event, GroupChange
from domain.vector import Interval


@dataclass
class _Group:
    group_id: str
    stream: int
    channel: bool
    entries: list[tuple[Position, Event | None]]  # None: the internal `switched` marker
    intervals: dict[str, list[Interval]] = field(default_factory=dict)
    trimmed_up_to: Position | None = None  # the newest entry trimmed away

    @property
    def newest(self) -> Position:
        return self.entries[-1][0]


class MemoryGroupStreams(GroupStreams):
    def __init__(self, next_id: Callable[[], int]):
        self._next_id = next_id
        self._groups: dict[str, _Group] = {}
        self._by_stream: dict[int, _Group] = {}
        self._large_groups_of: dict[str, set[str]] = {}  # lgm:<U>
        self.reads: list[tuple[str, str, Position, int]] = []  # (group, user, after, limit): what was read

    # The port ---------------------------------------------------------------------------------
    async def memberships(self, user_id: str, streams: Collection[int]) -> list[GroupMembership]:
        named = [self._by_stream[stream].group_id for stream in streams if stream in self._by_stream]
        group_ids = dict.fromkeys([*sorted(self._large_groups_of.get(user_id, ())), *named])
        return [self._membership(self._groups[group_id], user_id) for group_id in group_ids]

    async def read(self, group_id: str, user_id: str, after: Position, limit: int) -> list[StreamEntry]:
        self.reads.append((group_id, user_id, after, limit))
        group = self._groups[group_id]
        if after > group.newest:
            raise errors.CursorUnknown()
        intervals = group.intervals.get(user_id, [])
        first = next((interval for interval in intervals if interval.reaches_past(after)), None)
        if first is None:
            return []
        if group.trimmed_up_to is not None and max(after, first.join) < group.trimmed_up_to:
            raise errors.CursorExpired()
        inside = [StreamEntry(position, event) for position, event in group.entries
                  if event is not None and position > after and any(i.holds(position) for i in intervals)]
        return inside[:limit]

    # The writes, as the scripts will make them --------------------------------------------------
    def switch(self, group_id: str, member_ids: Collection[str], channel: bool = False) -> int:
        """The group becomes large: its stream begins with the `switched` marker (the
        floor), which is every present member's join. Answers the stream number."""
        floor = self._id()
        group = _Group(group_id, len(self._groups) + 1, channel, [(floor, None)])
        group.intervals = {user_id: [Interval(floor)] for user_id in member_ids}
        self._groups[group_id] = self._by_stream[group.stream] = group
        for user_id in member_ids:
            self._large_groups_of.setdefault(user_id, set()).add(group_id)
        return group.stream

    def post(self, group_id: str, event: Event) -> Position:
        group = self._groups[group_id]
        position = self._id()
        group.entries.append((position, event))
        return position

    def join(self, group_id: str, user_id: str, by_user_id: str, created_at: int = 0) -> Position:
        """Add an interval. In a group (not a channel) the others see the member_added
        record; the joiner's interval begins at that record, so it is not among what the
        joiner reads (it has its own copy in its own log)."""
        group = self._groups[group_id]
        self._large_groups_of.setdefault(user_id, set()).add(group_id)
        if not group.channel:
            self.post(group_id, self._change(MEMBER_ADDED, group, user_id, by_user_id, created_at))
        join = group.newest
        group.intervals.setdefault(user_id, []).append(Interval(join))
        return join

    def leave(self, group_id: str, user_id: str, by_user_id: str, created_at: int = 0) -> Position:
        """Close the open interval at the stream's newest entry; the member_removed record
        comes after it, for the others only."""
        group = self._groups[group_id]
        intervals = group.intervals[user_id]
        assert intervals[-1].leave is None, "not a member"
        leave = group.newest
        intervals[-1] = Interval(intervals[-1].join, leave)
        if not group.channel:
            self.post(group_id, self._change(MEMBER_REMOVED, group, user_id, by_user_id, created_at))
        return leave

    def announce(self, group_id: str, user_id: str) -> None:
        """Step 1 of a join alone (lgm:<U>), its interval not yet applied."""
        self._large_groups_of.setdefault(user_id, set()).add(group_id)

    def trim(self, group_id: str, keep: int) -> None:
        """Keep the newest `keep` entries, as MAXLEN does."""
        group = self._groups[group_id]
        if len(group.entries) > keep:
            group.trimmed_up_to = group.entries[-keep - 1][0]
            del group.entries[:-keep]

    def group_ids(self) -> list[str]:
        return sorted(self._groups)

    def stream_of(self, group_id: str) -> int:
        return self._groups[group_id].stream

    def entries(self, group_id: str) -> list[tuple[Position, Event]]:
        return [(position, event) for position, event in self._groups[group_id].entries if event is not None]

    def intervals(self, group_id: str, user_id: str) -> list[Interval]:
        return list(self._groups[group_id].intervals.get(user_id, ()))

    def _id(self) -> Position:
        return self._next_id(), 0

    def _membership(self, group: _Group, user_id: str) -> GroupMembership:
        return GroupMembership(group.group_id, group.stream, tuple(group.intervals.get(user_id, ())), group.newest)

    def _change(self, kind: str, group: _Group, user_id: str, by_user_id: str, created_at: int) -> GroupChange:
        return GroupChange(type=kind, id=f"{kind}:{group.group_id}:{user_id}:{self._next_id()}",
                           group_id=group.group_id, by_user_id=by_user_id, created_at=created_at, user_id=user_id)
