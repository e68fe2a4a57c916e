"""Open sockets counted per key in this process (ConnectionCounter): the per-address
cap of every gateway, and the per-user cap of the embedded mode (one process)."""
from __future__ import annotations

from application.ports import ConnectionCounter


class MemoryConnectionCounter(ConnectionCounter):
    """At most `limit` open per key; 0 turns the cap off (nothing is counted)."""

    def __init__(self, limit: int):
        self._limit = limit
        self._open: dict[str, int] = {}

    async def acquire(self, key: str) -> bool:
        if self._limit <= 0:
            return True
        count = self._open.get(key, 0)
        if count >= self._limit:
            return False
        self._open[key] = count + 1
        return True

    async def release(self, key: str) -> None:
        if self._limit <= 0:
            return
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)

    def open_for(self, key: str) -> int:
        return self._open.get(key, 0)
