"""Presence and typing: what is pushed and never stored (issue 16).

A user is online while any of its sockets is open on any gateway, and offline a grace
period after the last one closed (a page reload is not a flicker). Others see a user who
hid its presence as offline, never seen. A typing indicator goes to the other
participants of a conversation and ends by itself when no new start comes in time."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain import errors
from domain.model import GROUP, PRIVATE, validate_id

ONLINE, OFFLINE = "online", "offline"
MAX_PRESENCE_SUBSCRIPTIONS = 200  # user ids one socket may watch at once
TYPING_START, TYPING_STOP = "start", "stop"
TYPING_EXPIRES = 6.0  # seconds: a start with no new start within this ends by itself
TYPING_FRAMES_PER_SECOND = 2  # per socket; more are dropped silently


@dataclass(frozen=True, slots=True)
class PresenceStatus:
    """A user's status as the presence store has it. `version` grows with every change
    of it, so that of two reports of one user the later wins whatever order they
    arrive in (0: the store never saw the user)."""

    user_id: str
    online: bool
    last_seen: int | None  # Unix seconds: when the user was last online (None: never)
    version: int

    def seen_by_others(self, shows_presence: bool) -> PresenceStatus:
        """As others see it: a user who hides its presence is offline, never seen."""
        if shows_presence:
            return self
        return PresenceStatus(self.user_id, False, None, self.version)

    def public(self, now: float) -> dict:
        """The presence frame (and GET /users/{id}/presence). An online user was last
        online now."""
        last_seen = int(now) if self.online else self.last_seen
        return {"type": "presence", "user_id": self.user_id, "status": ONLINE if self.online else OFFLINE,
                "last_seen": last_seen}


def parse_presence_subscription(frame: dict) -> list[str]:
    """{"type": "presence_subscribe", "user_ids": [...]}: the ids, in order, once each."""
    ids = frame.get("user_ids")
    if not isinstance(ids, list):
        raise errors.InvalidInput("user_ids must be a list of user ids")
    if len(ids) > MAX_PRESENCE_SUBSCRIPTIONS:
        raise errors.InvalidInput(f"at most {MAX_PRESENCE_SUBSCRIPTIONS} user ids")
    return list(dict.fromkeys(validate_id(user_id, "user_id") for user_id in ids))


@dataclass(frozen=True, slots=True)
class Typing:
    """`user_id` started or stopped typing in a conversation: a private chat with
    `target_id` (a user) or the group `target_id`. `recipients` are the users it goes to
    (never the typer itself)."""

    user_id: str
    kind: str  # PRIVATE or GROUP
    target_id: str
    state: str  # TYPING_START or TYPING_STOP
    recipients: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        """One indicator: who types where."""
        return (self.user_id, self.kind, self.target_id)

    def with_state(self, state: str) -> Typing:
        return Typing(self.user_id, self.kind, self.target_id, state, self.recipients)

    def public(self) -> dict:
        body: dict[str, Any] = {"type": "typing", "user_id": self.user_id}
        body["to_user_id" if self.kind == PRIVATE else "group_id"] = self.target_id
        body["state"] = self.state
        return body

    def to_record(self) -> dict:
        return {**self.public(), "recipients": list(self.recipients)}

    @classmethod
    def from_record(cls, record: dict) -> Typing:
        kind = PRIVATE if "to_user_id" in record else GROUP
        return cls(record["user_id"], kind, record["to_user_id" if kind == PRIVATE else "group_id"],
                   record["state"], tuple(record.get("recipients", ())))


def parse_typing(user_id: str, frame: dict) -> Typing:
    """{"type": "typing", "to_user_id" | "group_id", "state": "start" | "stop"}, with no
    recipients yet (who may type there decides them)."""
    state = frame.get("state")
    if state not in (TYPING_START, TYPING_STOP):
        raise errors.InvalidInput('state must be "start" or "stop"')
    to_user, group = frame.get("to_user_id"), frame.get("group_id")
    if (to_user is None) == (group is None):
        raise errors.InvalidInput("give either to_user_id or group_id")
    if group is not None:
        return Typing(user_id, GROUP, validate_id(group, "group_id"), state)
    return Typing(user_id, PRIVATE, validate_id(to_user, "to_user_id"), state)


def error_frame(error: errors.CourierError) -> dict:
    """What a socket is answered when a frame it sent is refused (the socket stays open)."""
    return {"type": "error", "code": error.code, "message": error.message}
