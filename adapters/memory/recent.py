"""RecentMessages of the embedded mode: none - SqliteInbox stores every message in
the message table with its acceptance, so the MessageStore has them all."""
from __future__ import annotations

from application.ports import RecentMessages
from domain.model import Message


class NoRecentMessages(RecentMessages):
    async def find(self, user_id: str, message_id: str) -> Message | None:
        return None
