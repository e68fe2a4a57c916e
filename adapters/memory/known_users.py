"""An in-process memory of the users found, in front of any UserRepository.

Every send looks its recipient up (does this user exist?), and so do a few other
calls. A user is never deleted and never changes id or username, so a user once
found can be answered from memory for good: a send to a known recipient asks no
database and no Redis. Bounded: past `max_entries` the oldest entry is forgotten.
A password change (set_password_hash) forgets the user, so get() never answers an
old hash. Users not found are not remembered (they may register a moment later); a
user registered through this process is remembered at once."""
from __future__ import annotations

from collections.abc import Sequence

from application.ports import UserRepository
from domain.model import User

MAX_ENTRIES = 100_000


class KnownUsers(UserRepository):
    def __init__(self, inner: UserRepository, max_entries: int = MAX_ENTRIES):
        self._inner = inner
        self._known: dict[str, User] = {}
        self._max_entries = max_entries

    async def add(self, user: User) -> None:
        await self._inner.add(user)
        # Known from now on (the first send to a new user then waits on no lookup: a burst
        # of first sends had each ask Redis, at once, through a pool that had to grow).
        self._remember(user)

    async def get(self, user_id: str) -> User | None:
        user = self._known.get(user_id)
        if user is None:
            user = await self._inner.get(user_id)
            if user is not None:
                self._remember(user)
        return user

    def _remember(self, user: User) -> None:
        if user.id not in self._known and len(self._known) >= self._max_entries:
            del self._known[next(iter(self._known))]  # the oldest
        self._known[user.id] = user

    async def get_by_username(self, username: str) -> User | None:
        return await self._inner.get_by_username(username)

    async def existing(self, user_ids: Sequence[str]) -> set[str]:
        # The question is whether they exist *now*: not answered from memory.
        found = await self._inner.existing(user_ids)
        for user_id in user_ids:
            if user_id not in found:
                self._known.pop(user_id, None)  # removed since it was found: forget it
        return found

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        self._known.pop(user_id, None)
        try:
            await self._inner.set_password_hash(user_id, password_hash)
        finally:
            self._known.pop(user_id, None)  # a get() during the write may have put it back
