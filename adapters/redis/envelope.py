"""The notification that goes from the inbox to every gateway over Redis pub/sub:
a typed envelope, built here and read here.

    {"kind": "event", "event": <record>, "to": [user ids], "seq": n, "cursor": <id>, "own": {user id: id}}

`event` is the stored event's record (domain.events: a message with its
client_msg_id, which only its sender's frames show, or a group change); every
recipient in `to` has it at `cursor` in its log, but those in `own` (an inbox that
needed an id of its own: deliver.lua says when). A message's `seq`, taken in the
script, rides beside the record and is put into it here. The head - up to the recipients -
is made here, in Python; deliver.lua, which alone knows the cursors, adds the tail
(the seq, the cursor, the cursors of their own, the closing brace) and publishes it,
in the same atomic step as the appends.

A push that is stored nowhere (typing, presence) needs no envelope of this kind: it
has no cursor, and goes to Gateway.push_cursorless."""
from __future__ import annotations

from collections.abc import Iterable

import orjson

from application.ports import Notification
from domain.events import event_from_record

EVENT = "event"


def head(record: bytes, recipient_json_ids: Iterable[bytes]) -> bytes:
    """The envelope up to its recipients: `record` is the event's JSON, each recipient
    id is already a JSON string (cached by the caller: a group has a thousand)."""
    return b'{"kind":"event","event":%s,"to":[%s]' % (record, b",".join(recipient_json_ids))


def parse(data: bytes | str) -> Notification:
    """An envelope back into a Notification. (Also the untyped notification of Courier
    before the event log, {"message": record, "cursor", "to", "own"} and, older,
    {"message": record, "cursors": {...}}, which a gateway of the previous version
    publishes during a rolling upgrade.)"""
    body = orjson.loads(data)
    record = body["event"] if body.get("kind") == EVENT else body["message"]
    if "seq" in body:
        record["seq"] = body["seq"]
    if "cursor" in body:
        cursor, to, own = body["cursor"], body["to"], body.get("own", {})
        if not isinstance(cursor, str) or not isinstance(to, list) or not isinstance(own, dict):
            raise ValueError("cursor must be a string, to a list, own an object")
        if not (_all_strings(to) and _all_strings(own.values())):  # own's keys are strings: JSON
            raise ValueError("to must list user ids, own map them to cursor strings")
        cursors = dict.fromkeys(to, cursor)
        cursors.update(own)
    else:
        cursors = body["cursors"]
        if not isinstance(cursors, dict) or not _all_strings(cursors.values()):
            raise ValueError("cursors must map user ids to cursor strings")
    return Notification(event_from_record(record), cursors)


def _all_strings(items) -> bool:
    # The types counted in C: a generator of isinstance() calls over a group of 1,000
    # recipients took a tenth of a millisecond per notification.
    return set(map(type, items)) <= _STRING


_STRING = {str}
