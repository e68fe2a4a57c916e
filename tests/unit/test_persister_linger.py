"""The persister's linger: a batch found less than full is filled by further looks while
messages keep coming, for at most `linger`, and stored at once when a look finds nothing
(a quiet queue's message is not held for the whole linger)."""
from __future__ import annotations

import uuid

import pytest

from application import persister as persister_module
from application.persister import Persister
from domain.model import PRIVATE, Message
from tests.fakes.repositories import MemoryMessageStore


def message() -> Message:
    return Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id="a", to_user_id="b", content="hi",
                   created_at=1_700_000_000)


class ScriptedQueue:
    """Each take answers the next of `takes` (then nothing); records the counts asked."""

    def __init__(self, takes: list[int]):
        self._takes = list(takes)
        self.asked: list[int] = []
        self.acked: list[str] = []
        self._next = 0

    async def take(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, Message]]:
        self.asked.append(count)
        n = min(self._takes.pop(0), count) if self._takes else 0
        entries = [(f"0-{self._next + i}", message()) for i in range(n)]
        self._next += n
        return entries

    def acceptance_order(self, entry_id: str) -> int:
        return int(entry_id.split("-")[1])

    async def ack(self, entry_ids) -> None:
        self.acked += entry_ids


@pytest.fixture(autouse=True)
def short_steps(monkeypatch):
    monkeypatch.setattr(persister_module, "LINGER_STEP", 0.001)


@pytest.mark.gen_test
async def test_a_batch_fills_while_messages_keep_coming_up_to_the_linger():
    queue = ScriptedQueue([1, 3, 2, 4, 5, 6, 7])
    persister = Persister(queue, MemoryMessageStore(), "p", batch_size=500, linger=0.004)  # 4 steps
    assert await persister.run_once() == 1 + 3 + 2 + 4 + 5  # the first take, then four looks
    assert len(queue.asked) == 5 and len(queue.acked) == 15


@pytest.mark.gen_test
async def test_a_look_that_finds_nothing_stores_at_once():
    queue = ScriptedQueue([2, 3, 0, 9])
    persister = Persister(queue, MemoryMessageStore(), "p", batch_size=500, linger=1.0)
    assert await persister.run_once() == 5
    assert len(queue.asked) == 3  # the 9 waiting behind the empty look go in the next batch


@pytest.mark.gen_test
async def test_the_looks_stop_at_a_full_batch_and_ask_only_for_the_rest():
    queue = ScriptedQueue([4, 4, 4, 4])
    persister = Persister(queue, MemoryMessageStore(), "p", batch_size=10, linger=1.0)
    assert await persister.run_once() == 10
    assert queue.asked == [10, 6, 2]


@pytest.mark.gen_test
async def test_no_linger_takes_once():
    queue = ScriptedQueue([1, 5])
    persister = Persister(queue, MemoryMessageStore(), "p", batch_size=500, linger=0)
    assert await persister.run_once() == 1 and len(queue.asked) == 1
