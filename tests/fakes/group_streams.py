"""GroupStreams kept in memory: one log per large group, the members' intervals and
each user's set of large groups, with the rules the Redis scripts follow
(docs/design/large-groups.md, sections 4.2-4.4 and 7.1; adapters/redis/lg_*.lua). The
port's writes (deliver, apply) and the tests' shortcuts (switch, post, join, leave,
trim: no versions, no checks) share one implementation.

With `publish` (an InProcessBus's), it publishes what the scripts publish, in the same
order: each message on the group's channel, a join or leave there too (with the change
record the others read), a switch on the main channel.

Ids come from `next_id`, which a test shares with the MemoryInbox (its next_id), so
that every log's ids grow with one clock, as stream:last-id and the stream ids in Redis
do: a group's entries after its switch then come after its own-log entries before it."""
from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from application.ports import (
    APPLIED,
    DONE,
    JOIN,
    LEAVE,
    OWNER,
    WAIT,
    AnyNotification,
    Applied,
    GroupMembership,
    GroupNotification,
    GroupPosted,
    GroupStreams,
    GroupSwitch,
    LoggedChange,
    MemberChange,
    MembershipNotification,
    StreamEntry,
    SwitchNotification,
)
from domain import errors
from domain.cursor import Position
from domain.events import MEMBER_ADDED, MEMBER_REMOVED, Event, GroupChange
from domain.model import Message
from domain.vector import Interval


@dataclass
class _Group:
    group_id: str
    stream: int
    channel: bool
    entries: list[tuple[Position, Event | None]]  # None: the internal `switched` marker
    intervals: dict[str, list[Interval]] = field(default_factory=dict)
    trimmed_up_to: Position | None = None  # the newest entry trimmed away
    floor: Position = (0, 0)  # the switched marker's id
    owner: str = ""
    seq: int = 0  # the group's last seq (lg:{G} seq)
    version: int = 0  # the last member version applied (lg:{G} mv)
    done: dict[str, Position] = field(default_factory=dict)  # event id -> its place (lg:{G}:done:<event>)
    sent: dict[tuple[str, str], GroupPosted] = field(default_factory=dict)  # (sender, client_msg_id) -> original

    @property
    def newest(self) -> Position:
        return self.entries[-1][0]


class MemoryGroupStreams(GroupStreams):
    def __init__(self, next_id: Callable[[], int], small_seqs: dict[str, int] | None = None,
                 max_length: int | None = None, publish: Callable[[AnyNotification], None] | None = None):
        """`small_seqs`: the small path's counters by conversation (MemoryInbox's
        conversation_seqs), whose group counter a switch takes over. `max_length`: each
        log is trimmed to it, exactly, when a message is delivered (as MAXLEN = does)."""
        self._next_id = next_id
        self._small_seqs = small_seqs if small_seqs is not None else {}
        self._max_length = max_length
        self._publish = publish if publish is not None else (lambda notification: None)
        self._groups: dict[str, _Group] = {}
        self._by_stream: dict[int, _Group] = {}
        self._large_groups_of: dict[str, set[str]] = {}  # lgm:<U>
        self._changed: dict[str, Message] = {}  # message id -> as changed (changed:{message_id})
        self.reads: list[tuple[str, str, Position, int]] = []  # (group, user, after, limit): what was read
        self.interval_reads: list[tuple[str, tuple[str, ...]]] = []  # (group, users): intervals() calls

    # The port ---------------------------------------------------------------------------------
    async def memberships(self, user_id: str, streams: Collection[int]) -> list[GroupMembership]:
        named = [self._by_stream[stream].group_id for stream in streams if stream in self._by_stream]
        group_ids = dict.fromkeys([*sorted(self._large_groups_of.get(user_id, ())), *named])
        # A group whose switch is not applied yet has no stream to list.
        return [self._membership(self._groups[group_id], user_id) for group_id in group_ids
                if group_id in self._groups]

    async def is_member(self, group_id: str, user_id: str) -> bool | None:
        group = self._groups.get(group_id)
        if group is None:
            return None
        intervals = group.intervals.get(user_id)
        return bool(intervals) and intervals[-1].leave is None

    async def intervals(self, group_id: str, user_ids: Sequence[str]) -> dict[str, tuple[Interval, ...]]:
        self.interval_reads.append((group_id, tuple(user_ids)))
        group = self._groups.get(group_id)
        if group is None:
            return {}
        return {user_id: tuple(group.intervals[user_id]) for user_id in user_ids if group.intervals.get(user_id)}

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
        inside = [StreamEntry(position, self._as_changed(event)) for position, event in group.entries
                  if event is not None and position > after and any(i.holds(position) for i in intervals)]
        return inside[:limit]

    def _as_changed(self, event: Event) -> Event:
        changed = self._changed.get(event.id) if isinstance(event, Message) else None
        if changed is None:
            return event
        assert isinstance(event, Message)
        return event.with_change(changed.content, changed.edited_at, changed.deleted_at)

    async def deliver(self, message: Message) -> GroupPosted:
        group = self._groups.get(str(message.group_id))
        if group is None:
            raise errors.NoGroupStream()
        key = (message.from_user_id, message.client_msg_id or "")
        if message.client_msg_id is not None and key in group.sent:
            original = group.sent[key]
            return GroupPosted(original.message, original.position, duplicate=True)
        intervals = group.intervals.get(message.from_user_id)
        if not intervals or intervals[-1].leave is not None:
            raise errors.NotAMember()
        if group.channel and message.from_user_id != group.owner:
            raise errors.NotAllowed()
        group.seq += 1
        accepted = message.with_seq(group.seq)
        posted = GroupPosted(accepted, self.post(group.group_id, accepted))
        if self._max_length is not None:
            self.trim(group.group_id, self._max_length)
        if message.client_msg_id is not None:
            group.sent[key] = posted
        return posted

    async def apply(self, change: GroupSwitch | MemberChange | LoggedChange) -> Applied:
        if isinstance(change, LoggedChange):
            return self._log(change)
        if isinstance(change, GroupSwitch):
            existing = self._groups.get(change.group_id)
            if existing is None:
                seq = self._small_seqs.get("g:" + change.group_id, 0)
                self._switch(change.group_id, change.member_ids, change.channel, change.stream)
                existing = self._groups[change.group_id]
                existing.owner, existing.seq, existing.version = change.owner_id, seq, change.version
            return Applied(APPLIED, existing.floor)
        for user_id in change.user_ids:  # step 1 of a change: lgm:<U>, whatever comes next
            self._large_groups_of.setdefault(user_id, set()).add(change.group_id)
        group = self._groups.get(change.group_id)
        if group is not None and change.event_id in group.done:
            return Applied(APPLIED, group.done[change.event_id])
        if group is None or change.version != group.version + 1:
            if group is not None and change.version <= group.version:
                return Applied(DONE)
            return Applied(WAIT)
        record = None if group.channel else change.record
        logged = None
        if change.kind == JOIN:
            if record is not None:
                logged = GroupNotification(record, group.group_id, self.post(group.group_id, record, publish=False))
            position = group.newest
            for user_id in change.user_ids:
                kept = group.intervals.setdefault(user_id, [])
                if not kept or kept[-1].leave is not None:  # an open interval stays as it is
                    kept.append(Interval(position))
        else:
            position = group.newest
            if change.kind == LEAVE:
                for user_id in change.user_ids:
                    kept = group.intervals.get(user_id, [])
                    if kept and kept[-1].leave is None:
                        kept[-1] = Interval(kept[-1].join, position)
                if record is not None:
                    logged = GroupNotification(record, group.group_id, self.post(group.group_id, record, publish=False))
        if change.kind != OWNER and change.user_ids:
            self._publish(MembershipNotification(group.group_id, change.user_ids, change.kind, position, logged))
        if change.owner_id is not None:
            group.owner = change.owner_id
        group.version = change.version
        group.done[change.event_id] = position
        return Applied(APPLIED, position)

    def _log(self, change: LoggedChange) -> Applied:
        """A message's edit or deletion: its state kept, its event once in the log."""
        group = self._groups.get(change.group_id)
        if group is None:
            return Applied(WAIT)
        message = change.record.message
        kept = self._changed.get(message.id)
        if kept is None or _rank(message) >= _rank(kept):  # the latest change wins (changed.lua)
            self._changed[message.id] = message
        if change.event_id in group.done:
            return Applied(APPLIED, group.done[change.event_id])
        position = group.done[change.event_id] = self.post(group.group_id, change.record)
        return Applied(APPLIED, position)

    # The tests' shortcuts: the writes without versions or checks ------------------------------
    def switch(self, group_id: str, member_ids: Collection[str], channel: bool = False) -> int:
        """The group becomes large: its stream begins with the `switched` marker (the
        floor), which is every present member's join. Answers the stream number."""
        return self._switch(group_id, member_ids, channel, len(self._groups) + 1)

    def _switch(self, group_id: str, member_ids: Collection[str], channel: bool, stream: int) -> int:
        floor = self._id()
        group = _Group(group_id, stream, channel, [(floor, None)], floor=floor)
        group.intervals = {user_id: [Interval(floor)] for user_id in member_ids}
        self._groups[group_id] = self._by_stream[group.stream] = group
        for user_id in member_ids:
            self._large_groups_of.setdefault(user_id, set()).add(group_id)
        self._publish(SwitchNotification(group_id, group.stream, floor, tuple(member_ids)))
        return group.stream

    def post(self, group_id: str, event: Event, publish: bool = True) -> Position:
        """Append an entry; published on the group's channel unless `publish` is False
        (a change record, which rides on its membership notification)."""
        group = self._groups[group_id]
        position = self._id()
        group.entries.append((position, event))
        if publish:
            self._publish(GroupNotification(event, group_id, position))
        return position

    def join(self, group_id: str, user_id: str, by_user_id: str, created_at: int = 0) -> Position:
        """Add an interval. In a group (not a channel) the others see the member_added
        record; the joiner's interval begins at that record, so it is not among what the
        joiner reads (it has its own copy in its own log)."""
        group = self._groups[group_id]
        self._large_groups_of.setdefault(user_id, set()).add(group_id)
        logged = None
        if not group.channel:
            record = self._change(MEMBER_ADDED, group, user_id, by_user_id, created_at)
            logged = GroupNotification(record, group_id, self.post(group_id, record, publish=False))
        join = group.newest
        group.intervals.setdefault(user_id, []).append(Interval(join))
        self._publish(MembershipNotification(group_id, (user_id,), JOIN, join, logged))
        return join

    def leave(self, group_id: str, user_id: str, by_user_id: str, created_at: int = 0) -> Position:
        """Close the open interval at the stream's newest entry; the member_removed record
        comes after it, for the others only."""
        group = self._groups[group_id]
        intervals = group.intervals[user_id]
        assert intervals[-1].leave is None, "not a member"
        leave = group.newest
        intervals[-1] = Interval(intervals[-1].join, leave)
        logged = None
        if not group.channel:
            record = self._change(MEMBER_REMOVED, group, user_id, by_user_id, created_at)
            logged = GroupNotification(record, group_id, self.post(group_id, record, publish=False))
        self._publish(MembershipNotification(group_id, (user_id,), LEAVE, leave, logged))
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

    def intervals_of(self, group_id: str, user_id: str) -> list[Interval]:
        return list(self._groups[group_id].intervals.get(user_id, ()))

    def _id(self) -> Position:
        return self._next_id(), 0

    def _membership(self, group: _Group, user_id: str) -> GroupMembership:
        return GroupMembership(group.group_id, group.stream, tuple(group.intervals.get(user_id, ())), group.newest)

    def _change(self, kind: str, group: _Group, user_id: str, by_user_id: str, created_at: int) -> GroupChange:
        return GroupChange(type=kind, id=f"{kind}:{group.group_id}:{user_id}:{self._next_id()}",
                           group_id=group.group_id, by_user_id=by_user_id, created_at=created_at, user_id=user_id)


def _rank(message: Message) -> tuple[int, int]:
    """A change's place among a message's changes: a deletion after every edit."""
    if message.deleted_at is not None:
        return 1, message.deleted_at
    return 0, message.edited_at or 0
