"""Use cases of groups: create, list, get, rename, add a member, invite, leave or remove.
Each change is announced in the members' logs (GroupEvents)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from application.group_changes import GroupChangeAllowance
from application.group_events import GroupEvents
from application.group_pages import parse_position, position_token
from application.messaging import parse_limit
from application.ports import GroupRepository, IdGenerator, UserRepository
from domain import errors
from domain.model import KIND_CHANNEL, Group, validate_group_name, validate_id, validate_kind

MAX_INITIAL_MEMBERS = 10_000
BULK_BATCH = 1_000  # users per transaction of a bulk join (design section 9)


@dataclass(frozen=True, slots=True)
class MyGroups:
    """A page of the caller's groups, the most recently joined first."""

    groups: list[Group]
    next_before: str | None  # `before` of the next page (opaque); None: this is the last


@dataclass(frozen=True, slots=True)
class Invitation:
    """The owner's invitation of a user to its group (POST /groups/{id}/invitations)."""

    group_id: str
    user_id: str
    invited_by: str
    new: bool  # False: the user was invited before (nothing was stored nor told again)

    def public(self) -> dict:
        return {"group_id": self.group_id, "user_id": self.user_id, "invited_by": self.invited_by}


@dataclass
class ManageGroups:
    groups: GroupRepository
    users: UserRepository
    ids: IdGenerator
    changes: GroupChangeAllowance
    events: GroupEvents
    # Channels are large from creation, and a large group needs the streams: while large
    # groups are off (COURIER_LARGE_GROUP=0) nothing would deliver a channel's posts.
    channels: bool = False

    async def create(self, owner_id: str, name: Any, member_ids: Any, kind: Any = None) -> Group:
        name = validate_group_name(name)
        kind = validate_kind(kind)
        if kind == KIND_CHANNEL and not self.channels:
            raise errors.InvalidInput("channels need large groups, off on this server (COURIER_LARGE_GROUP=0)")
        if member_ids is None:
            member_ids = []
        if not isinstance(member_ids, list) or len(member_ids) > MAX_INITIAL_MEMBERS:
            raise errors.InvalidInput(f"member_ids must be a list of at most {MAX_INITIAL_MEMBERS} user ids")
        members = [owner_id]
        for member_id in member_ids:
            member_id = validate_id(member_id, "member_ids[]")
            if member_id not in members:
                members.append(member_id)
        await self.changes.spend(owner_id)  # before the members are looked up, one by one
        for member_id in members[1:]:
            if await self.users.get(member_id) is None:
                raise errors.UserNotFound(f"no user {member_id}")
        group = Group(id=self.ids.new_id(), name=name, owner_id=owner_id, member_ids=members, kind=kind)
        announcement = self.events.created(group)
        switch = await self.groups.add(group, announcement)
        await self.events.announce(announcement, switch)
        return group

    async def list_mine(self, user_id: str, before: Any = None, limit: Any = None) -> MyGroups:
        """Paged like the history: `limit` (default 50, at most 200) and `before`."""
        position, limit = parse_position(before), parse_limit(limit)
        page = await self.groups.list_for_member(user_id, position, limit)
        token = position_token(page.next_before) if page.next_before is not None else None
        return MyGroups(page.groups, token)

    async def get(self, user_id: str, group_id: Any) -> Group:
        group = await self._load(group_id)
        group.require_member(user_id)
        return group

    async def add_member(self, actor_id: str, group_id: Any, user_id: Any) -> Group:
        """Any member adds a user; a user who is not a member adds itself when the owner
        invited it (the store checks the invitation and spends it with the join)."""
        user_id = validate_id(user_id, "user_id")
        group_id = validate_id(group_id, "group_id")
        await self.changes.spend(actor_id)  # a malformed request spends nothing; any other does
        group = await self._load(group_id)
        invited = not group.is_member(actor_id)
        if invited and actor_id != user_id:
            raise errors.NotAMember()
        if group.is_member(user_id):
            raise errors.AlreadyAMember()
        if await self.users.get(user_id) is None:
            raise errors.UserNotFound()
        announcement = self.events.member_added(group, user_id, actor_id)
        change = await self.groups.add_member(group.id, user_id, announcement, invited=invited)
        group.member_ids.append(user_id)
        group.member_count += 1
        await self.events.announce(announcement, change)
        return group

    async def add_members(self, actor_id: str, group_id: Any, user_ids: Sequence[Any],
                          batch: int = BULK_BATCH) -> int:
        """A member adds many users (tests and seeding, e.g. a channel of 100,000; no HTTP
        route), `batch` per transaction: each batch is one member version and one
        announcement (GroupEvents.joined_in_bulk), and, in a large group, one change of
        its stream. Users who are members already are passed over; an unknown user adds
        no one. Not counted against COURIER_GROUP_CHANGES. Answers how many were added."""
        group_id = validate_id(group_id, "group_id")
        ids = list(dict.fromkeys(validate_id(user_id, "user_ids[]") for user_id in user_ids))
        group = await self.get(actor_id, group_id)
        members = set(group.member_ids)
        new = [user_id for user_id in ids if user_id not in members]
        if len(await self.users.existing(new)) != len(new):
            raise errors.UserNotFound("some of user_ids are no users")
        for start in range(0, len(new), batch):
            joiners = new[start:start + batch]
            announcement = self.events.joined_in_bulk(group, joiners, actor_id)
            change = await self.groups.add_members(group.id, joiners, announcement)
            await self.events.announce(announcement, change)
        return len(new)

    async def invite(self, actor_id: str, group_id: Any, user_id: Any) -> Invitation:
        """The owner invites a user, who is told in its own log (group_invited) and may
        then join (add_member with its own id). Inviting again tells nothing again."""
        user_id = validate_id(user_id, "user_id")
        group_id = validate_id(group_id, "group_id")
        await self.changes.spend(actor_id)  # it writes to another's log, as an addition does
        group = await self.get(actor_id, group_id)
        if actor_id != group.owner_id:
            raise errors.Forbidden("only the owner may invite")
        if group.is_member(user_id):
            raise errors.AlreadyAMember()
        if await self.users.get(user_id) is None:
            raise errors.UserNotFound()
        announcement = self.events.invited(group, user_id, actor_id)
        new = await self.groups.invite(group.id, user_id, actor_id, announcement)
        if new:
            await self.events.announce(announcement)
        return Invitation(group.id, user_id, actor_id, new)

    async def rename(self, actor_id: str, group_id: Any, name: Any) -> Group:
        """The owner gives the group a new name (PATCH /groups/{id} {"name"})."""
        group_id = validate_id(group_id, "group_id")
        name = validate_group_name(name)
        await self.changes.spend(actor_id)
        group = await self.get(actor_id, group_id)
        if actor_id != group.owner_id:
            raise errors.Forbidden("only the owner may rename the group")
        announcement = self.events.renamed(group, actor_id, name)
        await self.groups.rename(group.id, name, announcement)
        group.name = name
        await self.events.announce(announcement)
        return group

    async def remove_member(self, actor_id: str, group_id: Any, user_id: Any) -> None:
        user_id = validate_id(user_id, "user_id")
        group = await self.get(actor_id, group_id)
        if not group.may_remove(actor_id, user_id):
            raise errors.Forbidden("only the owner may remove other members")
        if not group.is_member(user_id):
            raise errors.NotFound("this user is not a member of the group")
        new_owner = group.successor_owner(user_id) if user_id == group.owner_id else None
        announcement = self.events.member_removed(group, user_id, actor_id)
        change = await self.groups.remove_member(group.id, user_id, new_owner, announcement)
        await self.events.announce(announcement, change)

    async def _load(self, group_id: Any) -> Group:
        group = await self.groups.get(validate_id(group_id, "group_id"))
        if group is None:
            raise errors.GroupNotFound()
        return group
