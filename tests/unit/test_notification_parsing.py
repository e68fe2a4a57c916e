"""adapters.redis.subscriber.parse_notification: the published JSON -> Notification,
and every shape that is not one refused (the subscriber then skips it)."""
from __future__ import annotations

import orjson
import pytest

from adapters.redis.subscriber import parse_notification

RECORD = {"type": "group", "id": "m1", "group_id": "g1", "from_user_id": "a", "content": "hi",
          "created_at": 1_700_000_000}


def published(**fields) -> bytes:
    return orjson.dumps({"message": RECORD, **fields})


def test_one_cursor_for_all_but_those_with_their_own():
    notification = parse_notification(published(cursor="5-0", to=["b", "c", "d"], own={"c": "6-0"}))
    assert notification.cursors == {"b": "5-0", "c": "6-0", "d": "5-0"}
    assert notification.event.id == "m1"
    assert parse_notification(published(cursor="5-0", to=["b"])).cursors == {"b": "5-0"}


def test_the_older_shape_of_one_cursor_per_recipient():
    assert parse_notification(published(cursors={"b": "5-0", "c": "6-0"})).cursors == {"b": "5-0", "c": "6-0"}


@pytest.mark.parametrize("fields", [
    {"cursor": 5, "to": ["b"]},
    {"cursor": "5-0", "to": "b"},
    {"cursor": "5-0", "to": ["b", 7]},
    {"cursor": "5-0", "to": ["b", None]},
    {"cursor": "5-0", "to": [["b"]]},
    {"cursor": "5-0", "to": ["b"], "own": []},
    {"cursor": "5-0", "to": ["b"], "own": {"b": 6}},
    {"cursors": ["b"]},
    {"cursors": {"b": 5}},
    {"cursors": {"b": None}},
])
def test_anything_else_is_refused(fields):
    with pytest.raises((ValueError, TypeError, KeyError)):
        parse_notification(published(**fields))


# The large groups' kinds (docs/design/large-groups.md, section 6.1) -------------------------------
def test_a_group_entry():
    from adapters.redis import envelope
    from application.ports import GroupNotification

    data = envelope.group_head("g1", orjson.dumps(RECORD)) + b',"seq":4,"pos":"17-2"}'
    notification = parse_notification(data)
    assert isinstance(notification, GroupNotification)
    assert (notification.group_id, notification.position, notification.event.seq) == ("g1", (17, 2), 4)


def test_a_join_and_a_leave_with_and_without_their_record():
    from adapters.redis import envelope
    from application.ports import JOIN, LEAVE, MembershipNotification

    change = {"type": "member_added", "id": "c1", "group_id": "g1", "by_user_id": "a", "created_at": 1,
              "user_id": "b"}
    head = envelope.member_head("g1", ["b", "c"])
    joined = parse_notification(head + b',"join":"9-0","event":' + orjson.dumps(change) + b',"pos":"9-0"}')
    assert isinstance(joined, MembershipNotification)
    assert (joined.kind, joined.user_ids, joined.position) == (JOIN, ("b", "c"), (9, 0))
    assert joined.record is not None and joined.record.position == (9, 0) and joined.record.event.id == "c1"
    left = parse_notification(head + b',"leave":"9-0"}')  # a channel logs no record
    assert isinstance(left, MembershipNotification)
    assert (left.kind, left.position, left.record) == (LEAVE, (9, 0), None)


def test_a_switch():
    from adapters.redis import envelope
    from application.ports import SwitchNotification

    notification = parse_notification(envelope.switched_head("g1", 3, ["a", "b"]) + b',"floor":"20-0"}')
    assert notification == SwitchNotification("g1", 3, (20, 0), ("a", "b"))


@pytest.mark.parametrize("data", [
    b'{"kind":"group","group":7,"event":{},"pos":"1-0"}',
    b'{"kind":"switched","group":"g","stream":"3","floor":"1-0","members":[]}',
    b'{"kind":"member","group":"g","users":"b","join":"1-0"}',
    b'{"kind":"member","group":"g","users":["b"],"join":5}',
    b'{"kind":"other","group":"g"}',
])
def test_malformed_large_group_notifications_are_refused(data):
    with pytest.raises(Exception):  # noqa: B017 - any error: the subscriber skips it
        parse_notification(data)
