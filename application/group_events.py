"""Group changes into the members' logs (domain.events.GroupChange): what each change
of a group tells whom, exactly once.

A change and its announcement (the event and its recipients) are written by the group
store in one transaction (an outbox). The use case then appends the event at once and
marks the announcement done; if the process dies, or the log's store fails, in
between, RelayGroupChanges appends it later (every few seconds, in the gateway of the
embedded mode and in `courier worker`). The inbox appends an event id once only
(Inbox.append), so a relay that races the use case, or a crash after the append and
before the mark, cannot append it twice: exactly once, as messages are, though a
relayed event trails its change by a few seconds."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from application.ports import Announcement, Clock, GroupRepository, IdGenerator, Inbox
from domain.events import GROUP_UPDATED, MEMBER_ADDED, MEMBER_REMOVED, GroupChange
from domain.model import Group

log = logging.getLogger("courier.groups")


@dataclass
class GroupEvents:
    inbox: Inbox
    groups: GroupRepository
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
        """Append a change's event now that the change is made; on failure the relay
        appends it later (the announcement stays stored)."""
        try:
            await self.inbox.append(announcement.change, announcement.recipient_ids)
            await self.groups.announced(announcement.change.id)
        except Exception as error:  # noqa: BLE001 - the change is made; its event comes with the relay
            change = announcement.change
            log.warning("group %s: the %s event %s is left to the relay: %r",
                        getattr(change, "group_id", "-"), change.type, change.id, error)

    def _announcement(self, kind: str, group: Group, by_user_id: str, recipients: Sequence[str],
                      user_id: str | None = None, name: str | None = None) -> Announcement:
        change = GroupChange(type=kind, id=self.ids.new_id(), group_id=group.id, by_user_id=by_user_id,
                             created_at=int(self.clock.now()), user_id=user_id, name=name)
        return Announcement(change, list(dict.fromkeys(recipients)))


RELAY_EVERY = 2.0  # seconds between two looks at the stored announcements
RELAY_AFTER = 5.0  # an announcement younger than this is still its use case's to append
RELAY_BATCH = 100


@dataclass
class RelayGroupChanges:
    """Appends the events of group changes whose use case did not (it died, or the log's
    store failed): every RELAY_EVERY seconds, those stored more than RELAY_AFTER ago."""

    events: GroupEvents
    groups: GroupRepository
    every: float = RELAY_EVERY
    after: float = RELAY_AFTER

    async def once(self) -> int:
        """Relay what is due now; how many were relayed."""
        relayed = 0
        while True:
            due = await self.groups.announcements(self.after, RELAY_BATCH)
            for announcement in due:
                await self.events.inbox.append(announcement.change, announcement.recipient_ids)
                await self.groups.announced(announcement.change.id)
                relayed += 1
            if len(due) < RELAY_BATCH:
                return relayed

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                relayed = await self.once()
                if relayed:
                    log.info("relayed %d group change event(s) left unannounced", relayed)
            except Exception as error:  # noqa: BLE001 - the stores come back: try again
                log.warning("relaying group change events failed: %r", error)
            try:
                await asyncio.wait_for(stop.wait(), self.every)
            except TimeoutError:
                pass
