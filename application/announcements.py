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

from application.ports import WAIT, Announcement, GroupStreams, Inbox, MemberChange, Outbox

log = logging.getLogger("courier.announcements")


@dataclass
class AnnouncementSteps:
    """The steps that put one announcement's event where it goes, each idempotent, so
    that the use case and the relay may both take them (docs/design/large-groups.md,
    section 4.3): a large group's stream change first (its switch, or a join or leave:
    the members' intervals and the record the others read in the stream), then the
    event in its recipients' own logs, then the outbox forgets it.

    A change of a large group's membership goes to the own logs of the users it is
    about only: everyone else reads its record in the group's stream. A change whose
    group has an earlier change not applied yet (WAIT) is left stored: the relay takes
    it again once that one is in."""

    inbox: Inbox
    outbox: Outbox
    streams: GroupStreams | None = None  # None: large groups are off

    async def take(self, announcement: Announcement) -> bool:
        """Take every step; False when the stream said WAIT (nothing else was done)."""
        event, recipients = announcement.event, announcement.recipient_ids
        change = announcement.stream_change
        if change is not None and self.streams is not None:
            applied = await self.streams.apply(change)
            if applied.status == WAIT:
                return False
            if isinstance(change, MemberChange):
                recipients = [user_id for user_id in recipients if user_id in change.user_ids]
        if recipients:
            await self.inbox.append(event, recipients)
        await self.outbox.announced(event.id)
        return True


@dataclass
class Announcer:
    steps: AnnouncementSteps

    async def announce(self, announcement: Announcement) -> None:
        """Append a change's event now that the change is stored; on failure the relay
        appends it later (the announcement stays stored), so the caller's change stands."""
        event = announcement.event
        try:
            if not await self.steps.take(announcement):
                log.info("the %s event %s waits for an earlier change of its group", event.type, event.id)
        except Exception as error:  # noqa: BLE001 - the change is made; its event comes with the relay
            log.warning("the %s event %s is left to the relay: %r", event.type, event.id, error)


RELAY_EVERY = 2.0  # seconds between two looks at the stored announcements
RELAY_AFTER = 5.0  # an announcement younger than this is still its use case's to append
RELAY_BATCH = 100


@dataclass
class RelayAnnouncements:
    """Appends the events whose use case did not (it died, or the log's store failed):
    every RELAY_EVERY seconds, those made more than RELAY_AFTER ago."""

    steps: AnnouncementSteps
    every: float = RELAY_EVERY
    after: float = RELAY_AFTER

    async def once(self) -> int:
        """Relay what is due now; how many were relayed."""
        relayed = 0
        while True:
            due = await self.steps.outbox.announcements(self.after, RELAY_BATCH)
            taken = 0
            for announcement in due:
                if await self.steps.take(announcement):
                    taken += 1
            relayed += taken
            # A full batch of which nothing could be taken (all waiting) would come back
            # the same: the next round tries again.
            if len(due) < RELAY_BATCH or taken == 0:
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
