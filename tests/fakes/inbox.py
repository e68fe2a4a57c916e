"""An Inbox kept in memory: the tests' fake, with the same trimming rules as the
real streams (a bounded length per user, and CursorExpired past it), and the same
confirm step of the sender's idempotency key as they take (ports.Inbox.deliver). A
message reads as its latest appended change left it (edited, or a tombstone), as the
Redis inbox's does (ports.Inbox.read)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace

from adapters.memory.bus import InProcessBus
from application.ports import Accepted, Inbox, Notification
from domain import errors
from domain.events import Appended, Delivery, Event, MessageChange
from domain.model import Message, cursor_position
from tests.fakes.conversations import MemoryConversationStore
from tests.fakes.idempotency import MemoryIdempotencyKeys


class MemoryInbox(Inbox):
    def __init__(self, bus: InProcessBus, keys: MemoryIdempotencyKeys, max_length: int = 10_000):
        self._bus = bus
        self._keys = keys
        self._max_length = max_length
        self._seq = 0
        self.conversation_seqs: dict[str, int] = {}  # conversation -> its last Message.seq
        self._streams: dict[str, list[Delivery]] = {}
        self._trimmed_up_to: dict[str, tuple[int, int]] = {}
        self.persisted: list[Message] = []  # what a persister would have been handed
        self.fail_next: Exception | None = None  # a test sets this to simulate an outage
        self.fail_reads: Exception | None = None  # every read raises this while set
        self.appended_changes: set[str] = set()
        self.changed: dict[str, Message] = {}  # message id -> the message as its latest change left it
        # The conversation list, kept as a message is stored (SqliteInbox: its transaction).
        self.conversations: MemoryConversationStore | None = None

    async def deliver(self, message: Message, recipient_ids: Sequence[str]) -> Accepted:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        key = message.client_msg_id
        if key is not None and self._keys.held_by_another(message):
            raise errors.SendSuperseded()  # a retry took the key: it delivers the message
        seq = self.conversation_seqs.get(message.conversation, 0) + 1
        self.conversation_seqs[message.conversation] = seq
        message = replace(message, seq=seq)
        cursors = self._append(message, recipient_ids)
        self.persisted.append(message)
        if self.conversations is not None:
            self.conversations.record([(message, self.conversations.now())])
        if key is not None:
            # Nothing is awaited from the check above to here: one atomic step, as in
            # the SQL transaction and the Redis script.
            self._keys.mark_delivered(message.from_user_id, key, message)
        self._bus.publish(Notification(message, cursors))
        return Accepted(message, cursors)

    async def append(self, change: Appended, recipient_ids: Sequence[str]) -> dict[str, str]:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        if change.id in self.appended_changes:
            return {}  # once per id, as the real inboxes
        self.appended_changes.add(change.id)
        if isinstance(change, MessageChange):
            self._keep_state(change.message)
        cursors = self._append(change, recipient_ids)
        self._bus.publish(Notification(change, cursors))
        return cursors

    def _keep_state(self, message: Message) -> None:
        """The latest change wins, as in changed.lua: a deletion over any edit, a later
        edit over an earlier one (a relay may append an older change after a newer one)."""
        kept = self.changed.get(message.id)
        if kept is None or _rank(kept) <= _rank(message):
            self.changed[message.id] = message

    def _as_changed(self, page: list[Delivery]) -> list[Delivery]:
        shown = []
        for delivery in page:
            event = delivery.event
            changed = self.changed.get(event.id) if isinstance(event, Message) else None
            if changed is not None:
                assert isinstance(event, Message)
                content = "" if changed.deleted_at is not None else changed.content
                event = event.with_change(content, changed.edited_at, changed.deleted_at)
                delivery = Delivery(event, delivery.cursor)
            shown.append(delivery)
        return shown

    def _append(self, event: Event, recipient_ids: Sequence[str]) -> dict[str, str]:
        cursors: dict[str, str] = {}
        for user_id in dict.fromkeys(recipient_ids):  # one entry per recipient, even if listed twice
            cursor = f"{self.next_id()}-0"
            stream = self._streams.setdefault(user_id, [])
            stream.append(Delivery(event, cursor))
            if len(stream) > self._max_length:
                dropped = stream.pop(0)
                self._trimmed_up_to[user_id] = cursor_position(dropped.cursor)
            cursors[user_id] = cursor
        return cursors

    def next_id(self) -> int:
        """The next entry id: one counter for every log here, as stream:last-id is in
        Redis; a fake group stream may take its ids from it too (tests/fakes/group_streams.py)."""
        self._seq += 1
        return self._seq

    async def read(self, user_id: str, after: str | None, limit: int) -> list[Delivery]:
        if self.fail_reads is not None:
            raise self.fail_reads
        stream = self._streams.get(user_id, [])
        if after is None:
            return self._as_changed(stream[:limit])
        position = cursor_position(after)
        trimmed = self._trimmed_up_to.get(user_id)
        if trimmed is not None and position < trimmed:
            raise errors.CursorExpired()
        page = [d for d in stream if cursor_position(d.cursor) > position][:limit]
        if not page and position > (cursor_position(stream[-1].cursor) if stream else (0, 0)):
            raise errors.CursorUnknown()
        return self._as_changed(page)

    async def last_cursor(self, user_id: str) -> str | None:
        stream = self._streams.get(user_id)
        return stream[-1].cursor if stream else None


def _rank(message: Message) -> tuple[int, int]:
    if message.deleted_at is not None:
        return 1, message.deleted_at
    return 0, message.edited_at or 0


class YieldingInbox(Inbox):
    """Wraps an inbox so that read() really yields to the event loop, as a
    networked inbox does. Tests hook into a read: each callable in
    `before_read` runs (once) after read() started and before the entries are
    read, each in `after_read` after they are read and before they are
    returned; a callable may return a coroutine, which is awaited."""

    def __init__(self, inner: Inbox) -> None:
        self.inner = inner
        self.before_read: list[Callable[[], object]] = []
        self.after_read: list[Callable[[], object]] = []
        self.reads: list[tuple[str, str | None, int]] = []

    @property
    def persisted(self) -> list[Message]:
        return self.inner.persisted

    async def deliver(self, message, recipient_ids):
        return await self.inner.deliver(message, recipient_ids)

    async def append(self, change, recipient_ids):
        return await self.inner.append(change, recipient_ids)

    async def read(self, user_id, after, limit):
        self.reads.append((user_id, after, limit))
        await self._run(self.before_read)
        page = await self.inner.read(user_id, after, limit)
        await self._run(self.after_read)
        return page

    async def last_cursor(self, user_id):
        return await self.inner.last_cursor(user_id)

    @staticmethod
    async def _run(hooks: list[Callable[[], object]]) -> None:
        await asyncio.sleep(0)
        while hooks:
            result = hooks.pop(0)()
            if asyncio.iscoroutine(result):
                await result
        await asyncio.sleep(0)


class GatedInbox(Inbox):
    """Wraps an inbox so that deliver() waits until the test opens the gate:
    `await inbox.entered.wait()` then `inbox.open()` (deliver) or
    `inbox.open(error)` (the delivery fails with it). Each deliver() waits for
    its own opening; `hold` False lets deliveries through at once again."""

    def __init__(self, inner: Inbox) -> None:
        self.inner = inner
        self.hold = True
        self.entered = asyncio.Event()  # a deliver() is waiting at the gate
        self._gates: list[asyncio.Future] = []

    @property
    def persisted(self) -> list[Message]:
        return self.inner.persisted

    @property
    def _streams(self):
        return self.inner._streams

    def open(self, error: Exception | None = None) -> None:
        gate = self._gates.pop(0)
        if error is None:
            gate.set_result(None)
        else:
            gate.set_exception(error)
        if not self._gates:
            self.entered.clear()

    async def deliver(self, message, recipient_ids):
        if self.hold:
            gate = asyncio.get_running_loop().create_future()
            self._gates.append(gate)
            self.entered.set()
            await gate
        return await self.inner.deliver(message, recipient_ids)

    async def append(self, change, recipient_ids):
        return await self.inner.append(change, recipient_ids)

    async def read(self, user_id, after, limit):
        return await self.inner.read(user_id, after, limit)

    async def last_cursor(self, user_id):
        return await self.inner.last_cursor(user_id)
