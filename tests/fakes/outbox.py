"""The outbox in memory, shared by the store fakes that stand for the SQL stores
writing announcements in their transactions (MemoryGroupRepository, MemoryMessageStore,
MemoryConversationStore), as they share one table (adapters/sql/outbox.py)."""
from __future__ import annotations

import time
from collections.abc import Callable

from application.ports import Announcement, Outbox


class MemoryOutbox(Outbox):
    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self.stored: dict[str, Announcement] = {}  # event id -> not yet announced, in the order stored
        self._now = now  # the unit tests' FakeClock: a test moves time past the relay's wait
        self.fail_next_announced: Exception | None = None  # a test sets this: the mark is lost

    def store(self, announce: Announcement | None) -> None:
        """What the SQL stores' transactions do (store_announcement)."""
        if announce is not None:
            if announce.event.id in self.stored:
                raise ValueError(f"announcement {announce.event.id} stored twice")  # SQL: a unique key
            self.stored[announce.event.id] = announce

    async def announcements(self, older_than: float, limit: int) -> list[Announcement]:
        before = int(self._now() - older_than)
        return [a for a in self.stored.values() if a.created_at <= before][:limit]

    async def announced(self, event_id: str) -> None:
        if self.fail_next_announced is not None:
            error, self.fail_next_announced = self.fail_next_announced, None
            raise error
        self.stored.pop(event_id, None)
