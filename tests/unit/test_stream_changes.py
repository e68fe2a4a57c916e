"""adapters.sql.stream_changes: a stored announcement's GroupSwitch / MemberChange as JSON
text and back, a MemberChange's record being the announcement's own event (written as a
flag, attached again on load); shapes no store writes are refused."""
from __future__ import annotations

import orjson
import pytest

from adapters.sql.stream_changes import stream_change_from_text, stream_change_text
from application.ports import JOIN, LEAVE, OWNER, GroupSwitch, LoggedChange, MemberChange
from domain.events import (
    GROUP_UPDATED,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    MESSAGE_UPDATED,
    GroupChange,
    MessageChange,
    ReadMarker,
)
from domain.model import GROUP, PRIVATE, Message

G, E = "00000000-0000-4000-8000-000000000101", "00000000-0000-4000-8000-000000000201"
A, B, C = (f"00000000-0000-4000-8000-00000000000{n}" for n in (1, 2, 3))


def event(kind: str = MEMBER_ADDED, **fields) -> GroupChange:
    return GroupChange(kind, E, G, A, 1_700_000_000, **fields)


def round_trip(change, announced):
    return stream_change_from_text(stream_change_text(change, announced), announced)


@pytest.mark.parametrize("channel", [False, True])
def test_a_switch_comes_back_as_it_was(channel):
    created = event(GROUP_UPDATED, name="g")
    switch = GroupSwitch(G, E, 7, 42, A, channel, (A, B, C))
    assert round_trip(switch, created) == switch
    assert orjson.loads(stream_change_text(switch, created))["member_ids"] == [A, B, C]  # a list, in order


def test_a_member_change_comes_back_with_the_announcements_event_as_its_record():
    joined = event(user_id=B)
    join = MemberChange(JOIN, G, E, 3, (B,), joined)
    text = stream_change_text(join, joined)
    assert "by_user_id" not in text and orjson.loads(text)["record"] is True  # the event once, in the row's record
    back = stream_change_from_text(text, joined)
    assert back == join and back.record is joined
    left = event(MEMBER_REMOVED, user_id=A)
    handed_on = MemberChange(LEAVE, G, E, 4, (A,), left, B)
    assert round_trip(handed_on, left) == handed_on
    owner = MemberChange(OWNER, G, E, 5, owner_id=C)  # no user, no record
    assert "record" not in stream_change_text(owner, left)
    assert round_trip(owner, left) == owner


def test_a_logged_change_comes_back_with_the_announcements_event_as_its_record():
    edited = Message(type=GROUP, id=B, from_user_id=A, content="x", created_at=1, group_id=G, seq=1, edited_at=2)
    change = MessageChange(MESSAGE_UPDATED, E, edited)
    logged = LoggedChange(G, change)
    text = stream_change_text(logged, change)
    assert orjson.loads(text) == {"type": "logged", "group_id": G, "event_id": E}  # the event once, in the row
    back = stream_change_from_text(text, change)
    assert back == logged and back.record is change
    with pytest.raises(ValueError):
        stream_change_text(logged, event())  # not the announcement's event
    with pytest.raises(ValueError):
        stream_change_from_text(text, GroupChange(GROUP_UPDATED, B, G, A, 1, name="n"))  # stored with another event


def test_a_large_groups_rename_is_a_logged_change_too():
    renamed = event(GROUP_UPDATED, name="new name")
    logged = LoggedChange(G, renamed)
    back = round_trip(logged, renamed)
    assert back == logged and back.record is renamed


def test_none_is_no_text_and_no_text_is_none():
    assert stream_change_text(None, event()) is None
    assert stream_change_from_text(None, event()) is None


def test_a_record_that_is_not_the_announcements_event_is_refused():
    other = event(user_id=C)
    with pytest.raises(ValueError):
        stream_change_text(MemberChange(JOIN, G, E, 3, (B,), event(user_id=B)), other)


def test_shapes_no_store_writes_are_refused():
    marker = ReadMarker(id=E, user_id=A, conversation_type=PRIVATE, conversation_id=B, seq=1)
    with_record = stream_change_text(MemberChange(JOIN, G, E, 3, (B,), event(user_id=B)), event(user_id=B))
    with pytest.raises(ValueError):
        stream_change_from_text(with_record, marker)  # a record, and the announcement is no group change
    with pytest.raises(ValueError):
        stream_change_from_text('{"type": "shrink", "group_id": "g"}', event())
