"""Use cases of messages: send (private, group), pull, history."""
from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from application.ports import (
    Clock,
    GroupRepository,
    GroupStreams,
    HistoryPage,
    IdempotencyKeys,
    IdGenerator,
    Inbox,
    LogReader,
    MessageStore,
    RateLimiter,
    TimelinePage,
    UserRepository,
)
from domain import errors
from domain.model import (
    GROUP,
    PRIVATE,
    Group,
    Message,
    validate_client_msg_id,
    validate_content,
    validate_id,
)

log = logging.getLogger("courier.messages")

DEFAULT_PAGE, MAX_PAGE = 50, 200


def parse_limit(raw: Any) -> int:
    """`limit` defaults to 50 and is at most 200; anything else is a 400."""
    if raw is None or raw == "":
        return DEFAULT_PAGE
    # The length check keeps int() from raising ValueError on a huge digit string.
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 10:
        value = int(raw)
        if 1 <= value <= MAX_PAGE:
            return value
    raise errors.InvalidInput(f"limit must be an integer from 1 to {MAX_PAGE}")


def parse_before(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 20:
        return raw
    raise errors.InvalidInput("before must be a value from next_before")


@dataclass
class Dispatcher:
    """What both kinds of send share: rate limit, idempotency, inbox append, log."""

    inbox: Inbox
    idempotency: IdempotencyKeys
    rate_limiter: RateLimiter
    clock: Clock
    ids: IdGenerator
    max_content_length: int
    # How long a retry waits for a pending first send with its client_msg_id, polling.
    pending_wait: float = 2.0
    pending_poll: float = 0.05

    async def check_rate(self, sender_id: str) -> None:
        wait = await self.rate_limiter.take("send:" + sender_id)
        if wait > 0:
            raise errors.RateLimited(wait, "too many messages; slow down")

    def new_message(
        self, sender_id: str, body: dict, *, type: str, to_user_id: str | None = None, group_id: str | None = None
    ) -> Message:
        """The message as sent: without a seq (Inbox.deliver gives it one)."""
        message_id = self.ids.new_id()
        content = validate_content(body.get("content"), self.max_content_length)
        client_msg_id = validate_client_msg_id(body.get("client_msg_id"))
        # By position, in the order of Message's fields: once per send, cheaper than by keyword.
        return Message(type, message_id, sender_id, content, int(self.clock.now()), to_user_id, group_id,
                       client_msg_id)

    def dispatch(self, message: Message, recipient_ids: list[str]) -> Awaitable[Message]:
        """Append the message to each recipient's log (the sender's included)."""
        if message.client_msg_id is None:
            # No key to claim: the delivery itself, with no coroutine of dispatch's own
            # around it, which every resumption of the send would pass through.
            return self._deliver_claimed(message, recipient_ids)
        return self._claim_and_deliver(message, recipient_ids)

    async def _claim_and_deliver(self, message: Message, recipient_ids: list[str]) -> Message:
        original = await self._claim_key(message)
        if original is not None:
            return original
        return await self._deliver_claimed(message, recipient_ids)

    async def dispatch_to_stream(self, message: Message, streams: GroupStreams, member_ids: list[str],
                                 *, again: bool = False) -> Message:
        """A large group's message: one append to the group's stream, which checks the
        sender's membership itself (docs/design/large-groups.md, section 4.4). A group whose
        switch is not applied in the streams yet (NoGroupStream: its announcement is on its
        way) is still small there, and its old counter still counts: fanned out to
        `member_ids`, as before the switch."""
        original = await self._claim_key(message)
        if original is not None:
            return original
        key = message.client_msg_id
        try:
            posted = await streams.deliver(message)
        except errors.NoGroupStream:
            try:
                return await self._deliver_claimed(message, member_ids)
            except errors.GroupIsLarge:
                # The switch was applied between the two tries: nothing was written (the
                # key was let go), and the stream takes the message now. A group switches
                # once; both answers again mean Redis lost part of its state: 503.
                if again:
                    raise
                return await self.dispatch_to_stream(message, streams, member_ids, again=True)
        except Exception:
            if key is not None:  # nothing was appended: a retry may send it (as dispatch)
                await self.idempotency.forget(message.from_user_id, key, message)
            raise
        if key is not None:
            await self._confirm(posted.message, key, message if posted.duplicate else None)
        log.info("Message %s posted to the stream of group %s", posted.message.id, message.group_id)
        return posted.message

    async def _confirm(self, accepted: Message, key: str, attempt: Message | None) -> None:
        """The stream took the message (or had it: `attempt` is then this try, whose pending
        answer gives way to the original). Unlike the inbox, the stream cannot confirm the
        sender's key itself (another slot in a cluster); a failure here leaves the answer
        pending, so a retry waits for it to expire and then gets the original from the
        stream's own record of the key: the message stands, so the send answers 201."""
        sender_id = accepted.from_user_id
        try:
            if attempt is not None:
                await self.idempotency.forget(sender_id, key, attempt)
            await self.idempotency.confirm(sender_id, key, accepted)
        except Exception as error:  # noqa: BLE001 - accepted all the same (see above)
            log.warning("message %s accepted, its client_msg_id left pending: %r", accepted.id, error)

    async def _claim_key(self, message: Message) -> Message | None:
        """Take the message's client_msg_id (None), or answer the original of a retry."""
        key = message.client_msg_id
        if key is None:
            return None
        original = await self._claim(message, key)
        # A retry: the first send reached everyone. The same id with another
        # conversation is no retry of it: answering that message would answer a
        # private send with a group message, or one to someone else.
        if original is not None and original.conversation != message.conversation:
            raise errors.ClientMsgIdReused()
        return original

    async def _deliver_claimed(self, message: Message, recipient_ids: list[str]) -> Message:
        key = message.client_msg_id
        sender_id = message.from_user_id
        try:
            # Confirms the key too (the answer is delivered with the append: Inbox.deliver).
            accepted = await self.inbox.deliver(message, recipient_ids)
        except errors.SendSuperseded:
            # A retry took the key while this attempt was slow: it delivers the message.
            log.warning("message %s not sent: a retry holds its client_msg_id now", message.id)
            raise
        except Exception:
            # A failed append can be retried under the same key. (Not on
            # cancellation: the append may have gone through, and forgetting
            # the key then would let a retry deliver the message twice; the
            # pending answer expires instead.)
            if key is not None:
                await self.idempotency.forget(sender_id, key, message)
            raise
        message, cursors = accepted.message, accepted.cursors
        if log.isEnabledFor(logging.INFO):
            for user_id in cursors:
                if user_id != sender_id:  # the sender's own entry is no notification to it (docs/api.md, Logs)
                    log.info("Notification published for message %s to user %s", message.id, user_id)
        return message

    async def _claim(self, message: Message, key: str) -> Message | None:
        """Take the message's key (None), or the original message of a delivered retry.

        A retry that finds the first send still pending must not answer 201: that
        send may yet fail, and the message would be lost though "accepted". It waits
        a little (a delivery normally takes milliseconds) for the first send to be
        confirmed - then it is answered with the original - or forgotten - then it
        takes the key and is sent itself. Still pending after that: 409
        send_in_progress, which the client retries like a 503."""
        polls = max(0, math.ceil(self.pending_wait / self.pending_poll))
        for poll in range(polls + 1):
            answer = await self.idempotency.remember(message.from_user_id, key, message)
            if answer is None:
                return None
            if answer.delivered:
                return answer.message
            if poll < polls:
                await asyncio.sleep(self.pending_poll)
        raise errors.SendInProgress(
            "a message with this client_msg_id is still being sent; retry shortly to get its outcome"
        )


@dataclass
class SendPrivateMessage:
    dispatcher: Dispatcher
    users: UserRepository

    async def __call__(self, sender_id: str, body: dict) -> Message:
        to_user_id = validate_id(body.get("to_user_id"), "to_user_id")
        message = self.dispatcher.new_message(sender_id, body, type=PRIVATE, to_user_id=to_user_id)
        await self.dispatcher.check_rate(sender_id)
        if await self.users.get(to_user_id) is None:
            raise errors.UserNotFound("no user with this to_user_id")
        # The sender's log gets its own send too (its other devices, in the event view);
        # a note to oneself is one entry.
        return await self.dispatcher.dispatch(message, list(dict.fromkeys((to_user_id, sender_id))))


@dataclass
class SendGroupMessage:
    dispatcher: Dispatcher
    groups: GroupRepository
    # The large groups' streams (None: large groups are off, every group fans out).
    streams: GroupStreams | None = None

    async def __call__(self, sender_id: str, group_id: str, body: dict) -> Message:
        group_id = validate_id(group_id, "group_id")
        message = self.dispatcher.new_message(sender_id, body, type=GROUP, group_id=group_id)
        group = await self._load(group_id)
        group.require_poster(sender_id)
        await self.dispatcher.check_rate(sender_id)
        if group.stream is not None and self.streams is not None:
            return await self.dispatcher.dispatch_to_stream(message, self.streams, list(group.member_ids))
        try:
            # Every member's log, the sender's included (its other devices, in the event view).
            return await self.dispatcher.dispatch(message, list(group.member_ids))
        except errors.GroupIsLarge:
            # The group switched after it was read: nothing was written (not even the key),
            # so the message goes to the stream now, once (section 4.2).
            if self.streams is None:
                raise
            group = await self._load(group_id)
            if group.stream is None:  # a cache not caught up yet: the client retries
                raise
            return await self.dispatcher.dispatch_to_stream(message, self.streams, list(group.member_ids))

    async def _load(self, group_id: str) -> Group:
        group = await self.groups.get(group_id)
        if group is None:
            raise errors.GroupNotFound()
        return group


@dataclass
class PullEvents:
    """Everything in the caller's log after a cursor, oldest first (the event view)."""

    reader: LogReader

    async def __call__(self, user_id: str, cursor: Any, limit: Any) -> TimelinePage:
        return await self.reader.read(user_id, cursor, parse_limit(limit), events=True)


@dataclass
class PullMessages:
    """Messages from others in the caller's log after a cursor, oldest first (the
    original view: GET /api/v1/messages), answered exactly as before the log held
    anything else: next_cursor is the last message's cursor (the one asked with, when
    there is none). The log's other entries - one's own sends, group changes
    (domain.events.in_original_view) - are passed over; a cursor of either view
    resumes the other."""

    reader: LogReader

    async def __call__(self, user_id: str, cursor: Any, limit: Any) -> TimelinePage:
        return await self.reader.read(user_id, cursor, parse_limit(limit), events=False)


@dataclass
class ReadHistory:
    messages: MessageStore
    groups: GroupRepository
    users: UserRepository

    async def private(self, user_id: str, peer_id: Any, before: Any, limit: Any) -> HistoryPage:
        peer_id = validate_id(peer_id, "user_id")
        before, limit = parse_before(before), parse_limit(limit)
        if await self.users.get(peer_id) is None:
            raise errors.UserNotFound()
        return await self.messages.private_history(user_id, peer_id, before, limit)

    async def group(self, user_id: str, group_id: Any, before: Any, limit: Any) -> HistoryPage:
        group_id = validate_id(group_id, "group_id")
        before, limit = parse_before(before), parse_limit(limit)
        group = await self.groups.get(group_id)
        if group is None:
            raise errors.GroupNotFound()
        group.require_member(user_id)
        return await self.messages.group_history(group_id, before, limit)
