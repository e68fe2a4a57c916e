"""The pulls' reader while large groups are off: the user's own log alone, through
Inbox.read, with the cursors it hands out (`<ms>-<n>`), exactly as before large groups
existed. With them on, application/timeline.py reads instead."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from application.ports import Inbox, LogReader, TimelinePage
from domain.events import Delivery, in_original_view
from domain.model import validate_cursor

# How many entries the original view reads at a time: the log also holds what that
# view passes over (one's own sends), so it reads on until the page is full.
SCAN_PAGE = 200


@dataclass
class InboxReader(LogReader):
    inbox: Inbox

    async def read(self, user_id: str, cursor: Any, limit: int, *, events: bool = True) -> TimelinePage:
        cursor = validate_cursor(cursor)
        if events:
            # One extra entry tells whether there is more without a second read.
            deliveries = await self.inbox.read(user_id, cursor, limit + 1)
            has_more = len(deliveries) > limit
            deliveries = deliveries[:limit]
            return TimelinePage(deliveries, deliveries[-1].cursor if deliveries else cursor, has_more)
        shown: list[Delivery] = []
        position = cursor
        while True:
            page = await self.inbox.read(user_id, position, max(limit + 1, SCAN_PAGE))
            for delivery in page:
                if in_original_view(delivery.event, user_id):
                    if len(shown) == limit:
                        return TimelinePage(shown, shown[-1].cursor, True)
                    shown.append(delivery)
                position = delivery.cursor
            if len(page) < max(limit + 1, SCAN_PAGE):
                return TimelinePage(shown, shown[-1].cursor if shown else cursor, False)
