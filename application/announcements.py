"""Events exactly once, whatever change they tell of (a group change, a message's edit
or deletion, a moved read marker): the outbox's two ends.

A store writes a change and its Announcement (the event and its recipients) in one
transaction. The use case then appends the event at once and marks the announcement
done (Announcer); if the process dies, or the log's store fails, in between,
RelayAnnouncements appends it later (every few seconds, in the gateway of the embedded
mode and in `courier worker`). The inbox appends an event id once only (Inbox.append),
so a relay that races the use case, or a crash after the append and before the mark,
cannot append it twice: exactly once, as messages are, though a relayed event trails
its change by a few seconds."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from application.ports import Announcement, Inbox, Outbox

log = logging.getLogger("courier.announcements")


@dataclass
class Announcer:
    inbox: Inbox
    outbox: Outbox

    async def announce(self, announcement: Announcement) -> None:
        """Append a change's event now that the change is stored; on failure the relay
        appends it later (the announcement stays stored), so the caller's change stands."""
        event = announcement.event
        try:
            await self.inbox.append(event, announcement.recipient_ids)
            await self.outbox.announced(event.id)
        except Exception as error:  # noqa: BLE001 - the change is made; its event comes with the relay
            log.warning("the %s event %s is left to the relay: %r", event.type, event.id, error)


RELAY_EVERY = 2.0  # seconds between two looks at the stored announcements
RELAY_AFTER = 5.0  # an announcement younger than this is still its use case's to append
RELAY_BATCH = 100


@dataclass
class RelayAnnouncements:
    """Appends the events whose use case did not (it died, or the log's store failed):
    every RELAY_EVERY seconds, those made more than RELAY_AFTER ago."""

    inbox: Inbox
    outbox: Outbox
    every: float = RELAY_EVERY
    after: float = RELAY_AFTER

    async def once(self) -> int:
        """Relay what is due now; how many were relayed."""
        relayed = 0
        while True:
            due = await self.outbox.announcements(self.after, RELAY_BATCH)
            for announcement in due:
                await self.inbox.append(announcement.event, announcement.recipient_ids)
                await self.outbox.announced(announcement.event.id)
                relayed += 1
            if len(due) < RELAY_BATCH:
                return relayed

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                relayed = await self.once()
                if relayed:
                    log.info("relayed %d event(s) left unannounced", relayed)
            except Exception as error:  # noqa: BLE001 - the stores come back: try again
                log.warning("relaying events left unannounced failed: %r", error)
            try:
                await asyncio.wait_for(stop.wait(), self.every)
            except TimeoutError:
                pass
