"""Send idempotency kept in memory (the tests' fake of IdempotencyKeys)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from application.ports import Answer, IdempotencyKeys
from domain.model import Message

PENDING_TTL = 30.0  # seconds a pending answer blocks its key (ports.IdempotencyKeys)


@dataclass(slots=True)
class _Entry:
    message: Message
    delivered: bool
    since: float  # when it was remembered


class MemoryIdempotencyKeys(IdempotencyKeys):
    """Answers are kept for good (a unit test never runs 24 hours); a pending one
    expires `pending_ttl` seconds after it was remembered, by `now`."""

    def __init__(self, now: Callable[[], float] = time.monotonic, pending_ttl: float = PENDING_TTL) -> None:
        self._now = now
        self._pending_ttl = pending_ttl
        self.entries: dict[tuple[str, str], _Entry] = {}

    @property
    def answers(self) -> dict[tuple[str, str], Message]:
        """Every remembered message, pending or delivered (for tests to look at)."""
        return {key: entry.message for key, entry in self.entries.items()}

    async def remember(self, sender_id: str, client_msg_id: str, message: Message) -> Answer | None:
        key = (sender_id, client_msg_id)
        entry = self.entries.get(key)
        if entry is not None and (entry.delivered or self._now() - entry.since < self._pending_ttl):
            return Answer(entry.message, entry.delivered)
        self.entries[key] = _Entry(message, delivered=False, since=self._now())
        return None

    async def confirm(self, sender_id: str, client_msg_id: str, message: Message) -> None:
        self.mark_delivered(sender_id, client_msg_id, message)

    def held_by_another(self, message: Message) -> bool:
        """Whether another message holds the key of `message` now (MemoryInbox.deliver's
        check, as adapters/sql/idempotency.held_by_others and deliver.lua make it)."""
        assert message.client_msg_id is not None
        entry = self.entries.get((message.from_user_id, message.client_msg_id))
        return entry is not None and entry.message.id != message.id

    def mark_delivered(self, sender_id: str, client_msg_id: str, message: Message) -> None:
        """The confirm step, synchronous, so MemoryInbox.deliver takes it with its append
        (nothing runs in between, as in the SQL transaction or the Redis script)."""
        key = (sender_id, client_msg_id)
        entry = self.entries.get(key)
        if entry is None or (not entry.delivered and self._now() - entry.since >= self._pending_ttl):
            self.entries[key] = _Entry(message, delivered=True, since=self._now())
        elif entry.message.id == message.id:
            entry.message, entry.delivered = message, True  # as delivered: with its seq

    async def forget(self, sender_id: str, client_msg_id: str, message: Message) -> None:
        key = (sender_id, client_msg_id)
        entry = self.entries.get(key)
        if entry is not None and not entry.delivered and entry.message.id == message.id:
            del self.entries[key]
