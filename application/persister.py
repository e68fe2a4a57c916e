"""The persister: moves accepted messages from the persist queue into the
MessageStore, in batches. `courier worker` runs it (as many as needed); the
embedded mode runs it in-process.

Never losing nor doubling a message rests on three rules:
- ack only after store.save() returned (the commit): a crash in between leaves
  the entries pending, and they are handed out again;
- save is idempotent by message id, so handing an entry out again is harmless;
- on ServiceUnavailable (the database is down) keep the same batch and retry it
  with backoff, rather than take more or ack anything.
A message the store refuses for itself (not an outage) is moved aside by the
queue (kept for an operator) so it cannot block the rest: at once when the
store names it (a CourierError with details["message_ids"], e.g. the SQL
store's MessagesRejected), else after a few failed attempts.

With a `list_window`, the conversation list's state is written apart from the messages:
each batch is inserted at once (history, edits), and the list's rows for everything
inserted during the window are written together when it ends (MessageStore.record_list),
one row per conversation however many of its messages came, and only then are the
entries acked. A message whose list row is not written yet is still pending, so a worker
that dies in between leaves it to be handed out again: its insert is then no-op, and its
list row is written by whoever takes it (the list only moves forward, so a second write
changes nothing). The list trails the messages by at most the window."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence

from application.ports import MessageStore, PersistQueue
from domain.errors import CourierError, ServiceUnavailable
from domain.model import Message

log = logging.getLogger("courier.persister")

Entry = tuple[str, Message]

LINGER_STEP = 0.05  # seconds between two looks for more while a batch fills (Persister's linger)
# With a list window: at most this many batches saved and not yet acked before the list
# rows are written whatever the window says (they are retried, not taken anew).
LIST_CAP = 20


class StoreRefused(Exception):
    """Some messages of the batch were refused by the store; they are kept for a retry."""


def default_consumer_name() -> str:
    # Unique per process, and stable enough to read in XINFO CONSUMERS.
    return f"{socket.gethostname()}-{os.getpid()}"


class Persister:
    def __init__(
        self,
        queue: PersistQueue,
        store: MessageStore,
        consumer: str | None = None,
        batch_size: int = 500,
        *,
        block_ms: int = 1000,
        linger: float = 0.0,
        max_attempts: int = 5,
        min_backoff: float = 0.2,
        max_backoff: float = 30.0,
        list_window: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._queue = queue
        self._store = store
        self.consumer = consumer or default_consumer_name()
        self._batch_size = batch_size
        self._block_ms = block_ms
        # When a take brings less than a full batch, look again every LINGER_STEP seconds
        # for what came meanwhile, for at most `linger` seconds, and stop at the first look
        # that brings nothing: a batch costs the same round trips and commit whatever its
        # size, so at a steady rate few larger batches cost far less than many small, while
        # a lone message (a quiet queue) waits one step only.
        self._linger = linger
        self._max_attempts = max_attempts
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._list_window = list_window
        self._clock = clock
        self._unsaved: list[Entry] = []  # taken but not yet saved: retried before taking more
        # Saved, their list rows not yet written (list_window): acked once they are.
        self._unlisted: list[Entry] = []
        self._unlisted_since = 0.0
        self._attempts: dict[str, int] = {}  # entry id -> refusals by the store
        self.saved = 0  # messages stored and acked, for metrics

    async def run_once(self) -> int:
        """Store one batch and ack it; returns how many messages were stored.
        Raises ServiceUnavailable (queue or store down) or StoreRefused; the
        unsaved entries are kept and retried by the next call."""
        if len(self._unlisted) >= LIST_CAP * self._batch_size:
            await self._write_list()  # a store that keeps failing: nothing more is taken
        if not self._unsaved:
            self._unsaved = await self._queue.take(self.consumer, self._batch_size, self._block_ms)
            await self._linger_for_more()
        if not self._unsaved:
            await self._write_list_when_due()
            return 0
        entries = self._unsaved
        try:
            await self._store.save([message for _, message in entries], self._order_of(entries),
                                   with_list=not self._list_window)
        except ServiceUnavailable:
            raise
        except Exception as e:
            refused = _named_refusals(e) & {message.id for _, message in entries}
            if refused:
                return await self._settle_refused(entries, refused, e)
            log.exception("the store refused a batch of %d messages; saving them one by one", len(entries))
            return await self._save_one_by_one(entries)
        await self._saved(entries)
        await self._write_list_when_due()
        return len(entries)

    async def _saved(self, entries: Sequence[Entry]) -> None:
        """Inserted: acked now, or once their list rows are written (list_window)."""
        if not self._list_window:
            await self._queue.ack([entry_id for entry_id, _ in entries])
            self.saved += len(entries)
        else:
            if not self._unlisted:
                self._unlisted_since = self._clock()
            self._unlisted.extend(entries)
        self._done(entries)

    async def _write_list_when_due(self) -> None:
        if self._unlisted and self._clock() - self._unlisted_since >= self._list_window:
            await self._write_list()

    async def _write_list(self) -> None:
        """The list rows of every message saved since the last write, then their acks.
        On failure nothing is acked and the same entries are written next time."""
        entries = self._unlisted
        if not entries:
            return
        await self._store.record_list([message for _, message in entries], self._order_of(entries))
        await self._queue.ack([entry_id for entry_id, _ in entries])
        self._unlisted = []
        self.saved += len(entries)

    async def _linger_for_more(self) -> None:
        waited = 0.0
        while self._unsaved and len(self._unsaved) < self._batch_size and waited < self._linger:
            step = min(LINGER_STEP, self._linger - waited)
            await asyncio.sleep(step)
            waited += step
            # self._unsaved already holds what was taken: a failure here keeps it.
            more = await self._queue.take(self.consumer, self._batch_size - len(self._unsaved), 0)
            if not more:
                return  # nothing came during a whole step: the queue is quiet, store now
            self._unsaved = self._unsaved + more

    def _order_of(self, entries: Sequence[Entry]) -> list[int]:
        return [self._queue.acceptance_order(entry_id) for entry_id, _ in entries]

    async def _settle_refused(self, entries: Sequence[Entry], refused: set[str], error: Exception) -> int:
        """The store said exactly which messages it refuses for good (details["message_ids"],
        e.g. an unknown sender) and that it stored all the others: retrying cannot help,
        so the refused ones go aside at once and the rest is acked."""
        stored = [entry for entry in entries if entry[1].id not in refused]
        rejected = [entry for entry in entries if entry[1].id in refused]
        log.error("the store refuses %d messages for good; moving them aside: %s",
                  len(rejected), [message.id for _, message in rejected])
        await self._queue.reject([entry_id for entry_id, _ in rejected], f"refused by the store: {error}")
        self._done(rejected)
        if stored:
            await self._saved(stored)  # stored as the batch was asked: with or without its list rows
        return len(stored)

    async def run(self, stop_event: asyncio.Event) -> None:
        """Persist until stop_event is set. Any failure waits with a capped, doubling
        backoff before the next try, so an outage never turns into a busy loop."""
        backoff = self._min_backoff
        log.info("persister %s started", self.consumer)
        while not stop_event.is_set():
            try:
                await self.run_once()
                backoff = self._min_backoff
                continue
            except ServiceUnavailable as e:
                log.warning("persister waiting %.1f s: %s (%d messages kept for a retry)",
                            backoff, e, len(self._unsaved))
            except StoreRefused as e:
                log.warning("persister waiting %.1f s: %s", backoff, e)
            except Exception:
                log.exception("persister failed; retrying in %.1f s", backoff)
            await _wait(stop_event, backoff)
            backoff = min(backoff * 2, self._max_backoff)
        try:
            await self._write_list()
        except Exception as e:  # noqa: BLE001 - left pending: handed out again, written then
            log.warning("persister %s stops with %d list rows unwritten: %r", self.consumer, len(self._unlisted), e)
        await self._leave()
        log.info("persister %s stopped", self.consumer)

    async def _leave(self) -> None:
        """Stopping for good: the queue forgets this consumer, unless it still holds
        entries (kept then, and claimed by another persister after claim_idle)."""
        if self._unsaved or self._unlisted:
            return
        try:
            await self._queue.leave(self.consumer)
        except Exception as e:  # noqa: BLE001 - a stop must not fail on housekeeping
            log.warning("persister %s could not leave the queue: %r", self.consumer, e)

    async def _save_one_by_one(self, entries: Sequence[Entry]) -> int:
        saved: list[Entry] = []
        refused: list[Entry] = []
        try:
            for entry_id, message in entries:
                try:
                    await self._store.save([message], self._order_of([(entry_id, message)]))
                    saved.append((entry_id, message))
                except ServiceUnavailable:
                    raise
                except Exception as e:  # noqa: BLE001 - counted, then moved aside below
                    log.error("the store refused message %s (entry %s): %r", message.id, entry_id, e)
                    refused.append((entry_id, message))
        finally:
            # Whatever happens next, what was committed is acked, and the rest kept.
            if saved:
                await self._queue.ack([entry_id for entry_id, _ in saved])
                self._done(saved)
                self.saved += len(saved)
            done = {entry_id for entry_id, _ in saved}
            self._unsaved = [entry for entry in entries if entry[0] not in done]
        given_up = []
        for entry_id, _ in refused:
            self._attempts[entry_id] = self._attempts.get(entry_id, 0) + 1
            if self._attempts[entry_id] >= self._max_attempts:
                given_up.append(entry_id)
        if given_up:
            await self._queue.reject(given_up, f"refused by the store {self._max_attempts} times")
            log.error("moved %d messages the store keeps refusing aside: %s", len(given_up), given_up)
            self._done([entry for entry in refused if entry[0] in given_up])
        if self._unsaved:
            raise StoreRefused(f"{len(self._unsaved)} messages refused by the store; retrying")
        return len(saved)

    def _done(self, entries: Sequence[Entry]) -> None:
        gone = {entry_id for entry_id, _ in entries}
        self._unsaved = [entry for entry in self._unsaved if entry[0] not in gone]
        for entry_id in gone:
            self._attempts.pop(entry_id, None)


def _named_refusals(error: Exception) -> set[str]:
    """Ids of the messages a store refuses for good, when it says so."""
    if isinstance(error, CourierError):
        return set(error.details.get("message_ids") or ())
    return set()


async def _wait(stop_event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop_event.wait(), timeout=seconds)
    except TimeoutError:
        pass
