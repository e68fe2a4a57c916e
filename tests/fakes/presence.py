"""The presence preference in memory (SQL: users.show_presence)."""
from __future__ import annotations

from collections.abc import Sequence

from application.ports import PresencePreferences


class MemoryPresencePreferences(PresencePreferences):
    def __init__(self) -> None:
        self.hidden: set[str] = set()

    async def hidden_among(self, user_ids: Sequence[str]) -> set[str]:
        return self.hidden.intersection(user_ids)

    async def set_shows_presence(self, user_id: str, value: bool) -> None:
        if value:
            self.hidden.discard(user_id)
        else:
            self.hidden.add(user_id)
