"""The persister's list window (application/persister.py): batches are inserted at once
without their conversation-list rows; the rows of everything saved during the window are
written together when it ends, and only then are the entries acked, so a worker that dies
in between leaves them pending (handed out again: the insert is a no-op, the rows are
written then). A failed list write acks nothing and is tried again with the same entries."""
from __future__ import annotations

import pytest

from application.persister import Persister
from domain.errors import ServiceUnavailable
from tests.fakes.repositories import MemoryMessageStore
from tests.unit.test_persister_linger import ScriptedQueue


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FailingListStore(MemoryMessageStore):
    def __init__(self, failures: int):
        super().__init__()
        self.failures = failures

    async def record_list(self, messages, order) -> None:
        if self.failures:
            self.failures -= 1
            raise ServiceUnavailable("the database is down")
        await super().record_list(messages, order)


@pytest.mark.gen_test
async def test_batches_are_stored_at_once_and_acked_with_their_list_rows_when_the_window_ends():
    queue, store, clock = ScriptedQueue([3, 4, 0, 0]), MemoryMessageStore(), Clock()
    persister = Persister(queue, store, "p", list_window=1.0, clock=clock)
    assert await persister.run_once() == 3
    assert len(store.rows) == 3 and store.listed == [] and queue.acked == []  # inserted, not yet listed
    clock.t += 0.5
    assert await persister.run_once() == 4
    assert len(store.rows) == 7 and store.listed == [] and queue.acked == []
    clock.t += 0.5  # the window since the first unlisted batch is over: a quiet look writes the rows
    assert await persister.run_once() == 0
    assert [m.id for m in store.listed] == [m.id for m in store.rows] and len(queue.acked) == 7
    assert persister.saved == 7


@pytest.mark.gen_test
async def test_a_failed_list_write_acks_nothing_and_the_same_entries_are_written_next_time():
    queue, store, clock = ScriptedQueue([2, 0, 0]), FailingListStore(failures=1), Clock()
    persister = Persister(queue, store, "p", list_window=1.0, clock=clock)
    await persister.run_once()
    clock.t += 2
    with pytest.raises(ServiceUnavailable):
        await persister.run_once()
    assert queue.acked == [] and store.listed == []
    await persister.run_once()
    assert len(queue.acked) == 2 and len(store.listed) == 2


@pytest.mark.gen_test
async def test_without_a_window_each_batch_is_stored_with_its_list_rows_and_acked():
    queue, store = ScriptedQueue([3]), MemoryMessageStore()
    persister = Persister(queue, store, "p")
    assert await persister.run_once() == 3
    assert len(store.listed) == 3 and len(queue.acked) == 3


@pytest.mark.gen_test
async def test_stopping_writes_what_is_left_before_leaving():
    import asyncio

    stop = asyncio.Event()

    class StoppingQueue(ScriptedQueue):
        left: list[str] = []

        async def take(self, consumer, count, block_ms):
            entries = await super().take(consumer, count, block_ms)
            if not entries:
                stop.set()  # the worker is told to stop while the window is still open
            return entries

        async def leave(self, consumer: str) -> bool:
            self.left.append(consumer)
            return True

    queue, store = StoppingQueue([2]), MemoryMessageStore()
    persister = Persister(queue, store, "p", list_window=60.0, clock=Clock(), block_ms=0)
    await persister.run(stop)
    assert len(store.listed) == 2 and len(queue.acked) == 2 and queue.left == ["p"]
