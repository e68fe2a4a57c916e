"""How a gateway asks whether tokens were revoked without asking the store on every
request: a memory, in front of any TokenRevocations, of the answers it had.

A token found not revoked is taken as such until a revocation of one of its user's
tokens is announced (follow(): the memory of that user is dropped at once), or at most
`recheck` seconds - a backstop should an announcement ever be lost without the
follower noticing. A token found revoked stays refused: a revocation is never undone.
Tokens asked about during one turn of the loop (a thousand sockets connecting at
once) are asked of the store together. Bounded: past `max_entries` the oldest answers
are forgotten (and asked again when needed)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from adapters.memory.batched_lookup import BatchedLookup
from application.ports import TokenClaims, TokenRevocations

MAX_ENTRIES = 100_000


class RecentlyCheckedRevocations(TokenRevocations):
    def __init__(self, inner: TokenRevocations, recheck: float, now: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES):
        self._inner = inner
        self._recheck = recheck
        self._now = now
        self._max_entries = max_entries
        # token id -> (its user, when found not revoked; None: revoked)
        self._checked: dict[str, tuple[str, float | None]] = {}
        self._tokens_of: dict[str, set[str]] = {}  # user id -> the ids of its tokens in _checked
        self._floors: dict[str, int] = {}  # user id -> ms: revoked here, by revoke_all
        self._lookups: BatchedLookup[TokenClaims, bool] = BatchedLookup(self._ask)

    async def revoke(self, claims: TokenClaims) -> None:
        await self._inner.revoke(claims)
        self._remember(claims, None)

    async def revoke_all(self, user_id: str, issued_before: float, until: float) -> None:
        await self._inner.revoke_all(user_id, issued_before, until)
        ms = math.floor(issued_before * 1000)
        self._floors[user_id] = max(ms, self._floors.get(user_id, ms))
        if len(self._floors) > self._max_entries:
            del self._floors[next(iter(self._floors))]

    async def revoked(self, claims: Sequence[TokenClaims]) -> list[bool]:
        now = self._now()
        answers: list[bool | None] = []
        to_ask: list[TokenClaims] = []
        floors, checked, recheck = self._floors, self._checked, self._recheck
        for c in claims:
            floor = floors.get(c.user_id) if floors else None
            if floor is not None and c.issued_ms < floor:
                answers.append(True)
                continue
            entry = checked.get(c.token_id)
            if entry is not None and (entry[1] is None or now - entry[1] < recheck):
                answers.append(entry[1] is None)
            else:
                answers.append(None)
                to_ask.append(c)
        if to_ask:
            asked = await self._lookups.get_many(to_ask)
            for c in to_ask:
                self._remember(c, None if asked[c] else now)
            found = iter(asked[c] for c in to_ask)
            answers = [next(found) if answer is None else answer for answer in answers]
        return [bool(answer) for answer in answers]

    def known(self, claims: TokenClaims) -> bool | None:
        floors = self._floors
        if floors:
            floor = floors.get(claims.user_id)
            if floor is not None and claims.issued_ms < floor:
                return True
        entry = self._checked.get(claims.token_id)
        if entry is None:
            return None
        if entry[1] is None:
            return True
        return False if self._now() - entry[1] < self._recheck else None

    async def _ask(self, claims: list[TokenClaims]) -> dict[TokenClaims, bool]:
        return dict(zip(claims, await self._inner.revoked(claims), strict=True))

    async def follow(self, on_revoked: Callable[[str | None], None]) -> None:
        def forget_then_tell(user_id: str | None) -> None:
            self._forget(user_id)
            on_revoked(user_id)

        await self._inner.follow(forget_then_tell)

    def _forget(self, user_id: str | None) -> None:
        """A token of `user_id` was revoked somewhere (None: of anyone, maybe): what was
        found not revoked must be asked again. What was found revoked stays so."""
        if user_id is None:
            stale = [t for t, entry in self._checked.items() if entry[1] is not None]
        else:
            stale = [t for t in self._tokens_of.get(user_id, ()) if self._checked[t][1] is not None]
        for token_id in stale:
            self._drop(token_id)

    def _remember(self, claims: TokenClaims, checked: float | None) -> None:
        self._drop(claims.token_id)  # then added at the end: the newest
        self._checked[claims.token_id] = (claims.user_id, checked)
        self._tokens_of.setdefault(claims.user_id, set()).add(claims.token_id)
        if len(self._checked) > self._max_entries:
            self._drop(next(iter(self._checked)))

    def _drop(self, token_id: str) -> None:
        entry = self._checked.pop(token_id, None)
        if entry is not None:
            tokens = self._tokens_of[entry[0]]
            tokens.discard(token_id)
            if not tokens:
                del self._tokens_of[entry[0]]
