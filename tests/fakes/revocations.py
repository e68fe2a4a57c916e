"""Revoked tokens kept in process memory: the unit tests' fake of TokenRevocations
(the embedded mode keeps them in its SQLite file, production in Redis)."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from adapters.memory.revocation_listeners import RevocationListeners
from application.ports import Clock, TokenClaims, TokenRevocations


class MemoryTokenRevocations(TokenRevocations):
    def __init__(self, clock: Clock):
        self._clock = clock
        self._tokens: dict[str, int] = {}  # token id -> when it expires
        self._floors: dict[str, tuple[int, float]] = {}  # user id -> (issued before, in ms; until)
        self._listeners = RevocationListeners()

    async def revoke(self, claims: TokenClaims) -> None:
        self._forget_expired()
        if claims.expires_at > self._clock.now():
            self._tokens[claims.token_id] = claims.expires_at
        self._listeners.announce(claims.user_id)

    async def revoke_all(self, user_id: str, issued_before: float, until: float) -> None:
        self._forget_expired()
        floor, last = self._floors.get(user_id, (-1, until))
        self._floors[user_id] = (max(floor, math.floor(issued_before * 1000)), max(last, until))
        self._listeners.announce(user_id)

    async def revoked(self, claims: Sequence[TokenClaims]) -> list[bool]:
        self._forget_expired()
        return [c.token_id in self._tokens or c.issued_ms < self._floors.get(c.user_id, (-1, 0))[0] for c in claims]

    async def follow(self, on_revoked: Callable[[str | None], None]) -> None:
        await self._listeners.follow(on_revoked)

    def _forget_expired(self) -> None:
        now = self._clock.now()
        self._tokens = {t: expires for t, expires in self._tokens.items() if expires > now}
        self._floors = {u: floor for u, floor in self._floors.items() if floor[1] > now}
