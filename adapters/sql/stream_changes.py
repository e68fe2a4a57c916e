"""A stored announcement's stream change (group_announcements.stream_change) as JSON text
and back: the GroupSwitch or MemberChange (application/ports.py) that SqlGroupRepository
decided in the change's transaction, so that the relay applies to the GroupStreams the
very change the announcer would have (docs/design/large-groups.md, sections 4.2, 4.3).

    {"type": "switch", "group_id", "event_id", "version", "stream", "owner_id", "channel", "member_ids"}
    {"type": "member", "kind", "group_id", "event_id", "version", "user_ids", "record"?, "owner_id"?}
    {"type": "logged", "group_id", "event_id"}

A MemberChange's `record` is not written out: it is always the announcement's own event
(SqlGroupRepository passes the announcement's GroupChange), which the row holds already
in its `record` column. "record": true says it had one, and loading attaches the
announcement's event again. So a row holds the event once, and the record the relay
hands to the streams cannot differ from the event it appends (nor lose a field that
to_record keeps and a second copy might not). Writing a record that is not the
announcement's event is refused: nothing could bring it back. A LoggedChange (a message's
edit or deletion in a large group, or its rename) is its announcement's event in a group's stream: the
row holds only which group."""
from __future__ import annotations

from typing import Any

import orjson

from application.ports import GroupSwitch, LoggedChange, MemberChange
from domain.events import Appended, GroupChange, MessageChange

SWITCH, MEMBER, LOGGED = "switch", "member", "logged"


def stream_change_text(change: GroupSwitch | MemberChange | LoggedChange | None, event: Appended) -> str | None:
    """`change` as JSON text, None for None; `event` is its announcement's event."""
    if change is None:
        return None
    body: dict[str, Any]
    if isinstance(change, GroupSwitch):
        body = {"type": SWITCH, "group_id": change.group_id, "event_id": change.event_id,
                "version": change.version, "stream": change.stream, "owner_id": change.owner_id,
                "channel": change.channel, "member_ids": list(change.member_ids)}
    elif isinstance(change, LoggedChange):
        if change.record != event:
            raise ValueError(f"the logged change {change.event_id} is not its announcement's event")
        body = {"type": LOGGED, "group_id": change.group_id, "event_id": change.event_id}
    else:
        body = {"type": MEMBER, "kind": change.kind, "group_id": change.group_id, "event_id": change.event_id,
                "version": change.version, "user_ids": list(change.user_ids)}
        if change.record is not None:
            if change.record != event:
                raise ValueError(f"the member change {change.event_id} carries a record other than its "
                                 "announcement's event")
            body["record"] = True
        if change.owner_id is not None:
            body["owner_id"] = change.owner_id
    return orjson.dumps(body).decode()


def stream_change_from_text(text: str | None,
                            event: Appended) -> GroupSwitch | MemberChange | LoggedChange | None:
    """The change back from stream_change_text's text (None for None); `event` is the
    stored announcement's event, a MemberChange's record."""
    if text is None:
        return None
    body = orjson.loads(text)
    kind = body.get("type")
    if kind == SWITCH:
        return GroupSwitch(body["group_id"], body["event_id"], int(body["version"]), int(body["stream"]),
                           body["owner_id"], bool(body["channel"]), tuple(body["member_ids"]))
    if kind == MEMBER:
        record = None
        if body.get("record"):
            if not isinstance(event, GroupChange):
                raise ValueError(f"the member change {body['event_id']} has a record, and its announcement "
                                 f"a {event.type!r}")
            record = event
        return MemberChange(body["kind"], body["group_id"], body["event_id"], int(body["version"]),
                            tuple(body["user_ids"]), record, body.get("owner_id"))
    if kind == LOGGED:
        if not isinstance(event, MessageChange | GroupChange) or event.id != body["event_id"]:
            raise ValueError(f"the logged change {body['event_id']} is stored with another event")
        return LoggedChange(body["group_id"], event)
    raise ValueError(f"a stream change of type {kind!r}, which no store writes")
