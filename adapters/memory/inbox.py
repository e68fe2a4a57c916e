"""An Inbox kept in memory: the unit tests' fake, with the same trimming rules
as the real streams (a bounded length per user, and CursorExpired past it)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from adapters.memory.bus import InProcessBus
from application.ports import Accepted, Inbox, Notification
from domain import errors
from domain.model import Delivery, Message, cursor_position


class MemoryInbox(Inbox):
    def __init__(self, bus: InProcessBus, max_length: int = 10_000):
        self._bus = bus
        self._max_length = max_length
        self._seq = 0
        self.conversation_seqs: dict[str, int] = {}  # conversation -> its last Message.seq
        self._streams: dict[str, list[Delivery]] = {}
        self._trimmed_up_to: dict[str, tuple[int, int]] = {}
        self.persisted: list[Message] = []  # what a persister would have been handed
        self.fail_next: Exception | None = None  # a test sets this to simulate an outage
        self.fail_reads: Exception | None = None  # every read raises this while set

    async def deliver(self, message: Message, recipient_ids: Sequence[str]) -> Accepted:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        seq = self.conversation_seqs.get(message.conversation, 0) + 1
        self.conversation_seqs[message.conversation] = seq
        message = replace(message, seq=seq)
        cursors: dict[str, str] = {}
        for user_id in recipient_ids:
            self._seq += 1
            cursor = f"{self._seq}-0"
            stream = self._streams.setdefault(user_id, [])
            stream.append(Delivery(message, cursor))
            if len(stream) > self._max_length:
                dropped = stream.pop(0)
                self._trimmed_up_to[user_id] = cursor_position(dropped.cursor)
            cursors[user_id] = cursor
        self.persisted.append(message)
        self._bus.publish(Notification(message, cursors))
        return Accepted(message, cursors)

    async def read(self, user_id: str, after: str | None, limit: int) -> list[Delivery]:
        if self.fail_reads is not None:
            raise self.fail_reads
        stream = self._streams.get(user_id, [])
        if after is None:
            return stream[:limit]
        position = cursor_position(after)
        trimmed = self._trimmed_up_to.get(user_id)
        if trimmed is not None and position < trimmed:
            raise errors.CursorExpired()
        page = [d for d in stream if cursor_position(d.cursor) > position][:limit]
        if not page and position > (cursor_position(stream[-1].cursor) if stream else (0, 0)):
            raise errors.CursorUnknown()
        return page

    async def last_cursor(self, user_id: str) -> str | None:
        stream = self._streams.get(user_id)
        return stream[-1].cursor if stream else None
