"""Group changes into the members' logs (domain.events.GroupChange): what each change
of a group tells whom. Each change's Announcement is stored by the group store with
the change, then announced, exactly once (application/announcements.py)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from application.announcements import Announcer
from application.ports import Announcement, Clock, GroupSwitch, IdGenerator, LoggedChange, MemberChange
from domain.events import GROUP_INVITED, GROUP_UPDATED, MEMBER_ADDED, MEMBER_REMOVED, GroupChange
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
        """To every member; in a large group once into its stream, which they all read
        (a rename of a channel of 100,000 is one append, not 100,000)."""
        if group.stream is None:
            return self._announcement(GROUP_UPDATED, group, by_user_id, group.member_ids, name=name)
        announcement = self._announcement(GROUP_UPDATED, group, by_user_id, [], name=name)
        assert isinstance(announcement.event, GroupChange)
        return replace(announcement, stream_change=LoggedChange(group.id, announcement.event))

    def member_added(self, group: Group, user_id: str, by_user_id: str) -> Announcement:
        """To every member, the one added included (in a large group, to that one only:
        the others read it in the group's stream)."""
        recipients = [user_id] if group.stream is not None else [*group.member_ids, user_id]
        return self._announcement(MEMBER_ADDED, group, by_user_id, recipients, user_id=user_id)

    def member_removed(self, group: Group, user_id: str, by_user_id: str) -> Announcement:
        """To every member before the removal, the one removed (or leaving) included (in a
        large group, to that one only)."""
        recipients = [user_id] if group.stream is not None else group.member_ids
        return self._announcement(MEMBER_REMOVED, group, by_user_id, recipients, user_id=user_id)

    def joined_in_bulk(self, group: Group, user_ids: Sequence[str], by_user_id: str) -> Announcement:
        """A bulk join (tests and seeding) tells its joiners as a creation tells the first
        members: the group, with its name, appears for them. The other members are not
        told (one event cannot name a thousand joins)."""
        return self._announcement(GROUP_UPDATED, group, by_user_id, user_ids, name=group.name)

    def invited(self, group: Group, user_id: str, by_user_id: str) -> Announcement:
        """To the invitee alone (the members see the join, if it comes), with the group's
        name: it may not read the group before it joins."""
        return self._announcement(GROUP_INVITED, group, by_user_id, [user_id], user_id=user_id, name=group.name)

    async def announce(self, announcement: Announcement,
                       stream_change: GroupSwitch | MemberChange | None = None) -> None:
        """Append a change's event now that the change is made (or leave it to the relay),
        with what the group store said the change does to a large group's stream."""
        if stream_change is not None:
            announcement = replace(announcement, stream_change=stream_change)
        await self.announcer.announce(announcement)

    def _announcement(self, kind: str, group: Group, by_user_id: str, recipients: Sequence[str],
                      user_id: str | None = None, name: str | None = None) -> Announcement:
        change = GroupChange(type=kind, id=self.ids.new_id(), group_id=group.id, by_user_id=by_user_id,
                             created_at=int(self.clock.now()), user_id=user_id, name=name)
        return Announcement(change, list(dict.fromkeys(recipients)), change.created_at)
