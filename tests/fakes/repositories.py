"""Users, groups and messages kept in memory: unit-test fakes with something to look at."""
from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import replace

from application.ports import (
    Announcement,
    GroupPage,
    GroupPosition,
    GroupRepository,
    HistoryPage,
    MessageStore,
    UserRepository,
)
from domain import errors
from domain.model import Group, Message, User, normalised_username_key, username_key
from tests.fakes.conversations import MemoryConversationStore
from tests.fakes.outbox import MemoryOutbox


class MemoryUserRepository(UserRepository):
    """Keyed as SqlUserRepository is: both keys unique, a name found by its spelling
    first, then by what it looks like."""

    def __init__(self) -> None:
        self.by_id: dict[str, User] = {}
        self._by_key: dict[str, str] = {}
        self._by_normalised_key: dict[str, str] = {}

    async def add(self, user: User) -> None:
        key, normalised = username_key(user.username), normalised_username_key(user.username)
        if key in self._by_key or normalised in self._by_normalised_key:
            raise errors.UsernameTaken()
        self.by_id[user.id] = replace(user)
        self._by_key[key] = user.id
        self._by_normalised_key[normalised] = user.id

    async def get(self, user_id: str) -> User | None:
        user = self.by_id.get(user_id)
        return replace(user) if user else None

    async def get_by_username(self, username: str) -> User | None:
        user_id = self._by_key.get(username_key(username)) or self._by_normalised_key.get(
            normalised_username_key(username))
        return await self.get(user_id) if user_id else None

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        self.by_id[user_id].password_hash = password_hash

    async def existing(self, user_ids: Sequence[str]) -> set[str]:
        return {user_id for user_id in user_ids if user_id in self.by_id}


class MemoryGroupRepository(GroupRepository):
    def __init__(self) -> None:
        self.by_id: dict[str, Group] = {}
        # When each (group, member) joined: a counter stands for the time.
        self._joined: dict[tuple[str, str], int] = {}
        self._ticks = itertools.count(1)
        self.invitations: dict[tuple[str, str], str] = {}  # (group, invitee) -> who invited
        self.outbox = MemoryOutbox()  # shared with the other stores by the tests that look at it
        # The conversation list, kept in the group's transactions (SqlGroupRepository).
        self.conversations: MemoryConversationStore | None = None

    async def add(self, group: Group, announce: Announcement | None = None) -> None:
        self._store(announce)
        self.by_id[group.id] = replace(group, member_ids=list(group.member_ids))
        tick = next(self._ticks)  # one creation: every member joins at once
        for user_id in group.member_ids:
            self._joined[group.id, user_id] = tick
        if self.conversations is not None:
            self.conversations.group_created(group.id, group.member_ids)

    async def get(self, group_id: str) -> Group | None:
        group = self.by_id.get(group_id)
        return replace(group, member_ids=list(group.member_ids)) if group else None

    async def list_for_member(self, user_id: str, before: GroupPosition | None, limit: int) -> GroupPage:
        mine = sorted(
            ((joined, group_id) for (group_id, member), joined in self._joined.items() if member == user_id),
            reverse=True,
        )
        if before is not None:
            mine = [key for key in mine if key < (before.joined, before.group_id)]
        page = mine[: limit + 1]
        more = len(page) > limit
        page = page[:limit]
        return GroupPage(
            [await self.get(group_id) for _, group_id in page],
            GroupPosition(*page[-1]) if more else None,
        )

    async def add_member(self, group_id: str, user_id: str, announce: Announcement | None = None,
                         invited: bool = False) -> None:
        group = self.by_id[group_id]
        if user_id in group.member_ids:
            raise errors.AlreadyAMember()
        spent = self.invitations.pop((group_id, user_id), None) is not None  # as SQL: any join spends it
        if invited and not spent:
            raise errors.NotAMember()
        self._store(announce)
        group.member_ids.append(user_id)
        group.member_count, group.member_version = group.member_count + 1, group.member_version + 1
        self._joined[group_id, user_id] = next(self._ticks)
        if self.conversations is not None:
            self.conversations.group_joined(group_id, user_id)

    async def add_members(self, group_id: str, user_ids: Sequence[str],
                          announce: Announcement | None = None) -> None:
        group = self.by_id[group_id]
        if any(user_id in group.member_ids for user_id in user_ids):
            raise errors.AlreadyAMember()
        self._store(announce)
        tick = next(self._ticks)  # one transaction: they join at once
        for user_id in user_ids:
            self.invitations.pop((group_id, user_id), None)
            group.member_ids.append(user_id)
            self._joined[group_id, user_id] = tick
            if self.conversations is not None:
                self.conversations.group_joined(group_id, user_id)
        group.member_count, group.member_version = group.member_count + len(user_ids), group.member_version + 1

    async def invite(self, group_id: str, user_id: str, invited_by: str,
                     announce: Announcement | None = None) -> bool:
        if group_id not in self.by_id:
            raise errors.GroupNotFound()
        if user_id in self.by_id[group_id].member_ids:
            raise errors.AlreadyAMember()
        if (group_id, user_id) in self.invitations:
            return False
        self._store(announce)
        self.invitations[group_id, user_id] = invited_by
        return True

    async def rename(self, group_id: str, name: str, announce: Announcement | None = None) -> None:
        if group_id not in self.by_id:
            raise errors.GroupNotFound()
        self._store(announce)
        self.by_id[group_id].name = name

    def _store(self, announce: Announcement | None) -> None:
        self.outbox.store(announce)  # in the change's transaction (SqlGroupRepository)

    async def remove_member(self, group_id: str, user_id: str, new_owner_id: str | None,
                            announce: Announcement | None = None) -> None:
        group = self.by_id[group_id]
        self._store(announce)
        group.member_ids.remove(user_id)
        group.member_count, group.member_version = group.member_count - 1, group.member_version + 1
        del self._joined[group_id, user_id]
        if self.conversations is not None:
            self.conversations.group_left(group_id, user_id)
        if new_owner_id is not None:
            group.owner_id = new_owner_id


class MemoryMessageStore(MessageStore):
    """Each conversation's messages in seq order (Message.seq; a message saved without
    one gets the conversation's next). History pages by seq, as the SQL store does."""

    def __init__(self) -> None:
        self.rows: list[Message] = []  # in the order they were saved
        self._conversations: dict[str, list[Message]] = {}  # conversation -> messages by seq
        self._ids: set[str] = set()
        self.changes: dict[str, Message] = {}  # message id -> its latest edit or deletion
        self.outbox = MemoryOutbox()  # where each change's announcement is stored with it
        self.listed: list[Message] = []  # what the conversation list was told of (SQL: record_messages)

    async def record_list(self, messages: Sequence[Message], order: Sequence[int]) -> None:
        self.listed.extend(messages)

    async def save(self, messages: Sequence[Message], order: Sequence[int] | None = None, *,
                   with_list: bool = True) -> None:
        if with_list:
            self.listed.extend(messages)
        for message in messages:
            if message.id in self._ids:
                continue
            self._ids.add(message.id)
            if message.id in self.changes:  # changed before it was stored
                change = self.changes[message.id]
                message = replace(message, content=change.content, edited_at=change.edited_at,
                                  deleted_at=change.deleted_at)
            stored = self._conversations.setdefault(message.conversation, [])
            if message.seq is None:
                message = replace(message, seq=(stored[-1].seq or 0) + 1 if stored else 1)
            seqs = [m.seq for m in stored]
            stored.insert(bisect.bisect(seqs, message.seq), message)
            self.rows.append(message)

    async def get(self, message_id: str, recent: Message | None = None) -> Message | None:
        for stored in self.rows:
            if stored.id == message_id:
                return stored
        if recent is None:
            return None
        change = self.changes.get(message_id)
        return recent if change is None else replace(
            recent, content=change.content, edited_at=change.edited_at, deleted_at=change.deleted_at)

    async def change(self, message: Message, announce: Announcement) -> None:
        if announce.event.id in self.outbox.stored:  # SQL: the announcement's unique key
            raise errors.ChangedMeanwhile()
        self.changes[message.id] = message
        self.outbox.store(announce)
        for index, stored in enumerate(self.rows):
            if stored.id == message.id:
                changed = replace(stored, content=message.content, edited_at=message.edited_at,
                                  deleted_at=message.deleted_at)
                self.rows[index] = changed
                in_conversation = self._conversations[stored.conversation]
                in_conversation[in_conversation.index(stored)] = changed

    async def last_seq(self, conversation: str) -> int:
        stored = self._conversations.get(conversation)
        return (stored[-1].seq or 0) if stored else 0

    async def highest_seqs(self, after: str | None, limit: int) -> list[tuple[str, int]]:
        names = sorted(name for name, stored in self._conversations.items() if stored)
        return [(name, self._conversations[name][-1].seq or 0) for name in names
                if after is None or name > after][:limit]

    async def private_history(self, user_id: str, peer_id: str, before: str | None, limit: int) -> HistoryPage:
        low, high = sorted((user_id, peer_id))
        return self._page(f"p:{low}:{high}", before, limit)

    async def group_history(self, group_id: str, before: str | None, limit: int) -> HistoryPage:
        return self._page("g:" + group_id, before, limit)

    def _page(self, conversation: str, before: str | None, limit: int) -> HistoryPage:
        stored = self._conversations.get(conversation, [])
        end = bisect.bisect_left([m.seq for m in stored], int(before)) if before is not None else len(stored)
        page = stored[max(0, end - limit - 1):end][::-1]
        more = len(page) > limit
        page = page[:limit]
        return HistoryPage(page, str(page[-1].seq) if more else None)
