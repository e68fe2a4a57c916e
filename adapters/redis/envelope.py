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

from application.ports import (
    JOIN,
    LEAVE,
    AnyNotification,
    GroupNotification,
    MembershipNotification,
    Notification,
    SwitchNotification,
)
from domain.cursor import Position
from domain.events import event_from_record
from domain.model import cursor_position

EVENT = "event"


def head(record: bytes, recipient_json_ids: Iterable[bytes]) -> bytes:
    """The envelope up to its recipients: `record` is the event's JSON, each recipient
    id is already a JSON string (cached by the caller: a group has a thousand)."""
    return b'{"kind":"event","event":%s,"to":[%s]' % (record, b",".join(recipient_json_ids))


# The large groups' envelopes (docs/design/large-groups.md, section 6.1): their heads are
# made here and their tails in the scripts (lg_deliver.lua, lg_change.lua), as above;
# parse() reads them back (the gateway's multi-position bookkeeping, application/gateway.py).
GROUP, MEMBER, SWITCHED = "group", "member", "switched"


def group_head(group_id: str, record: bytes) -> bytes:
    """A large group's message on lg:{G}:n, up to its tail ,"seq":n,"pos":"<id>"}."""
    return b'{"kind":"group","group":%s,"event":%s' % (orjson.dumps(group_id), record)


def member_head(group_id: str, user_ids: Iterable[str]) -> bytes:
    """A join or leave on lg:{G}:n, up to its tail ,"join"|"leave":"<id>"} - or, when the
    change logged a record for the others, ,"join"|"leave":"<id>","event":<record>,"pos":"<id>"}."""
    return b'{"kind":"member","group":%s,"users":%s' % (orjson.dumps(group_id), orjson.dumps(list(user_ids)))


def switched_head(group_id: str, stream: int, member_ids: Iterable[str]) -> bytes:
    """A switch on the main channel, up to its tail ,"floor":"<id>"}."""
    return b'{"kind":"switched","group":%s,"stream":%d,"members":%s' % (
        orjson.dumps(group_id), stream, orjson.dumps(list(member_ids)))


def parse(data: bytes | str) -> AnyNotification:
    """An envelope back into a Notification, or a large group's notification (the kinds
    group, member and switched). (Also the untyped notification of Courier
    before the event log, {"message": record, "cursor", "to", "own"} and, older,
    {"message": record, "cursors": {...}}, which a gateway of the previous version
    publishes during a rolling upgrade.)"""
    body = orjson.loads(data)
    kind = body.get("kind")
    if kind is not None and kind != EVENT:
        return _parse_large(kind, body)
    record = body["event"] if kind == EVENT else body["message"]
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


def _parse_large(kind: str, body: dict) -> AnyNotification:
    group_id = body["group"]
    if not isinstance(group_id, str):
        raise ValueError("group must be a group id")
    if kind == GROUP:
        return _group_entry(group_id, body)
    if kind == MEMBER:
        side = JOIN if "join" in body else LEAVE
        users = body["users"]
        if not isinstance(users, list) or not _all_strings(users):
            raise ValueError("users must list user ids")
        record = _group_entry(group_id, body) if "event" in body else None
        return MembershipNotification(group_id, tuple(users), side, _position(body[side]), record)
    if kind == SWITCHED:
        stream, members = body["stream"], body["members"]
        if type(stream) is not int or not isinstance(members, list) or not _all_strings(members):
            raise ValueError("stream must be a number, members a list of user ids")
        return SwitchNotification(group_id, stream, _position(body["floor"]), tuple(members))
    raise ValueError(f"unknown notification kind {kind!r}")


def _group_entry(group_id: str, body: dict) -> GroupNotification:
    record = body["event"]
    if "seq" in body:
        record["seq"] = body["seq"]
    return GroupNotification(event_from_record(record), group_id, _position(body["pos"]))


def _position(text) -> Position:
    if not isinstance(text, str):
        raise ValueError("a stream position is a string")
    return cursor_position(text)


def _all_strings(items) -> bool:
    # The types counted in C: a generator of isinstance() calls over a group of 1,000
    # recipients took a tenth of a millisecond per notification.
    return set(map(type, items)) <= _STRING


_STRING = {str}
