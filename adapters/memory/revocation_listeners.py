"""Revocations announced within one process: what TokenRevocations.follow() is where
every revocation is made by this process (the embedded mode, and the unit tests)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("courier.sessions")


class RevocationListeners:
    def __init__(self) -> None:
        self._listeners: list[Callable[[str | None], None]] = []

    def announce(self, user_id: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(user_id)
            except Exception:
                log.exception("a revocation listener failed")

    async def follow(self, on_revoked: Callable[[str | None], None]) -> None:
        self._listeners.append(on_revoked)
        try:
            on_revoked(None)  # nothing was followed before now
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            self._listeners.remove(on_revoked)
