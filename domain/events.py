"""What a user's inbox holds: events, in one order per user (the event log).

Three kinds are stored: messages (domain.model.Message, types "private" and "group"),
group changes (GroupChange below: "member_added", "member_removed",
"group_updated", "group_invited"), message changes (MessageChange: "message_updated",
"message_deleted") and read markers moved by the user (ReadMarker: "read"). Each has
`type`, `public(cursor)` (the object a client gets) and `to_record()` /
`event_from_record()` (what the stores keep).

Two views read the one log:
- the event view (GET /api/v1/events, /ws?events=1) shows every stored event,
  the user's own sends included;
- the original view (GET /api/v1/messages, the default /ws) shows messages from
  others only, as before there was a log: `in_original_view` says which.
A cursor is a position in the log, so a cursor of one view resumes the other."""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from domain import errors
from domain.model import GROUP, PRIVATE, Message

MEMBER_ADDED, MEMBER_REMOVED, GROUP_UPDATED = "member_added", "member_removed", "group_updated"
# The owner invited the user (POST /groups/{id}/invitations): in the invitee's own log only.
GROUP_INVITED = "group_invited"
GROUP_CHANGES = frozenset({MEMBER_ADDED, MEMBER_REMOVED, GROUP_UPDATED, GROUP_INVITED})
MESSAGE_UPDATED, MESSAGE_DELETED = "message_updated", "message_deleted"
MESSAGE_CHANGES = frozenset({MESSAGE_UPDATED, MESSAGE_DELETED})
MESSAGE_TYPES = frozenset({PRIVATE, GROUP})


@dataclass(slots=True, frozen=True)
class GroupChange:
    """A change of a group that its members see: someone added or removed (leaving is
    a removal by oneself), or the group renamed (also sent to the first members when
    a group is created, so that it appears for them at once). And an invitation, which
    its invitee alone sees: not a member yet, it is told the group's name too."""

    type: str  # MEMBER_ADDED, MEMBER_REMOVED, GROUP_UPDATED or GROUP_INVITED
    id: str  # the event's own id
    group_id: str
    by_user_id: str
    created_at: int
    user_id: str | None = None  # who was added, removed or invited
    name: str | None = None  # the group's name (group_updated, group_invited)

    def public(self, cursor: str | None = None) -> dict:
        body: dict[str, Any] = {"type": self.type, "id": self.id, "group_id": self.group_id}
        if self.type == GROUP_UPDATED:
            body["name"] = self.name
        else:
            body["user_id"] = self.user_id
            if self.type == GROUP_INVITED:
                body["name"] = self.name
        body["by_user_id"] = self.by_user_id
        body["created_at"] = self.created_at
        if cursor is not None:
            body["cursor"] = cursor
        return body

    def to_record(self) -> dict:
        return self.public()

    @classmethod
    def from_record(cls, record: dict) -> GroupChange:
        return cls(
            type=record["type"],
            id=record["id"],
            group_id=record["group_id"],
            by_user_id=record["by_user_id"],
            created_at=int(record["created_at"]),
            user_id=record.get("user_id"),
            name=record.get("name"),
        )


# Event ids of message changes are derived from what they change (uuid5), so that a
# retried edit or a second delete names the event appended before: Inbox.append
# appends an id once only, so neither is appended twice.
_CHANGE_IDS = uuid.UUID("6f1d2c3e-7a51-4c1e-9b3f-0c0ffee15e75")


def edit_event_id(message_id: str, content: str, edited_at: int) -> str:
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
    return str(uuid.uuid5(_CHANGE_IDS, f"{message_id}:edited:{edited_at}:{digest}"))


def delete_event_id(message_id: str) -> str:
    return str(uuid.uuid5(_CHANGE_IDS, f"{message_id}:deleted"))


@dataclass(slots=True, frozen=True)
class MessageChange:
    """A message edited ("message_updated") or deleted ("message_deleted"), for every
    participant of its conversation (the sender included; in a group, the members at
    that time). Stored in the log like a group change; pushed in the event view only."""

    type: str  # MESSAGE_UPDATED or MESSAGE_DELETED
    id: str  # the event's own id (edit_event_id / delete_event_id): appended once
    message: Message  # the message as changed (content and edited_at, or deleted_at)

    @property
    def created_at(self) -> int:
        """When the change was made (its announcement's time, as a group change's)."""
        return int(self.message.deleted_at or self.message.edited_at or self.message.created_at)

    def public(self, cursor: str | None = None) -> dict:
        m = self.message
        body: dict[str, Any] = {"type": self.type, "id": m.id, "seq": m.seq, "message_type": m.type}
        if m.type == GROUP:
            body["group_id"] = m.group_id
        body["from_user_id"] = m.from_user_id
        if m.type == PRIVATE:
            body["to_user_id"] = m.to_user_id
        if self.type == MESSAGE_UPDATED:
            body["content"] = m.content
            body["edited_at"] = m.edited_at
        else:
            body["deleted_at"] = m.deleted_at
        if cursor is not None:
            body["cursor"] = cursor
        return body

    def to_record(self) -> dict:
        record = self.public()
        record["event_id"] = self.id
        record["created_at"] = self.message.created_at
        return record

    @classmethod
    def from_record(cls, record: dict) -> MessageChange:
        message = Message(
            type=record["message_type"], id=record["id"], from_user_id=record["from_user_id"],
            content=record.get("content", ""), created_at=int(record["created_at"]),
            to_user_id=record.get("to_user_id"), group_id=record.get("group_id"),
            seq=record.get("seq"), edited_at=record.get("edited_at"), deleted_at=record.get("deleted_at"))
        return cls(type=record["type"], id=record["event_id"], message=message)



READ = "read"


@dataclass(slots=True, frozen=True)
class ReadMarker:
    """The reader moved its read marker in a conversation to `seq` (POST .../read): in the
    reader's own log, so that its other devices clear the conversation's badge. Its id is
    the same for the same (reader, conversation, seq) (read_marker_id), so that appending
    it again (a retried POST) never doubles it (Inbox.append: once per id)."""

    id: str
    user_id: str  # the reader
    conversation_type: str  # PRIVATE or GROUP
    conversation_id: str  # the peer's user id (private, as the reader sees it) or the group's id
    seq: int
    type: str = READ

    def public(self, cursor: str | None = None) -> dict:
        key = "user_id" if self.conversation_type == PRIVATE else "group_id"
        body: dict[str, Any] = {
            "type": READ, "id": self.id,
            "conversation": {"type": self.conversation_type, key: self.conversation_id},
            "user_id": self.user_id, "seq": self.seq,
        }
        if cursor is not None:
            body["cursor"] = cursor
        return body

    def to_record(self) -> dict:
        return self.public()

    @classmethod
    def from_record(cls, record: dict) -> ReadMarker:
        conversation = record["conversation"]
        kind = conversation["type"]
        return cls(id=record["id"], user_id=record["user_id"], conversation_type=kind,
                   conversation_id=conversation["user_id" if kind == PRIVATE else "group_id"],
                   seq=int(record["seq"]))


def read_marker_id(user_id: str, conversation: str, seq: int) -> str:
    """The id of the read event of (reader, conversation, seq): a UUID derived from them."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"courier:read:{user_id}:{conversation}:{seq}"))


Event = Message | GroupChange | MessageChange | ReadMarker
# What Inbox.append takes: every event that is not a message.
Appended = GroupChange | MessageChange | ReadMarker


def event_from_record(record: dict) -> Event:
    """A stored event back from its record (a record of any other type is a ValueError:
    a log entry this version cannot read)."""
    kind = record.get("type")
    if kind in MESSAGE_TYPES:
        return Message.from_record(record)
    if kind in GROUP_CHANGES:
        return GroupChange.from_record(record)
    if kind == READ:
        return ReadMarker.from_record(record)
    if kind in MESSAGE_CHANGES:
        return MessageChange.from_record(record)
    raise ValueError(f"unknown event type {kind!r}")


def in_original_view(event: Event, user_id: str) -> bool:
    """Whether `user_id` sees this event of its log in the original view: messages from
    others, and notes to oneself (a private message to oneself was always delivered),
    but not one's own sends to others, nor group changes."""
    if not isinstance(event, Message):
        return False
    return event.from_user_id != user_id or (event.type == PRIVATE and event.to_user_id == user_id)


def parse_view(raw: Any) -> bool:
    """/ws's `events` parameter: "1" (or "true") for the event view; absent, "" or "0"
    (or "false") for the original view."""
    if raw is None or raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise errors.InvalidInput("events must be 1 (every event) or 0 (messages from others)")


@dataclass(slots=True, frozen=True)
class Delivery:
    """An event at its position (cursor) in one user's log."""

    event: Event
    cursor: str

    def public(self) -> dict:
        return self.event.public(self.cursor)

    def public_for(self, user_id: str) -> dict:
        """The object of the event view: one's own sends also carry their client_msg_id,
        so that the device that sent one can match it with what it showed as pending."""
        body = self.event.public(self.cursor)
        event = self.event
        if isinstance(event, Message) and event.client_msg_id is not None and event.from_user_id == user_id:
            body["client_msg_id"] = event.client_msg_id
        return body
