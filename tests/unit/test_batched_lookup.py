"""BatchedLookup: what is asked during one turn of the loop goes out as one call."""
from __future__ import annotations

import asyncio

import pytest

from adapters.memory.batched_lookup import BatchedLookup


class Store:
    def __init__(self, fail: Exception | None = None):
        self.calls: list[list[str]] = []
        self.fail = fail

    async def fetch(self, keys: list[str]) -> dict[str, int]:
        self.calls.append(keys)
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return {key: len(key) for key in keys}


@pytest.mark.gen_test
async def test_lookups_of_one_turn_are_one_call_and_a_key_is_asked_once():
    store = Store()
    lookup = BatchedLookup(store.fetch)
    answers = await asyncio.gather(lookup.get_many(["a", "bb"]), lookup.get_many(["bb", "ccc"]),
                                   lookup.get_many(["a"]))
    assert answers == [{"a": 1, "bb": 2}, {"bb": 2, "ccc": 3}, {"a": 1}]
    assert store.calls == [["a", "bb", "ccc"]]
    assert await lookup.get_many(["a"]) == {"a": 1}  # a later turn asks again
    assert len(store.calls) == 2


@pytest.mark.gen_test
async def test_a_failure_reaches_every_caller_of_the_turn():
    store = Store(fail=RuntimeError("down"))
    lookup = BatchedLookup(store.fetch)
    results = await asyncio.gather(lookup.get_many(["a"]), lookup.get_many(["b"]), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    store.fail = None
    assert await lookup.get_many(["a"]) == {"a": 1}
