"""Timeline (application/timeline.py) over fakes: the own log merged with the large
groups' streams, clipped to the reader's intervals, exactly once per stream, and every
cursor resuming exactly the rest (docs/design/large-groups.md, sections 3 and 5)."""
from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.memory.bus import InProcessBus
from application.timeline import Timeline
from domain import errors
from domain.cursor import INLINE_GROUPS, MAX_CURSOR_LENGTH, Cursor, format_cursor, parse_cursor
from domain.events import MEMBER_ADDED, MEMBER_REMOVED, Delivery, GroupChange, in_original_view
from domain.model import GROUP, PRIVATE, Message
from tests.fakes.checkpoints import MemoryCursorCheckpoints
from tests.fakes.group_streams import MemoryGroupStreams
from tests.fakes.idempotency import MemoryIdempotencyKeys
from tests.fakes.inbox import MemoryInbox

READER, OTHER = "reader", "other"
OWN = "own"  # the own log's name among the streams, beside the group ids


@dataclass
class World:
    """The reader's own log and the large groups, written as the send path and the
    membership changes will write them, and a record of which stream holds each event."""

    inbox: MemoryInbox
    streams: MemoryGroupStreams
    checkpoints: MemoryCursorCheckpoints
    timeline: Timeline
    stream_of: dict[str, str] = field(default_factory=dict)  # event id -> OWN or a group id
    seqs: dict[str, int] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=itertools.count)

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self.ids)}"

    def group(self, name: str, with_reader: bool = True, others: tuple[str, ...] = (OTHER,)) -> str:
        self.streams.switch(name, [READER, *others] if with_reader else list(others))
        return name

    async def own(self, from_reader: bool = False) -> Message:
        sender, recipient = (READER, OTHER) if from_reader else (OTHER, READER)
        message = Message(PRIVATE, self.new_id("p"), sender, "hi", 0, to_user_id=recipient)
        accepted = await self.inbox.deliver(message, [recipient, sender])
        self.stream_of[message.id] = OWN
        return accepted.message

    async def small_group_message(self, group_id: str) -> Message:
        """A message of a group before its switch: in every member's own log."""
        message = self._group_message(group_id)
        await self.inbox.deliver(message, [READER, OTHER])
        self.stream_of[message.id] = OWN
        return message

    def post(self, group_id: str, sender: str = OTHER) -> Message:
        message = self._group_message(group_id, sender)
        self.streams.post(group_id, message)
        self.stream_of[message.id] = group_id
        return message

    async def join(self, group_id: str) -> None:
        """The script's interval, then the joiner's own copy of its member_added."""
        self.streams.join(group_id, READER, by_user_id=OTHER)
        await self._own_copy(MEMBER_ADDED, group_id)

    async def leave(self, group_id: str) -> None:
        self.streams.leave(group_id, READER, by_user_id=READER)
        await self._own_copy(MEMBER_REMOVED, group_id)

    def member(self, group_id: str) -> bool:
        intervals = self.streams.intervals_of(group_id, READER)
        return bool(intervals) and intervals[-1].leave is None

    def expected(self, events: bool) -> dict[str, list[str]]:
        """Per stream, what the reader must get from the start: its whole own log, and
        each group's entries inside its intervals; in the original view, only those
        that view shows."""
        own = self.inbox._streams.get(READER, [])
        per_stream = {OWN: [d.event for d in own]}
        for group_id in self.groups():
            intervals = self.streams.intervals_of(group_id, READER)
            per_stream[group_id] = [event for position, event in self.streams.entries(group_id)
                                    if any(interval.holds(position) for interval in intervals)]
        for stream, listed in per_stream.items():
            for event in listed:  # the group streams' own member_added / member_removed records too
                assert self.stream_of.setdefault(event.id, stream) == stream
        return {stream: [e.id for e in listed if events or in_original_view(e, READER)]
                for stream, listed in per_stream.items()}

    def groups(self) -> list[str]:
        return self.streams.group_ids()

    def by_stream(self, deliveries: list[Delivery]) -> dict[str, list[str]]:
        per_stream: dict[str, list[str]] = {}
        for delivery in deliveries:
            per_stream.setdefault(self.stream_of[delivery.event.id], []).append(delivery.event.id)
        return per_stream

    async def drain(self, cursor: str | None, events: bool = True, page: int = 7) -> list[Delivery]:
        deliveries: list[Delivery] = []
        while True:
            result = await self.timeline.read(READER, cursor, page, events=events)
            deliveries.extend(result.deliveries)
            assert result.next_cursor == (result.deliveries[-1].cursor if result.deliveries else cursor)
            cursor = result.next_cursor
            if not result.has_more:
                assert len(result.deliveries) <= page
                return deliveries
            assert len(result.deliveries) == page

    def _group_message(self, group_id: str, sender: str = OTHER) -> Message:
        self.seqs[group_id] = seq = self.seqs.get(group_id, 0) + 1
        return Message(GROUP, self.new_id("g"), sender, "hi", 0, group_id=group_id, seq=seq)

    async def _own_copy(self, kind: str, group_id: str) -> None:
        change = GroupChange(kind, self.new_id("c"), group_id, OTHER, 0, user_id=READER)
        await self.inbox.append(change, [READER])
        self.stream_of[change.id] = OWN


def world(ring: int = 64, max_length: int = 10_000) -> World:
    inbox = MemoryInbox(InProcessBus(), MemoryIdempotencyKeys(), max_length=max_length)
    streams = MemoryGroupStreams(inbox.next_id)
    checkpoints = MemoryCursorCheckpoints(ring=ring)
    return World(inbox, streams, checkpoints, Timeline(inbox, streams, checkpoints))


def run(coroutine):
    # A loop of its own, leaving the thread's current loop alone: asyncio.run would set
    # it to None at the end, and an unclosed loop that an earlier test left current
    # would then be collected in the middle of a later test (a ResourceWarning: an error).
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def assert_fits(cursor: str) -> None:
    assert len(cursor) <= MAX_CURSOR_LENGTH
    assert parse_cursor(cursor) is not None


# the property: any interleaving -----------------------------------------------------------------
OPS = st.one_of(
    st.tuples(st.just("own"), st.booleans(), st.just(0)),  # a private message: from the reader or to it
    st.tuples(st.just("post"), st.integers(0, 19), st.just(0)),  # a post in group i (by a member other than the reader)
    st.tuples(st.just("join"), st.integers(0, 19), st.just(0)),  # the reader joins group i (if not in it)
    st.tuples(st.just("leave"), st.integers(0, 19), st.just(0)),  # the reader leaves or is removed
    st.tuples(st.just("read"), st.booleans(), st.integers(1, 9)),  # a page of 1-9 while online
)


async def play(w: World, groups: list[str], ops, events: bool) -> tuple[list[Delivery], list[str]]:
    """The ops in order; the reader reads now and then from where it stopped. Answers
    everything delivered (then the rest, drained) and every cursor handed out."""
    cursor: str | None = None
    delivered: list[Delivery] = []
    for op, a, b in ops:
        group = groups[a % len(groups)] if isinstance(a, int) and not isinstance(a, bool) else None
        if op == "own":
            await w.own(from_reader=a)
        elif op == "post" and group is not None:
            w.post(group)
        elif op == "post everywhere":
            for each in groups:
                w.post(each)
        elif op == "join" and group is not None and not w.member(group):
            await w.join(group)
        elif op == "leave" and group is not None and w.member(group):
            await w.leave(group)
        elif op == "read":
            page = await w.timeline.read(READER, cursor, b, events=events)
            delivered.extend(page.deliveries)
            cursor = page.next_cursor
    delivered.extend(await w.drain(cursor, events))
    return delivered, [d.cursor for d in delivered]


async def verify(w: World, groups: list[str], ops, events: bool) -> None:
    delivered, cursors = await play(w, groups, ops, events)
    expected = w.expected(events)
    # The union of the pages: per stream exactly what is inside the intervals, once, in order.
    assert w.by_stream(delivered) == {stream: ids for stream, ids in expected.items() if ids}
    for cursor in cursors:
        assert_fits(cursor)
    # Resuming from every cursor handed out gives exactly the rest, per stream.
    for i, cursor in enumerate(cursors):
        done = w.by_stream(delivered[:i + 1])
        rest = {stream: ids[len(done.get(stream, [])):] for stream, ids in expected.items()}
        assert w.by_stream(await w.drain(cursor, events)) == {s: ids for s, ids in rest.items() if ids}


@given(
    group_count=st.sampled_from([1, 2, 3, 4, INLINE_GROUPS + 1, 20]),
    initially_in=st.lists(st.booleans(), min_size=20, max_size=20),
    ops=st.lists(OPS, min_size=10, max_size=80),
    events=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_any_interleaving_is_read_exactly_once_per_stream_and_every_cursor_resumes_exactly_the_rest(
        group_count, initially_in, ops, events):
    w = world(ring=100_000)
    groups = [w.group(f"g{i:02}", with_reader=initially_in[i]) for i in range(group_count)]
    run(verify(w, groups, ops, events))


POST = st.tuples(st.just("post"), st.integers(0, 19), st.just(0))
EVERY_GROUP = st.tuples(st.just("post everywhere"), st.just(0), st.just(0))
BUSY = st.one_of(POST, POST, POST, EVERY_GROUP, OPS)


@given(ops=st.lists(BUSY, min_size=10, max_size=30), events=st.booleans())
@settings(max_examples=30, deadline=None)
def test_many_busy_groups_go_through_checkpoints_and_are_still_read_exactly_once(ops, events):
    w = world(ring=100_000)
    groups = [w.group(f"g{i:02}") for i in range(20)]
    run(verify(w, groups, ops, events))


# merging, views and cursors -------------------------------------------------------------------
def test_a_reader_in_no_large_group_gets_todays_cursors():
    w = world()

    async def check() -> None:
        first, second = await w.own(), await w.own()
        page = await w.timeline.read(READER, None, 10)
        assert [d.cursor for d in page.deliveries] == [w.inbox._streams[READER][i].cursor for i in range(2)]
        assert [d.event.id for d in page.deliveries] == [first.id, second.id]
        assert page.deliveries[0].cursor == "1-0"
        assert await w.timeline.live_cursor(READER) == await w.inbox.last_cursor(READER)
        assert await w.timeline.live_cursor("nobody") == "0-0"  # as Gateway.live_cursor answers today

    run(check())


def test_an_empty_page_answers_the_cursor_asked_with_or_none_for_none():
    w = world()

    async def check() -> None:
        for cursor in (None, ""):  # GET /messages?cursor= is no cursor, as the inbox's reader has it
            assert (await w.timeline.read("nobody", cursor, 10)).next_cursor is None
        assert (await w.timeline.read("nobody", "0-0", 10)).next_cursor == "0-0"

    run(check())


def test_a_quiet_group_costs_the_cursor_nothing():
    w = world()
    w.group("quiet")

    async def check() -> None:
        await w.own()
        [delivery] = (await w.timeline.read(READER, None, 10)).deliveries
        assert delivery.cursor == await w.inbox.last_cursor(READER)
        assert parse_cursor(await w.timeline.live_cursor(READER)).is_legacy

    run(check())


def test_streams_merge_by_id_and_each_delivery_carries_the_vector_just_after_it():
    w = world()

    async def check() -> None:
        w.group("g")
        sno = w.streams.stream_of("g")
        a = await w.own()
        b = w.post("g")
        c = await w.own()
        page = await w.timeline.read(READER, None, 10)
        assert [d.event.id for d in page.deliveries] == [a.id, b.id, c.id]
        own_a, own_c = (parse_cursor(d.cursor).own for d in (page.deliveries[0], page.deliveries[2]))
        [(g_b, _)] = w.streams.entries("g")
        assert page.deliveries[0].cursor == format_cursor(Cursor(own=own_a))  # the group still at its join
        assert parse_cursor(page.deliveries[1].cursor) == Cursor(own=own_a, groups={sno: g_b})
        assert parse_cursor(page.deliveries[2].cursor) == Cursor(own=own_c, groups={sno: g_b})
        assert page.next_cursor == page.deliveries[2].cursor and not page.has_more

    run(check())


def test_a_groups_messages_keep_their_seq_order_across_the_switch():
    w = world()

    async def check() -> None:
        before = [await w.small_group_message("g") for _ in range(3)]
        w.group("g")  # the floor is after every own-log entry of the group's small era
        after = [w.post("g") for _ in range(3)]
        await w.own()
        got = [d.event for d in await w.drain(None, page=2) if isinstance(d.event, Message) and d.event.group_id]
        assert [m.seq for m in got] == [1, 2, 3, 4, 5, 6]
        assert [m.id for m in got] == [m.id for m in before + after]

    run(check())


def test_a_legacy_cursor_resumes_with_every_group_from_its_join():
    w = world()

    async def check() -> None:
        await w.own()
        legacy = await w.inbox.last_cursor(READER)
        w.group("g")
        posts = [w.post("g") for _ in range(2)]
        assert [d.event.id for d in await w.drain(legacy)] == [m.id for m in posts]

    run(check())


def test_the_original_view_passes_over_own_sends_and_group_changes_but_moves_past_them():
    w = world()

    async def check() -> None:
        w.group("g")
        mine = await w.own(from_reader=True)
        await w.leave("g")
        await w.join("g")
        theirs = w.post("g")
        page = await w.timeline.read(READER, None, 1, events=False)
        assert [d.event.id for d in page.deliveries] == [theirs.id] and not page.has_more
        # Its cursor is past what was passed over: the event view resumes after all of it.
        assert await w.drain(page.next_cursor) == []
        events = await w.drain(None)
        assert [d.event.id for d in events][0] == mine.id and len(events) == 4
        assert events[-1].cursor == page.deliveries[0].cursor

    run(check())


def test_has_more_tells_of_a_next_page_in_the_view_read():
    w = world()

    async def check() -> None:
        w.group("g")
        w.post("g")
        await w.own(from_reader=True)
        page = await w.timeline.read(READER, None, 1, events=False)
        assert len(page.deliveries) == 1 and not page.has_more  # the own send is no next page in this view
        page = await w.timeline.read(READER, None, 1, events=True)
        assert len(page.deliveries) == 1 and page.has_more
        empty = await w.timeline.read(READER, page.next_cursor, 5, events=False)
        assert empty.deliveries == [] and empty.next_cursor == page.next_cursor and not empty.has_more

    run(check())


# intervals ------------------------------------------------------------------------------------
def test_joining_starts_at_the_join_and_leaving_ends_at_the_leave():
    w = world()

    async def check() -> None:
        w.group("g", with_reader=False)
        w.post("g")
        await w.join("g")
        inside = [w.post("g") for _ in range(2)]
        await w.leave("g")
        w.post("g")
        await w.join("g")
        again = w.post("g")
        group_entries = [d.event.id for d in await w.drain(None) if w.stream_of[d.event.id] == "g"]
        assert group_entries == [m.id for m in inside] + [again.id]  # not its own member_added/removed records

    run(check())


def test_a_cursor_from_before_a_leave_and_rejoin_in_a_quiet_group_still_reads_the_first_stretch():
    w = world()

    async def check() -> None:
        w.group("g")
        await w.own()
        cursor = await w.timeline.live_cursor(READER)  # the group quiet: not listed
        assert parse_cursor(cursor).is_legacy
        first = w.post("g")
        await w.leave("g")
        await w.join("g")
        second = w.post("g")
        got = [d.event.id for d in await w.drain(cursor) if w.stream_of[d.event.id] == "g"]
        assert got == [first.id, second.id]

    run(check())


def test_a_join_under_way_is_read_once_its_interval_is_applied():
    w = world()

    async def check() -> None:
        w.group("g", with_reader=False)
        w.post("g")
        w.streams.announce("g", READER)  # step 1 of the join only: nothing to read yet
        assert (await w.timeline.read(READER, None, 10)).deliveries == []
        assert parse_cursor(await w.timeline.live_cursor(READER)).is_legacy
        w.streams.join("g", READER, OTHER)
        post = w.post("g")
        assert [d.event.id for d in await w.drain(None)] == [post.id]

    run(check())


# 410 and 400 ----------------------------------------------------------------------------------
def test_a_join_before_what_the_stream_retains_answers_410():
    w = world()

    async def check() -> None:
        w.group("g")
        cursor = await w.timeline.live_cursor(READER)
        for _ in range(5):
            w.post("g")
        w.streams.trim("g", keep=3)
        with pytest.raises(errors.CursorExpired) as raised:
            await w.timeline.read(READER, cursor, 10)
        assert type(raised.value) is errors.CursorExpired
        with pytest.raises(errors.CursorExpired):
            await w.timeline.read(READER, None, 10)  # no cursor: the groups still start at the join

    run(check())


def test_a_position_after_what_was_trimmed_reads_on():
    w = world()

    async def check() -> None:
        w.group("g")
        posts = [w.post("g") for _ in range(5)]
        first_two = await w.timeline.read(READER, None, 2)
        w.streams.trim("g", keep=3)  # trims up to the second post: nothing after the cursor is lost
        assert [d.event.id for d in await w.drain(first_two.next_cursor)] == [m.id for m in posts[2:]]

    run(check())


def test_a_trimmed_stretch_the_reader_already_left_answers_no_410():
    w = world()

    async def check() -> None:
        w.group("g")
        w.post("g")
        first = await w.timeline.read(READER, None, 10)
        await w.leave("g")
        for _ in range(4):
            w.post("g")
        w.streams.trim("g", keep=2)
        [rest] = await w.drain(first.next_cursor)  # its own copy of the removal, nothing of the group
        assert w.stream_of[rest.event.id] == OWN and rest.event.type == MEMBER_REMOVED
        with pytest.raises(errors.CursorExpired):
            await w.drain(None)  # but from its join, what it would read is gone

    run(check())


def test_a_cursor_after_a_streams_newest_entry_is_unknown():
    w = world()

    async def check() -> None:
        w.group("g")
        sno = w.streams.stream_of("g")
        w.post("g")
        [(position, _)] = w.streams.entries("g")
        ahead = format_cursor(Cursor(own=None, groups={sno: (position[0] + 1, 0)}))
        with pytest.raises(errors.CursorUnknown):
            await w.timeline.read(READER, ahead, 10)
        unknown_stream = format_cursor(Cursor(own=None, groups={sno + 7: position}))
        with pytest.raises(errors.CursorUnknown):
            await w.timeline.read(READER, unknown_stream, 10)

    run(check())


def test_a_group_place_before_every_interval_kept_answers_410():
    w = world()

    async def check() -> None:
        w.group("g", with_reader=False)
        w.post("g")
        await w.join("g")
        sno = w.streams.stream_of("g")
        [join] = [i.join for i in w.streams.intervals_of("g", READER)]
        before = format_cursor(Cursor(own=None, groups={sno: (join[0] - 1, 0)}))
        with pytest.raises(errors.CursorExpired):
            await w.timeline.read(READER, before, 10)
        listed_without_interval = format_cursor(Cursor(own=None, groups={sno: join}))
        with pytest.raises(errors.CursorExpired):
            await w.timeline.read("someone else", listed_without_interval, 10)

    run(check())


def test_an_own_log_cursor_that_expired_or_is_unknown_answers_as_today():
    w = world(max_length=2)

    async def check() -> None:
        await w.own()
        cursor = await w.inbox.last_cursor(READER)
        for _ in range(3):
            await w.own()
        with pytest.raises(errors.CursorExpired):
            await w.timeline.read(READER, cursor, 10)
        with pytest.raises(errors.CursorUnknown):
            await w.timeline.read(READER, "999-0", 10)

    run(check())


@pytest.mark.parametrize("text", ["nope", "2.oA~A.oA~A", "2.x", "2"])
def test_a_text_that_is_no_cursor_answers_400(text):
    w = world()
    with pytest.raises(errors.InvalidCursor):
        run(w.timeline.read(READER, text, 10))


# checkpoints ----------------------------------------------------------------------------------
def test_the_seventeenth_moved_group_folds_the_cursor_into_a_checkpoint():
    w = world()

    async def check() -> None:
        groups = [w.group(f"g{i:02}") for i in range(INLINE_GROUPS + 1)]
        posts = [w.post(g) for g in groups]
        page = await w.timeline.read(READER, None, 50)
        cursors = [parse_cursor(d.cursor) for d in page.deliveries]
        assert [len(c.groups) for c in cursors] == list(range(1, INLINE_GROUPS + 1)) + [0]
        assert [c.checkpoint for c in cursors] == [None] * INLINE_GROUPS + [1]
        [(user, checkpoint, kept)] = w.checkpoints.saved
        assert (user, checkpoint, len(kept)) == (READER, 1, INLINE_GROUPS + 1)
        assert await w.drain(page.next_cursor) == []
        # Posts after it are listed on top of the checkpoint.
        later = w.post(groups[3])
        [delivery] = (await w.timeline.read(READER, page.next_cursor, 50)).deliveries
        assert delivery.event.id == later.id
        assert parse_cursor(delivery.cursor) == Cursor(
            own=None, checkpoint=1, groups={w.streams.stream_of(groups[3]): w.streams.entries(groups[3])[-1][0]})
        assert [d.event.id for d in await w.drain(None)] == [m.id for m in posts] + [later.id]

    run(check())


def test_live_cursor_of_a_reader_in_many_busy_groups_is_a_checkpoint():
    w = world()

    async def check() -> None:
        groups = [w.group(f"g{i:02}") for i in range(20)]
        for g in groups:
            w.post(g)
        cursor = await w.timeline.live_cursor(READER)
        assert parse_cursor(cursor).checkpoint == 1 and not parse_cursor(cursor).groups
        assert await w.drain(cursor) == []
        late = w.post(groups[0])
        assert [d.event.id for d in await w.drain(cursor)] == [late.id]

    run(check())


def test_a_checkpoint_no_longer_kept_answers_410():
    w = world(ring=2)

    async def check() -> None:
        groups = [w.group(f"g{i:02}") for i in range(20)]
        for group in groups:
            w.post(group)
        first = await w.timeline.live_cursor(READER)
        assert [d.event.id for d in await w.drain(first)] == []
        # (The same positions would answer the same checkpoint: each live cursor here is new.)
        w.post(groups[0])
        await w.timeline.live_cursor(READER)
        w.post(groups[1])
        await w.timeline.live_cursor(READER)  # checkpoint 3 takes checkpoint 1's place in a ring of 2
        with pytest.raises(errors.CursorExpired):
            await w.timeline.read(READER, first, 10)
        w.checkpoints.expire(READER, 3)
        with pytest.raises(errors.CursorExpired):
            await w.timeline.read(READER, format_cursor(Cursor(own=(0, 0), checkpoint=3)), 10)

    run(check())


# reading lazily -------------------------------------------------------------------------------
def test_a_page_over_many_groups_reads_about_a_page_not_a_page_per_group():
    w = world()

    async def check() -> None:
        groups = [w.group(f"g{i:02}") for i in range(50)]
        for _ in range(10):
            for g in groups:
                w.post(g)
        page = await w.timeline.read(READER, None, 50)
        assert len(page.deliveries) == 50 and page.has_more
        assert sum(limit for *_, limit in w.streams.reads) <= 50 * 16  # the fewest per stream
        assert all(limit == 16 for *_, limit in w.streams.reads)
        w.streams.reads.clear()
        # A group with nothing after the position is not read at all.
        quiet = world()
        quiet.group("g")
        await quiet.own()
        await quiet.timeline.read(READER, None, 10)
        assert quiet.streams.reads == []

    run(check())


def test_a_stream_is_read_again_when_its_batch_runs_out_before_the_page_is_full():
    w = world()

    async def check() -> None:
        for name in ("a", "b", "c"):
            w.group(name)
        posts = [w.post("a") for _ in range(30)] + [w.post("b"), w.post("c")]
        page = await w.timeline.read(READER, None, 30)  # a batch of max(16, 2 * 31 // 3) = 20 per group
        assert [d.event.id for d in page.deliveries] == [m.id for m in posts[:30]] and page.has_more
        a = w.streams.entries("a")
        assert [(after, limit) for group, _, after, limit in w.streams.reads if group == "a"] == [
            (w.streams.intervals_of("a", READER)[0].join, 20), (a[19][0], 20)]

    run(check())
