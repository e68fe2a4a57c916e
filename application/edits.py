"""Use cases of a message's edit and deletion (issue 15 point 4).

Who may: the sender edits, within the edit window; the sender deletes, and so does
the group's owner for a group message. A caller who is no participant of the message's
conversation learns nothing of it (404); a participant who may not, a 403.

Exactly once: the change and its announcement (a MessageChange for every participant,
the sender included; in a group the members at that time) are stored together by the
MessageStore, then appended and marked done (application/announcements.py): one left
behind is relayed by RelayAnnouncements. The event's id is derived from what it
changes (domain.events.edit_event_id / delete_event_id): a retried PATCH (the same
content) or a second DELETE appends that id again, which the inbox ignores when it is
there - it emits nothing new, and completes a change whose append had failed.

In a large group (docs/design/large-groups.md, section 10) the event goes once into the
group's stream (a LoggedChange, applied by the announcer as a message is delivered:
once by its event id), which the members read within their intervals, instead of into
every member's own log; a sender who has left the group gets its copy in its own log.

Where the message is found: the MessageStore, else (production, the persister lags
behind) among the messages accepted and not stored yet (RecentMessages). The store then
inserts it as changed, and the persister's later insert of the original leaves it so."""
from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from application.announcements import Announcer
from application.ports import Announcement, Clock, GroupRepository, LoggedChange, MessageStore, RecentMessages
from domain import errors
from domain.events import MESSAGE_DELETED, MESSAGE_UPDATED, MessageChange, delete_event_id, edit_event_id
from domain.model import GROUP, Message, validate_content, validate_id

DEFAULT_EDIT_WINDOW = 48 * 3600  # seconds

T = TypeVar("T")


@dataclass
class ChangeMessages:
    messages: MessageStore
    recent: RecentMessages
    groups: GroupRepository
    announcer: Announcer
    clock: Clock
    max_content_length: int
    edit_window: int = DEFAULT_EDIT_WINDOW
    # COURIER_LARGE_GROUP > 0: a large group's changes go into its stream. Off, every
    # group fans out, a group left large from a time they were on too (as its sends do).
    large_groups: bool = False

    async def edit(self, user_id: str, message_id: Any, body: Any) -> Message:
        """PATCH /api/v1/messages/{id} {"content"}: the message as edited."""
        content = validate_content(body.get("content") if isinstance(body, dict) else None,
                                   self.max_content_length)
        return await _settled(lambda: self._edit(user_id, message_id, content))

    async def _edit(self, user_id: str, message_id: Any, content: str) -> Message:
        message = await self._find(user_id, message_id)
        if message.from_user_id != user_id:
            await self._refuse(user_id, message)
        if message.deleted_at is not None:
            raise errors.MessageNotFound("this message was deleted")
        if message.content == content:
            if message.edited_at is not None:  # a retry: completes its append, if it failed
                await self._publish(self._updated(message), await self._audience(message))
            return message
        if self.clock.now() - message.created_at > self.edit_window:
            raise errors.EditWindowClosed()
        # Each edit takes a later edited_at than the one before, even within one second:
        # the event's id is derived from it (edit_event_id), so editing A -> B -> A in a
        # second would otherwise name the first A's event again, and append nothing.
        edited_at = max(int(self.clock.now()), (message.edited_at or 0) + 1)
        edited = dataclasses.replace(message, content=content, edited_at=edited_at)
        await self._store(self._updated(edited), await self._audience(message))
        return edited

    async def delete(self, user_id: str, message_id: Any) -> None:
        """DELETE /api/v1/messages/{id}: the content is gone, a tombstone stays."""
        await _settled(lambda: self._delete(user_id, message_id))

    async def _delete(self, user_id: str, message_id: Any) -> None:
        message = await self._find(user_id, message_id)
        if message.from_user_id != user_id:
            group = await self.groups.get(message.group_id) if message.type == GROUP and message.group_id else None
            if group is None or group.owner_id != user_id:
                await self._refuse(user_id, message)
        audience = await self._audience(message)
        if message.deleted_at is not None:  # a second DELETE: nothing new
            await self._publish(MessageChange(MESSAGE_DELETED, delete_event_id(message.id), message), audience)
            return
        deleted = dataclasses.replace(message, content="", deleted_at=int(self.clock.now()))
        await self._store(MessageChange(MESSAGE_DELETED, delete_event_id(message.id), deleted), audience)

    async def _find(self, user_id: str, message_id: Any) -> Message:
        message_id = validate_id(message_id, "message id")
        message = await self.messages.get(message_id)
        if message is None:
            recent = await self.recent.find(user_id, message_id)
            # Not found there either: it may have been stored in between (the persister
            # takes it off its queue once stored), so the store is asked once more.
            message = await self.messages.get(message_id, recent)
        if message is None:
            raise errors.MessageNotFound()
        return message

    async def _refuse(self, user_id: str, message: Message) -> None:
        """A participant who may not: 403; anyone else: 404, as if there were no message."""
        if message.type == GROUP:
            group = await self.groups.get(message.group_id or "")
            participant = group is not None and group.is_member(user_id)
        else:
            participant = user_id in (message.from_user_id, message.to_user_id)
        if participant:
            raise errors.NotYourMessage()
        raise errors.MessageNotFound()

    async def _audience(self, message: Message) -> _Audience:
        """Who is told: the own logs of the participants, or a large group's stream."""
        if message.type == GROUP:
            group = await self.groups.get(message.group_id or "")
            if group is not None and group.large and self.large_groups:
                # No copy per member: they read it in the stream. A sender no longer
                # in the group reads the stream no more past its leave: its own copy.
                sender = [] if group.is_member(message.from_user_id) else [message.from_user_id]
                return _Audience(sender, group.id)
            members = list(group.member_ids) if group is not None else []
            return _Audience(list(dict.fromkeys([*members, message.from_user_id])))
        return _Audience(list(dict.fromkeys([message.from_user_id, str(message.to_user_id)])))

    @staticmethod
    def _updated(message: Message) -> MessageChange:
        assert message.edited_at is not None
        return MessageChange(MESSAGE_UPDATED, edit_event_id(message.id, message.content, message.edited_at), message)

    async def _store(self, change: MessageChange, audience: _Audience) -> None:
        announcement = audience.announcement(change)
        await self.messages.change(change.message, announcement)
        await self.announcer.announce(announcement)

    async def _publish(self, change: MessageChange, audience: _Audience) -> None:
        """A retry's event again: appended once (its id is the first attempt's), it
        completes a first attempt whose append failed, without waiting for the relay."""
        await self.announcer.announce(audience.announcement(change))


async def _settled(attempt: Callable[[], Awaitable[T]]) -> T:
    """The attempt, and once more if another request changed the message at the same
    moment (a client's retry sent before the first answer, two devices, the sender and
    the group's owner): decided again on the message as it is now, where the same edit or
    deletion is a retry's. A third change meanwhile is the caller's 409."""
    try:
        return await attempt()
    except errors.ChangedMeanwhile:
        return await attempt()


@dataclass(frozen=True, slots=True)
class _Audience:
    recipients: list[str]  # own logs
    stream_of: str | None = None  # a large group whose stream takes the event

    def announcement(self, change: MessageChange) -> Announcement:
        logged = None if self.stream_of is None else LoggedChange(self.stream_of, change)
        return Announcement(change, self.recipients, change.created_at, logged)
