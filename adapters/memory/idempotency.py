"""Send idempotency kept in memory (unit tests)."""
from __future__ import annotations

from application.ports import IdempotencyKeys
from domain.model import Message


class MemoryIdempotencyKeys(IdempotencyKeys):
    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], Message] = {}

    async def remember(self, sender_id: str, client_msg_id: str, message: Message) -> Message | None:
        key = (sender_id, client_msg_id)
        if key in self.answers:
            return self.answers[key]
        self.answers[key] = message
        return None

    async def forget(self, sender_id: str, client_msg_id: str) -> None:
        self.answers.pop((sender_id, client_msg_id), None)
