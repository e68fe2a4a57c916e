"""Use cases of the conversation list and read markers (GET /api/v1/conversations,
POST .../read)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from application.announcements import Announcer
from application.messaging import parse_limit
from application.ports import (
    Announcement,
    Clock,
    ConversationPage,
    ConversationPosition,
    ConversationSeqs,
    ConversationStore,
    GroupRepository,
    ReceiptPreferences,
    UserRepository,
)
from domain import errors
from domain.events import ReadMarker, read_marker_id
from domain.model import GROUP, PRIVATE, validate_id

MAX_ACTIVITY = 2**63 - 1


def parse_position(raw: Any) -> ConversationPosition | None:
    """`before`: a next_before as given ("<activity>_<conversation>")."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str) and raw.isascii() and len(raw) <= 120:
        activity, _, conversation = raw.partition("_")
        if activity.isdigit() and len(activity) <= 19 and _is_conversation(conversation):
            return ConversationPosition(min(int(activity), MAX_ACTIVITY), conversation)
    raise errors.InvalidInput("before must be a value from next_before")


def _is_conversation(key: str) -> bool:
    """"g:<group id>" or "p:<user id>:<user id>", the ids as the server writes them."""
    kind, _, ids = key.partition(":")
    parts = ids.split(":")
    if (kind, len(parts)) not in (("g", 1), ("p", 2)):
        return False
    try:
        return all(str(uuid.UUID(part)) == part for part in parts)
    except ValueError:
        return False


def format_position(position: ConversationPosition | None) -> str | None:
    return None if position is None else f"{position.activity}_{position.conversation}"


def parse_seq(body: dict) -> int:
    seq = body.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63:
        raise errors.InvalidInput("seq must be a non-negative integer")
    return seq


def private_conversation(user_id: str, peer_id: str) -> str:
    low, high = sorted((user_id, peer_id))
    return f"p:{low}:{high}"


@dataclass
class ListConversations:
    store: ConversationStore

    async def __call__(self, user_id: str, before: Any, limit: Any) -> ConversationPage:
        position, count = parse_position(before), parse_limit(limit)
        return await self.store.list(user_id, position, count)


@dataclass(frozen=True, slots=True)
class ReadResult:
    read_seq: int
    unread_count: int


@dataclass
class MarkRead:
    """Move the caller's read marker forward, and tell the caller's other devices with a
    `read` event in its own log. Exactly once: the move and the event's Announcement
    are stored in one transaction (ConversationStore.mark_read), then appended and
    marked done; one left behind (the process died, or the log's store failed, after
    the move) is relayed by RelayAnnouncements (application/announcements.py). The
    event's id is the same for the same marker (read_marker_id): the inbox appends it
    once only, so a relay racing the append, or a retried request, never doubles it,
    and a retry appends at once what a failed append left to the relay."""

    store: ConversationStore
    groups: GroupRepository
    users: UserRepository
    announcer: Announcer
    clock: Clock
    counters: ConversationSeqs | None = None  # production: the conversations' seqs ahead of the worker
    # Read receipts: the same event, in the same append, also goes to the other user of
    # a private chat, and to the other members of a group of at most max_group members,
    # unless the reader turned receipts off (preferences; None: no receipts).
    preferences: ReceiptPreferences | None = None
    max_group: int = 100
    large_groups: bool = False  # COURIER_LARGE_GROUP > 0: a large group gets no receipts

    async def private(self, user_id: str, peer_id: Any, body: dict) -> ReadResult:
        peer_id = validate_id(peer_id, "user_id")
        seq = parse_seq(body)
        if await self.users.get(peer_id) is None:
            raise errors.UserNotFound()
        conversation = private_conversation(user_id, peer_id)
        return await self._move(user_id, conversation, seq, PRIVATE, peer_id, [peer_id], peer_id=peer_id)

    async def group(self, user_id: str, group_id: Any, body: dict) -> ReadResult:
        group_id = validate_id(group_id, "group_id")
        seq = parse_seq(body)
        group = await self.groups.get(group_id)
        if group is None:
            raise errors.GroupNotFound()
        group.require_member(user_id)
        # No receipts in a large group (docs/design/large-groups.md, section 10), however
        # few members it has left: the reader's own `read` event only. (Settings keep
        # max_group below the threshold, so a group large by its count has none either.)
        large = group.large and self.large_groups
        others = group.member_ids if len(group.member_ids) <= self.max_group and not large else []
        return await self._move(user_id, "g:" + group_id, seq, GROUP, group_id, others, group_id=group_id)

    async def _move(self, user_id: str, conversation: str, seq: int, kind: str, target: str,
                    others: list[str], **where: str) -> ReadResult:
        last = None if self.counters is None else await self.counters.last_seq(conversation)
        if last is None:
            last = await self.store.last_seq(conversation)
        if seq > last:
            raise errors.InvalidInput(f"seq {seq} is beyond the conversation's last message ({last})")
        announcement = None
        if seq > 0:  # a marker at 0 tells nobody anything
            marker = ReadMarker(id=read_marker_id(user_id, conversation, seq), user_id=user_id,
                                conversation_type=kind, conversation_id=target, seq=seq)
            recipients = [user_id]
            if others and self.preferences is not None and await self.preferences.sends_receipts(user_id):
                recipients += [other for other in others if other != user_id]
            announcement = Announcement(marker, recipients, int(self.clock.now()))
        marked = await self.store.mark_read(user_id, conversation, seq, announce=announcement, **where)
        # Moved now, or a retry of this very move whose event is not appended yet. Not a
        # marker the user's own send had put there: that move has no event of its own.
        if announcement is not None and marked.pending:
            await self.announcer.announce(announcement)
        return ReadResult(marked.read_seq, marked.unread_count)


@dataclass(frozen=True, slots=True)
class MemberRead:
    user_id: str
    read_seq: int | None  # None: the member turned read receipts off (the caller sees its own)


@dataclass
class GroupReads:
    """GET /groups/{id}/reads: each member's read marker, for a "read by N" on demand
    (in any group, however large). Members only; O(members). A member who turned read
    receipts off is listed with read_seq None, to everyone but itself."""

    store: ConversationStore
    groups: GroupRepository

    async def __call__(self, user_id: str, group_id: Any) -> list[MemberRead]:
        group_id = validate_id(group_id, "group_id")
        group = await self.groups.get(group_id)
        if group is None:
            raise errors.GroupNotFound()
        group.require_member(user_id)
        reads = await self.store.group_reads("g:" + group_id, group.member_ids)
        answer = []
        for member in group.member_ids:
            if member not in reads:
                continue  # a user removed since
            read_seq, sends = reads[member]
            answer.append(MemberRead(member, read_seq if sends or member == user_id else None))
        return answer
