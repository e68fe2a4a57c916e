"""Group changes into the members' logs (domain.events.GroupChange): what each change
of a group tells whom.

A change is written to the group store first, then appended to the logs. If the
append fails (the log's store is down at that moment), the change stands and its
event is lost: it is logged, and the members see the change when they next load the
group. Group changes are at most once, where messages are exactly once (docs: README,
Events)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from application.ports import Clock, IdGenerator, Inbox
from domain.events import GROUP_UPDATED, MEMBER_ADDED, MEMBER_REMOVED, GroupChange
from domain.model import Group

log = logging.getLogger("courier.groups")


@dataclass
class GroupEvents:
    inbox: Inbox
    ids: IdGenerator
    clock: Clock

    async def created(self, group: Group) -> None:
        """The first members see the group appear (with its name) at once."""
        await self._announce(GROUP_UPDATED, group, group.owner_id, group.member_ids, name=group.name)

    async def renamed(self, group: Group, by_user_id: str) -> None:
        await self._announce(GROUP_UPDATED, group, by_user_id, group.member_ids, name=group.name)

    async def member_added(self, group: Group, user_id: str, by_user_id: str) -> None:
        """To every member, the one added included (group.member_ids has it)."""
        await self._announce(MEMBER_ADDED, group, by_user_id, group.member_ids, user_id=user_id)

    async def member_removed(self, group: Group, user_id: str, by_user_id: str) -> None:
        """To every member before the removal, the one removed (or leaving) included."""
        await self._announce(MEMBER_REMOVED, group, by_user_id, group.member_ids, user_id=user_id)

    async def _announce(self, kind: str, group: Group, by_user_id: str, recipients: Sequence[str],
                        user_id: str | None = None, name: str | None = None) -> None:
        change = GroupChange(type=kind, id=self.ids.new_id(), group_id=group.id, by_user_id=by_user_id,
                             created_at=int(self.clock.now()), user_id=user_id, name=name)
        try:
            await self.inbox.append(change, list(recipients))
        except Exception as error:  # noqa: BLE001 - the change is made; only its event is lost
            log.warning("group %s: %s of %s made, but its event was not appended: %r",
                        group.id, kind, user_id or name, error)
