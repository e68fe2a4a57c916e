"""CursorCheckpoints kept in memory, with the Redis adapter's ring: checkpoint k of a
user takes slot k mod `ring`, so a later one replaces it (docs/design/large-groups.md,
section 3.4), and the same positions saved again answer the checkpoint that keeps
them; a test expires one by hand, as its time running out would."""
from __future__ import annotations

from collections.abc import Mapping

from application.ports import CursorCheckpoints
from domain import errors
from domain.cursor import Position


class MemoryCursorCheckpoints(CursorCheckpoints):
    def __init__(self, ring: int = 64):
        self._ring = ring
        self._next: dict[str, int] = {}
        self._slots: dict[tuple[str, int], tuple[int, dict[int, Position]]] = {}
        self.saved: list[tuple[str, int, dict[int, Position]]] = []  # (user, id, positions), for the tests to look at

    async def save(self, user_id: str, groups: Mapping[int, Position]) -> int:
        for (owner, _), (checkpoint, kept) in self._slots.items():
            if owner == user_id and kept == groups:  # the same positions: the checkpoint that keeps them
                self.saved.append((user_id, checkpoint, dict(groups)))
                return checkpoint
        checkpoint = self._next.get(user_id, 0) + 1
        self._next[user_id] = checkpoint
        self._slots[user_id, checkpoint % self._ring] = (checkpoint, dict(groups))
        self.saved.append((user_id, checkpoint, dict(groups)))
        return checkpoint

    async def load(self, user_id: str, checkpoint: int) -> dict[int, Position]:
        kept = self._slots.get((user_id, checkpoint % self._ring))
        if kept is None or kept[0] != checkpoint:
            raise errors.CursorExpired("the cursor's checkpoint is no longer kept; use the history calls")
        return dict(kept[1])

    def expire(self, user_id: str, checkpoint: int) -> None:
        self._slots.pop((user_id, checkpoint % self._ring), None)
