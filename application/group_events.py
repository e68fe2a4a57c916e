"""Group changes into the members' logs (domain.events.GroupChange): what each change
of a group tells whom. Each change's Announcement is stored by the group store with
the change, then announced, exactly once (application/announcements.py)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from application.announcements import Announcer
from application.ports import Announcement, Clock, IdGenerator
from domain.events import GROUP_UPDATED, MEMBER_ADDED, MEMBER_REMOVED, GroupChange
from domain.model import Group


@dataclass
class GroupEvents:
    announcer: Announcer
    ids: IdGenerator
    clock: Clock

    def created(self, group: Group) -> Announcement:
        """The first members see the group appear (with its name) at once."""
        return self._announcement(GROUP_UPDATED, group, group.owner_id, group.member_ids, name=group.name)

    def renamed(self, group: Group, by_user_id: str, name: str) -> Announcement:
        return self._announcement(GROUP_UPDATED, group, by_user_id, group.member_ids, name=name)

    def member_added(self, group: Group, user_id: str, by_user_id: str) -> Announcement:
        """To every member, the one added included."""
        return self._announcement(MEMBER_ADDED, group, by_user_id, [*group.member_ids, user_id], user_id=user_id)

    def member_removed(self, group: Group, user_id: str, by_user_id: str) -> Announcement:
        """To every member before the removal, the one removed (or leaving) included."""
        return self._announcement(MEMBER_REMOVED, group, by_user_id, group.member_ids, user_id=user_id)

    async def announce(self, announcement: Announcement) -> None:
        """Append a change's event now that the change is made (or leave it to the relay)."""
        await self.announcer.announce(announcement)

    def _announcement(self, kind: str, group: Group, by_user_id: str, recipients: Sequence[str],
                      user_id: str | None = None, name: str | None = None) -> Announcement:
        change = GroupChange(type=kind, id=self.ids.new_id(), group_id=group.id, by_user_id=by_user_id,
                             created_at=int(self.clock.now()), user_id=user_id, name=name)
        return Announcement(change, list(dict.fromkeys(recipients)), change.created_at)
