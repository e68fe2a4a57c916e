"""How a gateway asks whether tokens were revoked without asking the store on every
request: a memory, in front of any TokenRevocations, of the answers it had.

A token found not revoked is taken as such for `recheck` seconds, then asked about
again; so a token revoked through another gateway is refused here within `recheck`
seconds, and through this one at once (a revocation made here is remembered here). A
token found revoked stays refused: a revocation is never undone. Bounded: past
`max_entries` the oldest answers are forgotten (and asked again when needed)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from application.ports import TokenClaims, TokenRevocations

MAX_ENTRIES = 100_000


class RecentlyCheckedRevocations(TokenRevocations):
    def __init__(self, inner: TokenRevocations, recheck: float, now: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES):
        self._inner = inner
        self._recheck = recheck
        self._now = now
        self._max_entries = max_entries
        self._checked: dict[str, float | None] = {}  # token id -> when found not revoked; None: revoked
        self._floors: dict[str, int] = {}  # user id -> ms: revoked here, by revoke_all

    async def revoke(self, claims: TokenClaims) -> None:
        await self._inner.revoke(claims)
        self._remember(claims.token_id, None)

    async def revoke_all(self, user_id: str, issued_before: float, until: float) -> None:
        await self._inner.revoke_all(user_id, issued_before, until)
        ms = math.floor(issued_before * 1000)
        self._floors[user_id] = max(ms, self._floors.get(user_id, ms))
        if len(self._floors) > self._max_entries:
            del self._floors[next(iter(self._floors))]

    async def revoked(self, claims: Sequence[TokenClaims]) -> list[bool]:
        now = self._now()
        answers: list[bool | None] = []
        to_ask: list[int] = []
        floors, checked_at, recheck = self._floors, self._checked, self._recheck
        for index, c in enumerate(claims):
            floor = floors.get(c.user_id) if floors else None
            if floor is not None and c.issued_ms < floor:
                answers.append(True)
                continue
            checked = checked_at.get(c.token_id, 0.0)
            if checked is None:
                answers.append(True)
            elif checked and now - checked < recheck:
                answers.append(False)
            else:
                answers.append(None)
                to_ask.append(index)
        if to_ask:
            asked = await self._inner.revoked([claims[index] for index in to_ask])
            for index, revoked in zip(to_ask, asked, strict=True):
                answers[index] = revoked
                self._remember(claims[index].token_id, None if revoked else now)
        return [bool(answer) for answer in answers]

    def _remember(self, token_id: str, checked: float | None) -> None:
        self._checked.pop(token_id, None)  # to the end: the newest
        self._checked[token_id] = checked
        if len(self._checked) > self._max_entries:
            del self._checked[next(iter(self._checked))]
