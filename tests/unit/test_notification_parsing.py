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
