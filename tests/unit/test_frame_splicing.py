"""Frame splicing (docs/design/large-groups.md, section 6.3; application/frames.py): the
entry's JSON once per notification, the cursor's texts around the stream that moved
cached per connection, and a socket's frame a join of parts. What a client receives must
be byte for byte what the per-connection build gives: the whole vector formatted and the
whole entry encoded for that socket alone."""
from __future__ import annotations

import copy

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from application.frames import Frames, Splice
from application.vector_connection import VectorConnection
from domain.cursor import (
    INLINE_GROUPS,
    MAX_N64,
    Cursor,
    Position,
    fits_inline,
    format_cursor,
    group_part,
    own_part,
    spliced_around,
)
from domain.events import MEMBER_ADDED, Delivery, GroupChange, ReadMarker
from domain.model import GROUP, PRIVATE, Message
from domain.vector import Interval, Slot, Vector
from entrypoints.container import encode_delivery, encode_parts
from entrypoints.socket_writer import text_frame, text_frame_parts
from tests.fakes.channel import RecordingChannel

ME, OTHER = "me", "other"
n64 = st.integers(min_value=0, max_value=MAX_N64)
positions = st.tuples(n64, n64)
realistic = st.tuples(st.integers(0, 2**42), st.integers(0, 4095)) | positions


# domain.cursor.spliced_around ---------------------------------------------------------------
@settings(max_examples=300)
@given(own=st.none() | positions, groups=st.dictionaries(st.integers(0, 2**20), realistic, max_size=INLINE_GROUPS - 1),
       checkpoint=st.none() | st.integers(0, 2**40), stream=st.none() | st.integers(0, 2**20), at=positions)
def test_the_texts_around_a_stream_and_its_part_are_the_cursor(own, groups, checkpoint, stream, at):
    around = spliced_around(Cursor(own=own, groups=groups, checkpoint=checkpoint), stream)
    if stream is None:
        whole = Cursor(own=at, groups=groups, checkpoint=checkpoint)
        part = own_part(at)
    else:
        whole = Cursor(own=own, groups={**groups, stream: at}, checkpoint=checkpoint)
        part = group_part(stream, at)
    assume(fits_inline(whole))
    if around is None:
        assert stream is None and whole.is_legacy
    else:
        assert around[0] + part + around[1] == format_cursor(whole)


# encode_parts ---------------------------------------------------------------------------------
EVENTS = [
    Message(GROUP, "m1", ME, 'hi ,"cursor":"" "quoted" \\', 7, group_id="G", client_msg_id="c-1", seq=3),
    Message(GROUP, "m2", OTHER, ',"cursor":""}', 7, group_id="G", client_msg_id=',"cursor":""', seq=4),
    Message(PRIVATE, "m3", ME, "x", 7, to_user_id=OTHER, seq=1, deleted_at=9),
    GroupChange(MEMBER_ADDED, "e1", "G", OTHER, 7, user_id=ME),
    ReadMarker("r1", ME, GROUP, "G", 3),
]


def test_an_event_cut_around_its_cursor_is_its_delivery_at_any_cursor():
    for event in EVENTS:
        for user_id in (None, ME, OTHER):
            head, close = encode_parts(event, user_id)
            for cursor in ("1-2", "2.oB~C.gD~E~F", ""):
                assert head + cursor.encode() + close == encode_delivery(Delivery(event, cursor), user_id)


def test_a_splice_encodes_once_per_view_and_the_senders_own_view_apart():
    calls = []

    def counting(event, user_id):
        calls.append(user_id)
        return encode_parts(event, user_id)

    splice = Splice(EVENTS[0], b".gB~C~D", counting)
    assert splice.view(None) is splice.view(OTHER) is splice.view("third")
    assert splice.view(ME) is splice.view(ME)
    assert splice.view(ME) != splice.view(None)  # the sender's own send keeps its client_msg_id
    assert calls == [None, ME]


# VectorConnection: spliced frames equal the slow path's -----------------------------------
class FramingChannel(RecordingChannel):
    """Keeps each frame as the socket writer frames it: send -> text_frame, send_parts ->
    text_frame_parts; and how many were spliced."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[bytes] = []
        self.spliced = 0

    def send(self, payload: bytes) -> bool:
        self.frames.append(text_frame(payload))
        return super().send(payload)

    def send_parts(self, parts: tuple[bytes, ...]) -> bool:
        self.spliced += 1
        self.frames.append(text_frame_parts(parts))
        return super().send(b"".join(parts))


def connection(vector: Vector, events: bool = False) -> tuple[VectorConnection, FramingChannel]:
    from application.connection import Connection

    channel = FramingChannel()
    conn = Connection(ME, channel, "1-1", events)
    return VectorConnection.of(conn, vector, Frames(encode_parts)), channel


def slow_frame(conn: VectorConnection, event) -> bytes:
    """The frame as the per-connection path builds it: the whole vector, the whole entry."""
    text = conn.vector.text()
    assert text is not None
    return text_frame(encode_delivery(Delivery(event, text), ME if conn.events else None))


def group_message(n: int, sender: str = OTHER, client_msg_id: str | None = None) -> Message:
    return Message(GROUP, f"m{n}", sender, "x" * (n % 7), 7, group_id="G", client_msg_id=client_msg_id, seq=n)


def vector_of(streams: dict[int, Position], own: Position | None = (5, 0)) -> Vector:
    slots = {stream: Slot(f"G{stream}", stream, (Interval(join),), join) for stream, join in streams.items()}
    return Vector(own=own, slots=slots)


def push_group(conn: VectorConnection, frames: Frames, stream: int, position: Position, event) -> bool:
    return conn.push_group(stream, position, frames.group(event, stream, position))


def own_push(conn: VectorConnection, position: Position, event) -> bool:
    """An own-log push as the gateway makes it: the shared legacy-cursor frame."""
    delivery = Delivery(event, f"{position[0]}-{position[1]}")
    return conn.push(delivery, encode_delivery(delivery), position)


@st.composite
def scenarios(draw):
    """A random vector (own, checkpoint and base, up to 20 groups with joins and positions)
    and a random run of pushes (group, own) with some out-of-band changes in between."""
    streams = draw(st.lists(st.integers(0, 5000), min_size=1, max_size=20, unique=True))
    slots = {}
    base = {}
    for stream in streams:
        join = (draw(st.integers(0, 10**6)), draw(st.integers(0, 3)))
        pos = (join[0] + draw(st.integers(0, 50)), draw(st.integers(0, 3)))
        pos = max(pos, join)
        slots[stream] = Slot(f"G{stream}", stream, (Interval(join),), pos)
        if draw(st.booleans()):
            base[stream] = draw(st.sampled_from([join, pos]))
    own = draw(st.none() | st.tuples(st.integers(0, 10**6), st.integers(0, 9)))
    checkpoint = draw(st.none() | st.integers(0, 2**40)) if base else None
    vector = Vector(own=own, slots=slots, checkpoint=checkpoint, base=base if checkpoint is not None else {})
    steps = draw(st.lists(st.tuples(st.sampled_from(["group", "group", "group", "own", "replay", "leave"]),
                                    st.sampled_from(streams), st.integers(1, 10**5), st.integers(0, 5),
                                    st.sampled_from([OTHER, ME]), st.booleans()), max_size=25))
    return vector, draw(st.booleans()), steps


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_spliced_frame_is_byte_for_byte_the_per_connection_frame(scenario):
    vector, events, steps = scenario
    conn, channel = connection(vector, events)
    frames = conn.frames
    for n, (kind, stream, step, seq, sender, with_key) in enumerate(steps):
        event = group_message(n, sender, f"k{n}" if with_key else None)
        before = len(channel.frames)
        if kind == "group":
            slot = vector.slots[stream]
            position = (slot.pos[0] + step, seq)
            sent = push_group(conn, frames, stream, position, event)
        elif kind == "own":
            position = ((vector.own or (0, 0))[0] + step, seq)
            sent = own_push(conn, position, event)
        elif kind == "replay":
            # A replay moves the vector out of band (here: a checkpoint cut at its place).
            conn._replaying = True
            vector.rebase(step, vector.moved())
            conn.release()
            continue
        else:
            conn.leave_at(stream, (vector.slots[stream].pos[0] + 10**6, 0))
            continue
        if sent:
            assert channel.frames[before:] == [slow_frame(conn, event)]
        elif len(channel.frames) == before and not channel.closed_for_resume:
            continue  # a duplicate, outside the interval, or not in the view
        else:
            assert channel.closed_for_resume and would_need_checkpoint(vector, kind, stream, position)
            return
    # The property is about bytes; make sure most pushes really took the spliced path.
    assert channel.spliced >= len(channel.frames) - sum(1 for s in steps if s[0] == "own")


def would_need_checkpoint(vector: Vector, kind: str, stream: int, position) -> bool:
    """Whether the cursor with the push applied needs a checkpoint (the connection put the
    position back when it could not send: a group at its default place, listed by the
    push, can be the 17th; a longer position can pass MAX_CURSOR_LENGTH)."""
    pushed = copy.deepcopy(vector)
    if kind == "group":
        pushed.slots[stream].pos = position
    else:
        pushed.own = position
    return pushed.needs_checkpoint()


# The prefix cache and what forgets it ------------------------------------------------------
def cursors(channel: FramingChannel) -> list[str]:
    return channel.cursors


def test_a_push_to_the_same_stream_reuses_the_prefix_and_another_stream_rebuilds_it():
    conn, channel = connection(vector_of({3: (10, 0), 9: (10, 0)}))
    frames = conn.frames
    push_group(conn, frames, 3, (11, 0), group_message(1))
    cached = conn._prefix
    assert cached is not None and cached[0] == 3
    push_group(conn, frames, 3, (12, 0), group_message(2))
    assert conn._prefix is cached  # only stream 3 moved: the texts around it hold
    push_group(conn, frames, 9, (13, 0), group_message(3))
    assert conn._prefix is not None and conn._prefix[0] == 9
    push_group(conn, frames, 3, (14, 0), group_message(4))  # 9's part is in 3's prefix now
    assert conn._prefix[0] == 3
    assert channel.frames[-1] == slow_frame(conn, group_message(4))
    assert cursors(channel)[-1] == conn.vector.text()
    assert channel.spliced == 4


def test_an_own_push_moves_the_own_part_in_later_group_frames():
    conn, channel = connection(vector_of({3: (10, 0)}))
    frames = conn.frames
    push_group(conn, frames, 3, (11, 0), group_message(1))
    own_push(conn, (20, 0), group_message(2))
    push_group(conn, frames, 3, (21, 0), group_message(3))
    assert channel.frames == [slow_frame_at(text, event) for text, event in
                              zip(cursors(channel), [group_message(1), group_message(2), group_message(3)],
                                  strict=True)]
    assert cursors(channel)[-1] == conn.vector.text() and ".oU~A" in cursors(channel)[-1]


def slow_frame_at(text: str, event) -> bytes:
    return text_frame(encode_delivery(Delivery(event, text)))


def test_a_checkpoint_cut_in_a_replay_is_in_the_next_frames():
    conn, channel = connection(vector_of({3: (10, 0), 9: (10, 0)}))
    frames = conn.frames
    push_group(conn, frames, 3, (11, 0), group_message(1))
    push_group(conn, frames, 9, (12, 0), group_message(2))
    conn._replaying = True
    conn.vector.rebase(42, conn.vector.moved())
    conn.release()
    assert conn._prefix is None
    push_group(conn, frames, 9, (13, 0), group_message(3))
    assert cursors(channel)[-1] == conn.vector.text() == "2.oF~A.kq.gJ~N~A"
    assert channel.frames[-1] == slow_frame(conn, group_message(3))


def test_a_leave_forgets_the_prefix():
    conn, channel = connection(vector_of({3: (10, 0), 9: (10, 0)}))
    push_group(conn, conn.frames, 3, (11, 0), group_message(1))
    conn.leave_at(3, (50, 0))
    assert conn._prefix is None


def test_a_join_in_a_replay_lists_the_new_group_beside_the_pushed_one():
    conn, channel = connection(vector_of({3: (10, 0)}))
    frames = conn.frames
    push_group(conn, frames, 3, (11, 0), group_message(1))
    conn._replaying = True  # the replay a join starts: Timeline.refresh adds the slot, reads it
    conn.vector.slots[2] = Slot("G2", 2, (Interval((5, 0)),), (5, 0))
    conn.vector.advance(2, (12, 0))
    conn.release()
    push_group(conn, frames, 3, (13, 0), group_message(2))
    assert cursors(channel)[-1] == conn.vector.text() == "2.oF~A.gC~M~A.gD~N~A"
    assert channel.frames[-1] == slow_frame(conn, group_message(2))


def test_a_group_pushed_at_its_default_place_falls_back_to_the_whole_cursor():
    # A checkpoint whose base is ahead of an inline position a client sent: a push that
    # lands on the base takes the group out of the cursor again. Rare; still exact.
    vector = vector_of({3: (10, 0)})
    vector.slots[3].pos = (11, 0)
    vector.rebase(7, {3: (12, 0)})
    conn, channel = connection(vector)
    push_group(conn, conn.frames, 3, (12, 0), group_message(1))
    assert channel.spliced == 0 and cursors(channel) == [conn.vector.text()] == ["2.oF~A.kH"]


def test_a_legacy_vector_takes_the_shared_own_frame_itself():
    conn, channel = connection(Vector(own=(5, 0)))
    delivery = Delivery(group_message(1), "20-0")
    payload = encode_delivery(delivery)
    conn.push(delivery, payload, (20, 0))
    assert channel.payloads[0] is payload and channel.spliced == 0


def test_a_group_that_would_be_the_17th_closes_for_resume_as_before():
    streams = {stream: (10, 0) for stream in range(INLINE_GROUPS + 1)}
    conn, channel = connection(vector_of(streams))
    for stream in range(INLINE_GROUPS):
        push_group(conn, conn.frames, stream, (11 + stream, 0), group_message(stream))
    assert channel.frames[-1] == slow_frame(conn, group_message(INLINE_GROUPS - 1))
    assert not push_group(conn, conn.frames, INLINE_GROUPS, (40, 0), group_message(99))
    assert channel.closed_for_resume == ["try_again"] and len(channel.frames) == INLINE_GROUPS


def test_a_push_on_another_stream_that_is_not_shown_still_forgets_the_prefix():
    # Found by the property test: one's own message moves its stream's position (it is in
    # the cursor) although the original view does not send it.
    conn, channel = connection(vector_of({3: (10, 0), 9: (10, 0)}))
    frames = conn.frames
    push_group(conn, frames, 3, (11, 0), group_message(1))
    assert not push_group(conn, frames, 9, (12, 0), group_message(2, sender=ME))
    push_group(conn, frames, 3, (13, 0), group_message(3))
    assert cursors(channel)[-1] == conn.vector.text() == "2.oF~A.gD~N~A.gJ~M~A"
    assert channel.frames[-1] == slow_frame(conn, group_message(3))
