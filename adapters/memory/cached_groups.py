"""An in-process cache of groups in front of a GroupRepository, for a process that
makes every change to its groups itself: the embedded mode (one process owns the
SQLite file; production gateways share MySQL and use the Redis cache instead,
adapters/redis/cache.py).

Every group send looks its group up (members and all); without this, each one
read the group's rows from SQLite again (about a tenth of the process in a fan-out
to 1,000 members). A change (add_member, remove_member, rename) drops the entry before and
after its write, and a read that missed stores what it read only if no change
began or ended meanwhile, so a read racing a change never puts old members back.
A change that fails drops the entry all the same: the next read asks the store.

get() answers a copy: callers may change the group they are given (ManageGroups
appends the member it added) without touching the cached one. Bounded by the
members held (a few MB): past `max_members` the oldest entries are dropped."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from application.ports import Announcement, GroupPage, GroupPosition, GroupRepository, GroupSwitch, MemberChange
from domain.model import Group

MAX_MEMBERS = 200_000


def _copy(group: Group) -> Group:
    return replace(group, member_ids=list(group.member_ids))  # the large-group fields too


class CachedGroups(GroupRepository):
    def __init__(self, inner: GroupRepository, max_members: int = MAX_MEMBERS):
        self._inner = inner
        self._groups: dict[str, Group] = {}  # oldest first
        self._members_held = 0
        self._max_members = max_members
        # Bumped when any change begins or ends: a read that missed keeps what it
        # read only if the count did not move while it waited on the store.
        self._changes = 0

    async def add(self, group: Group, announce: Announcement | None = None) -> GroupSwitch | None:
        return await self._inner.add(group, announce)

    async def get(self, group_id: str) -> Group | None:
        cached = self._groups.get(group_id)
        if cached is not None:
            return _copy(cached)
        changes = self._changes
        group = await self._inner.get(group_id)
        if group is not None and changes == self._changes:
            self._store(_copy(group))
        return group

    async def list_for_member(self, user_id: str, before: GroupPosition | None, limit: int) -> GroupPage:
        return await self._inner.list_for_member(user_id, before, limit)

    async def add_member(self, group_id: str, user_id: str, announce: Announcement | None = None,
                         invited: bool = False) -> GroupSwitch | MemberChange | None:
        self._forget(group_id)
        try:
            return await self._inner.add_member(group_id, user_id, announce, invited)
        finally:
            self._forget(group_id)

    async def add_members(self, group_id: str, user_ids: Sequence[str],
                          announce: Announcement | None = None) -> GroupSwitch | MemberChange | None:
        self._forget(group_id)
        try:
            return await self._inner.add_members(group_id, user_ids, announce)
        finally:
            self._forget(group_id)

    async def invite(self, group_id: str, user_id: str, invited_by: str,
                     announce: Announcement | None = None) -> bool:
        return await self._inner.invite(group_id, user_id, invited_by, announce)  # the group is unchanged

    async def rename(self, group_id: str, name: str, announce: Announcement | None = None) -> None:
        self._forget(group_id)
        try:
            await self._inner.rename(group_id, name, announce)
        finally:
            self._forget(group_id)

    async def remove_member(self, group_id: str, user_id: str, new_owner_id: str | None,
                            announce: Announcement | None = None) -> MemberChange | None:
        self._forget(group_id)
        try:
            return await self._inner.remove_member(group_id, user_id, new_owner_id, announce)
        finally:
            self._forget(group_id)

    def _forget(self, group_id: str) -> None:
        self._changes += 1
        self._drop(group_id)

    def _store(self, group: Group) -> None:
        self._drop(group.id)
        self._groups[group.id] = group
        self._members_held += len(group.member_ids)
        while self._members_held > self._max_members and len(self._groups) > 1:
            self._drop(next(iter(self._groups)))  # the oldest, to make room (not a change)

    def _drop(self, group_id: str) -> None:
        dropped = self._groups.pop(group_id, None)
        if dropped is not None:
            self._members_held -= len(dropped.member_ids)
