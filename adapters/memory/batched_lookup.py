"""Lookups made during one turn of the event loop, asked of the store together.

A thousand sockets connecting at once each ask whether their token was revoked and
whether their user exists: one question each would be a thousand round trips to
Redis or the database. Here each key's answer is a future; the keys asked during one
turn go out as one call of `fetch` (keys -> {key: answer}) at the end of the turn, and
a key already on its way is not asked twice."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BatchedLookup(Generic[K, V]):
    def __init__(self, fetch: Callable[[list[K]], Awaitable[dict[K, V]]]):
        self._fetch = fetch
        self._waiting: dict[K, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()

    async def get_many(self, keys: Sequence[K]) -> dict[K, V]:
        futures = [self._future_of(key) for key in dict.fromkeys(keys)]
        answers = await asyncio.gather(*futures)
        return dict(zip(dict.fromkeys(keys), answers, strict=True))

    def _future_of(self, key: K) -> asyncio.Future:
        future = self._waiting.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            if not self._waiting:
                loop.call_soon(self._send)
            future = self._waiting[key] = loop.create_future()
        return future

    def _send(self) -> None:
        waiting, self._waiting = self._waiting, {}
        task = asyncio.ensure_future(self._answer(waiting))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, waiting: dict[K, asyncio.Future]) -> None:
        try:
            answers = await self._fetch(list(waiting))
        except asyncio.CancelledError:
            for future in waiting.values():
                future.cancel()
            raise
        except Exception as error:
            for future in waiting.values():
                if not future.done():
                    future.set_exception(error)
            return
        for key, future in waiting.items():
            if not future.done():
                future.set_result(answers[key])
