"""Presence and typing within one process: the embedded mode's (and the unit tests')."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from application.ports import Clock, PresenceBus, PresenceStore, TypingBus
from domain.presence import PresenceStatus, Typing


class MemoryPresenceStore(PresenceStore):
    """One gateway, so no leases: a user is online from its first socket until `grace`
    seconds after its last one closed."""

    def __init__(self, clock: Clock, grace: float):
        self._clock = clock
        self._grace = grace
        self._online: set[str] = set()
        self._leaving: dict[str, float] = {}  # user -> when its grace ends
        self._last_seen: dict[str, int] = {}
        self._versions: dict[str, int] = {}

    async def arrived(self, user_ids: Sequence[str]) -> list[PresenceStatus]:
        changed = []
        for user_id in user_ids:
            if self._leaving.pop(user_id, None) is not None or user_id in self._online:
                continue  # back within its grace: no change
            self._online.add(user_id)
            changed.append(self._bump(user_id))
        return changed

    async def left(self, user_ids: Sequence[str]) -> None:
        now = self._clock.now()
        for user_id in user_ids:
            if user_id in self._online:
                self._leaving[user_id] = now + self._grace
                self._last_seen[user_id] = int(now)

    async def expire(self) -> list[PresenceStatus]:
        now = self._clock.now()
        due = [user_id for user_id, until in self._leaving.items() if until <= now]
        changed = []
        for user_id in due:
            del self._leaving[user_id]
            self._online.discard(user_id)
            changed.append(self._bump(user_id))
        return changed

    async def statuses(self, user_ids: Sequence[str]) -> list[PresenceStatus]:
        return [self._status(user_id) for user_id in user_ids]

    async def touch(self, user_id: str) -> PresenceStatus:
        return self._bump(user_id)

    async def keep_alive(self) -> None:
        return None

    async def close(self) -> None:
        await self.left(list(self._online))

    def _bump(self, user_id: str) -> PresenceStatus:
        self._versions[user_id] = self._versions.get(user_id, 0) + 1
        return self._status(user_id)

    def _status(self, user_id: str) -> PresenceStatus:
        return PresenceStatus(user_id, user_id in self._online, self._last_seen.get(user_id),
                              self._versions.get(user_id, 0))


class InProcessPresenceBus(PresenceBus):
    """Changes go, synchronously, to the subscribers, for the users watched."""

    def __init__(self) -> None:
        self._watched: dict[str, int] = {}  # user -> how many watch() calls are not undone
        self._subscribers: list[Callable[[PresenceStatus], None]] = []

    async def watch(self, user_ids: Sequence[str]) -> None:
        for user_id in user_ids:
            self._watched[user_id] = self._watched.get(user_id, 0) + 1

    async def unwatch(self, user_ids: Sequence[str]) -> None:
        for user_id in user_ids:
            left = self._watched.get(user_id, 0) - 1
            if left > 0:
                self._watched[user_id] = left
            else:
                self._watched.pop(user_id, None)

    @property
    def watched(self) -> set[str]:
        return set(self._watched)

    async def watched_among(self, user_ids: Sequence[str]) -> set[str]:
        return {user_id for user_id in user_ids if user_id in self._watched}

    async def publish(self, statuses: Sequence[PresenceStatus]) -> None:
        for status in statuses:
            if status.user_id in self._watched:
                for on_change in tuple(self._subscribers):
                    on_change(status)

    async def run(self, on_change: Callable[[PresenceStatus], None],
                  on_resync: Callable[[], Awaitable[None]]) -> None:
        self._subscribers.append(on_change)
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            self._subscribers.remove(on_change)


class InProcessTypingBus(TypingBus):
    def __init__(self) -> None:
        self._subscribers: list[Callable[[Typing], None]] = []

    async def publish(self, typing: Typing) -> None:
        for on_typing in tuple(self._subscribers):
            on_typing(typing)

    async def run(self, on_typing: Callable[[Typing], None]) -> None:
        self._subscribers.append(on_typing)
        try:
            await asyncio.Event().wait()
        finally:
            self._subscribers.remove(on_typing)
