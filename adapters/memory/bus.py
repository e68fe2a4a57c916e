"""The in-process notification bus of the embedded mode (and of unit tests)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

from application.ports import (
    AnyNotification,
    GroupNotification,
    MembershipNotification,
    NotificationSubscriber,
)


class InProcessBus(NotificationSubscriber):
    """Publishing calls every subscriber synchronously, in publish order, so the
    cursor order the Inbox port promises is kept. Nothing can be lost in
    between, so on_resync is never needed.

    A large group's notifications (on its channel in Redis) reach the subscribers only
    while the group is followed, as Redis routes a channel only to its subscribers, so
    that a gateway that forgets to follow a group is caught by the tests. One set of
    followed groups for all subscribers: the embedded mode has one gateway."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[AnyNotification], None]] = []
        self.published: list[AnyNotification] = []  # for tests to look at
        self.keep_published = False
        self.followed: set[str] = set()

    def publish(self, notification: AnyNotification) -> None:
        if self.keep_published:
            self.published.append(notification)
        if isinstance(notification, GroupNotification | MembershipNotification) \
                and notification.group_id not in self.followed:
            return
        for subscriber in tuple(self._subscribers):
            subscriber(notification)

    async def follow(self, group_ids: Collection[str]) -> None:
        self.followed.update(group_ids)

    async def unfollow(self, group_ids: Collection[str]) -> None:
        self.followed.difference_update(group_ids)

    async def run(
        self,
        on_notification: Callable[[AnyNotification], None],
        on_resync: Callable[[], Awaitable[None]],
    ) -> None:
        self._subscribers.append(on_notification)
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            self._subscribers.remove(on_notification)
