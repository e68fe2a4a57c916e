"""The in-process notification bus of the embedded mode (and of unit tests)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from application.ports import Notification, NotificationSubscriber


class InProcessBus(NotificationSubscriber):
    """Publishing calls every subscriber synchronously, in publish order, so the
    cursor order the Inbox port promises is kept. Nothing can be lost in
    between, so on_resync is never needed."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Notification], None]] = []
        self.published: list[Notification] = []  # for tests to look at
        self.keep_published = False

    def publish(self, notification: Notification) -> None:
        if self.keep_published:
            self.published.append(notification)
        for subscriber in tuple(self._subscribers):
            subscriber(notification)

    async def run(
        self,
        on_notification: Callable[[Notification], None],
        on_resync: Callable[[], Awaitable[None]],
    ) -> None:
        self._subscribers.append(on_notification)
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            self._subscribers.remove(on_notification)
