"""The conversation list and read markers in memory: the model of
adapters/sql/conversations.py (record_messages, group_created / joined / left and
SqlConversationStore), kept by the fakes that stand for the transactions which call
them (MemoryInbox.deliver, MemoryGroupRepository), so the unit tests see the embedded
mode's state. tests/contract/test_conversations.py runs one suite over both."""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from application.ports import (
    Announcement,
    ConversationPage,
    ConversationPosition,
    ConversationState,
    ConversationStore,
    MarkedRead,
    ReceiptPreferences,
)
from domain.model import GROUP, Message
from tests.fakes.outbox import MemoryOutbox


@dataclass
class _Member:
    peer_id: str | None
    group_id: str | None
    read_seq: int
    activity: int


@dataclass
class _Conversation:
    last_seq: int
    last_message: Message | None
    activity: int


Names = Callable[[str | None, str | None], Awaitable[str | None]]


async def _no_names(peer_id: str | None, group_id: str | None) -> str | None:
    return None


class MemoryConversationStore(ConversationStore):
    def __init__(self, names: Names = _no_names,
                 message: Callable[[Message], Message | None] | None = None) -> None:
        self.conversations: dict[str, _Conversation] = {}
        self.members: dict[tuple[str, str], _Member] = {}  # (user_id, conversation) ->
        self._names = names  # the peer's username or the group's name (SQL: a join)
        self._message = message  # the message as stored now (SQL: a join; edits, tombstones)
        self._activity = 0
        self.receipts_off: set[str] = set()  # users who turned read receipts off
        self.outbox = MemoryOutbox()  # where a moved marker's announcement is stored with it

    def now(self) -> int:
        self._activity = max(self._activity + 1, time.time_ns() // 1000)
        return self._activity

    # What the SQL adapter's transactions call (adapters/sql/conversations.py).

    def record(self, stored: Sequence[tuple[Message, int]]) -> None:
        by_conversation: dict[str, list[tuple[Message, int]]] = {}
        for message, activity in stored:
            by_conversation.setdefault(message.conversation, []).append((message, activity))
        for conversation, items in by_conversation.items():
            top, _ = max(items, key=lambda item: item[0].seq or 0)
            activity = max(a for _, a in items)
            seq = top.seq or 0
            state = self.conversations.get(conversation)
            if state is None:
                self.conversations[conversation] = _Conversation(seq, top, activity)
            else:
                state.activity = max(state.activity, activity)
                if seq > state.last_seq:
                    state.last_seq, state.last_message = seq, top
            if top.type != GROUP:
                low, _, high = conversation[2:].partition(":")
                for user_id, peer_id in dict([(low, high), (high, low)]).items():
                    self.members.setdefault((user_id, conversation), _Member(peer_id, None, 0, activity))
            for (_, key), member in self.members.items():
                if key == conversation:
                    member.activity = max(member.activity, activity)
            for message, _ in items:
                sender = self.members.get((message.from_user_id, conversation))
                if sender is not None:
                    sender.read_seq = max(sender.read_seq, message.seq or 0)

    def group_created(self, group_id: str, member_ids: Sequence[str]) -> None:
        now = self.now()
        conversation = "g:" + group_id
        self.conversations[conversation] = _Conversation(0, None, now)
        for user_id in member_ids:
            self.members[user_id, conversation] = _Member(None, group_id, 0, now)

    def group_joined(self, group_id: str, user_id: str) -> None:
        now = self.now()
        conversation = "g:" + group_id
        state = self.conversations.setdefault(conversation, _Conversation(0, None, now))
        self.members[user_id, conversation] = _Member(None, group_id, state.last_seq, now)

    def group_left(self, group_id: str, user_id: str) -> None:
        self.members.pop((user_id, "g:" + group_id), None)

    # The port.

    async def list(self, user_id: str, before: ConversationPosition | None, limit: int) -> ConversationPage:
        keys = sorted(
            ((member.activity, conversation) for (member_id, conversation), member in self.members.items()
             if member_id == user_id and conversation in self.conversations),
            reverse=True,
        )
        if before is not None:
            keys = [key for key in keys if key < (before.activity, before.conversation)]
        page, more = keys[:limit], len(keys) > limit
        states = []
        for activity, conversation in page:
            member, state = self.members[user_id, conversation], self.conversations[conversation]
            last = state.last_message
            if last is not None and self._message is not None:
                last = self._message(last)
            states.append(ConversationState(
                conversation=conversation, peer_id=member.peer_id, group_id=member.group_id,
                name=await self._names(member.peer_id, member.group_id), last_message=last,
                last_seq=state.last_seq, read_seq=member.read_seq, activity=activity,
            ))
        last_state = states[-1] if more else None
        return ConversationPage(
            states, ConversationPosition(last_state.activity, last_state.conversation) if last_state else None)

    async def group_reads(self, conversation: str, member_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
        """As the SQL adapter's, with every user sending receipts (the preference is the
        users table's there: `receipts_off` stands for it here)."""
        return {user_id: (member.read_seq if (member := self.members.get((user_id, conversation))) else 0,
                          user_id not in self.receipts_off)
                for user_id in member_ids}

    async def last_seq(self, conversation: str) -> int:
        state = self.conversations.get(conversation)
        return 0 if state is None else state.last_seq

    async def mark_read(self, user_id: str, conversation: str, seq: int, *, peer_id: str | None = None,
                        group_id: str | None = None, announce: Announcement | None = None) -> MarkedRead:
        member = self.members.get((user_id, conversation))
        pending = announce is not None
        if member is None:  # production: the worker has not stored the first message yet
            member = self.members[user_id, conversation] = _Member(peer_id, group_id, seq, 0)
            self.outbox.store(announce)
        elif seq > member.read_seq:
            member.read_seq = seq
            self.outbox.store(announce)  # with the move, as SqlConversationStore's transaction
        elif announce is not None:
            pending = announce.event.id in self.outbox.stored
        return MarkedRead(member.read_seq, max(0, await self.last_seq(conversation) - member.read_seq), pending)


class MemoryReceiptPreferences(ReceiptPreferences):
    """The users' read-receipt preference (SQL: users.send_read_receipts), kept in the
    conversation fake's `receipts_off`, which its group_reads answers from."""

    def __init__(self, store: MemoryConversationStore) -> None:
        self._store = store

    async def sends_receipts(self, user_id: str) -> bool:
        return user_id not in self._store.receipts_off

    async def set_sends_receipts(self, user_id: str, value: bool) -> None:
        if value:
            self._store.receipts_off.discard(user_id)
        else:
            self._store.receipts_off.add(user_id)
