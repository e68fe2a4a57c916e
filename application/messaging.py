"""Use cases of messages: send (private, group), pull, history."""
from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

from application.ports import (
    Clock,
    GroupRepository,
    HistoryPage,
    IdempotencyKeys,
    IdGenerator,
    Inbox,
    MessageStore,
    RateLimiter,
    UserRepository,
)
from domain import errors
from domain.events import Delivery, in_original_view
from domain.model import (
    GROUP,
    PRIVATE,
    Message,
    validate_client_msg_id,
    validate_content,
    validate_cursor,
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
        return Message(
            id=self.ids.new_id(),
            type=type,
            from_user_id=sender_id,
            content=validate_content(body.get("content"), self.max_content_length),
            created_at=int(self.clock.now()),
            to_user_id=to_user_id,
            group_id=group_id,
            client_msg_id=validate_client_msg_id(body.get("client_msg_id")),
        )

    async def dispatch(self, message: Message, recipient_ids: list[str]) -> Message:
        key = message.client_msg_id
        sender_id = message.from_user_id
        if key is not None:
            original = await self._claim(message, key)
            if original is not None:
                # A retry: the first send reached everyone. The same id with another
                # conversation is no retry of it: answering that message would answer a
                # private send with a group message, or one to someone else.
                if original.conversation != message.conversation:
                    raise errors.ClientMsgIdReused()
                return original
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

    async def __call__(self, sender_id: str, group_id: str, body: dict) -> Message:
        group_id = validate_id(group_id, "group_id")
        message = self.dispatcher.new_message(sender_id, body, type=GROUP, group_id=group_id)
        group = await self.groups.get(group_id)
        if group is None:
            raise errors.GroupNotFound()
        group.require_member(sender_id)
        await self.dispatcher.check_rate(sender_id)
        # Every member's log, the sender's included (its other devices, in the event view).
        return await self.dispatcher.dispatch(message, list(group.member_ids))


@dataclass
class PullResult:
    deliveries: list[Delivery]
    next_cursor: str | None
    has_more: bool


@dataclass
class PullEvents:
    """Everything in the caller's log after a cursor, oldest first (the event view)."""

    inbox: Inbox

    async def __call__(self, user_id: str, cursor: Any, limit: Any) -> PullResult:
        cursor = validate_cursor(cursor)
        limit = parse_limit(limit)
        # One extra entry tells whether there is more without a second read.
        deliveries = await self.inbox.read(user_id, cursor, limit + 1)
        has_more = len(deliveries) > limit
        deliveries = deliveries[:limit]
        next_cursor = deliveries[-1].cursor if deliveries else cursor
        return PullResult(deliveries, next_cursor, has_more)


# How many entries the original view's pull reads at a time: the log also holds what
# that view passes over (one's own sends), so it reads on until the page is full.
SCAN_PAGE = 200


@dataclass
class PullMessages:
    """Messages from others in the caller's log after a cursor, oldest first (the
    original view: GET /api/v1/messages), answered exactly as before the log held
    anything else: next_cursor is the last message's cursor (the one asked with, when
    there is none). The log's other entries - one's own sends, group changes
    (domain.events.in_original_view) - are passed over; a cursor of either view
    resumes the other."""

    inbox: Inbox

    async def __call__(self, user_id: str, cursor: Any, limit: Any) -> PullResult:
        cursor = validate_cursor(cursor)
        limit = parse_limit(limit)
        shown: list[Delivery] = []
        position = cursor
        while True:
            page = await self.inbox.read(user_id, position, max(limit + 1, SCAN_PAGE))
            for delivery in page:
                if in_original_view(delivery.event, user_id):
                    if len(shown) == limit:
                        return PullResult(shown, shown[-1].cursor, True)
                    shown.append(delivery)
                position = delivery.cursor
            if len(page) < max(limit + 1, SCAN_PAGE):
                return PullResult(shown, shown[-1].cursor if shown else cursor, False)


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
