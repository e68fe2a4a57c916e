"""Whether users exist, asked of the user store at most once every `recheck` seconds
per user (an AccountCheck in front of any UserRepository).

Every authenticated request asks whether the token's user still exists; asking the
database each time would cost a query per request. A user found is taken as existing
for `recheck` seconds, so a user removed is refused within that time. Users asked
about during one turn of the loop (a thousand sockets connecting at once) are asked
of the store together. While the store cannot answer (ServiceUnavailable), users found
before are still taken as existing - a send must keep working through a database
outage - and any other is not answered (the outage goes on up to the caller: a 503).
Bounded: past `max_entries` the oldest answers are forgotten."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from adapters.memory.batched_lookup import BatchedLookup
from application.ports import AccountCheck, UserRepository
from domain.errors import ServiceUnavailable

MAX_ENTRIES = 100_000


class RecentlyCheckedAccounts(AccountCheck):
    def __init__(self, users: UserRepository, recheck: float, now: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES):
        self._users = users
        self._recheck = recheck
        self._now = now
        self._max_entries = max_entries
        self._found_at: dict[str, float] = {}
        self._lookups: BatchedLookup[str, bool] = BatchedLookup(self._ask)

    async def existing(self, user_ids: Sequence[str]) -> set[str]:
        now = self._now()
        found_at = self._found_at
        if len(user_ids) == 1:  # one request's question: the common case, answered without the sets
            found = found_at.get(user_ids[0])
            if found is not None and now - found < self._recheck:
                return {user_ids[0]}
        fresh = {u for u in user_ids if now - found_at.get(u, float("-inf")) < self._recheck}
        stale = [u for u in dict.fromkeys(user_ids) if u not in fresh]
        if not stale:
            return fresh
        try:
            answers = await self._lookups.get_many(stale)
        except ServiceUnavailable:
            if all(u in found_at for u in stale):
                return fresh | set(stale)
            raise
        for user_id in stale:
            found_at.pop(user_id, None)  # to the end, the newest, when found
            if answers[user_id]:
                found_at[user_id] = now
        while len(found_at) > self._max_entries:
            del found_at[next(iter(found_at))]
        return fresh | {u for u in stale if answers[u]}

    def known_to_exist(self, user_id: str) -> bool:
        found = self._found_at.get(user_id)
        return found is not None and self._now() - found < self._recheck

    async def _ask(self, user_ids: list[str]) -> dict[str, bool]:
        found = await self._users.existing(user_ids)
        return {user_id: user_id in found for user_id in user_ids}
