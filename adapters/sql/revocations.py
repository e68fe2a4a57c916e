"""Revoked tokens in SQL (revoked_tokens, token_floors): the embedded mode's, kept in
the SQLite file so that a token logged out stays refused after a restart. One process
serves an embedded data directory, so it announces its revocations to itself."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, delete, select, update

from adapters.memory.revocation_listeners import RevocationListeners
from adapters.sql.batches import chunks
from adapters.sql.database import Database
from adapters.sql.tables import revoked_tokens, token_floors
from application.ports import Clock, TokenClaims, TokenRevocations


class SqlTokenRevocations(TokenRevocations):
    def __init__(self, db: Database, clock: Clock):
        self._db = db
        self._clock = clock
        self._listeners = RevocationListeners()

    async def revoke(self, claims: TokenClaims) -> None:
        await self._db.write(self._revoke, claims.token_id, claims.expires_at, int(self._clock.now()))
        self._listeners.announce(claims.user_id)

    @staticmethod
    def _revoke(conn: Connection, token_id: str, expires_at: int, now: int) -> None:
        with conn.begin():
            _forget_expired(conn, now)
            if expires_at > now and conn.execute(
                select(revoked_tokens.c.token_id).where(revoked_tokens.c.token_id == token_id)
            ).first() is None:
                conn.execute(revoked_tokens.insert().values(token_id=token_id, expires_at=expires_at))

    async def revoke_all(self, user_id: str, issued_before: float, until: float) -> None:
        await self._db.write(
            self._revoke_all, user_id, math.floor(issued_before * 1000), math.ceil(until), int(self._clock.now())
        )
        self._listeners.announce(user_id)

    @staticmethod
    def _revoke_all(conn: Connection, user_id: str, issued_before_ms: int, until: int, now: int) -> None:
        floor = token_floors.c
        with conn.begin():
            _forget_expired(conn, now)
            row = conn.execute(select(floor.issued_before_ms, floor.expires_at).where(floor.user_id == user_id)).first()
            if row is None:
                conn.execute(token_floors.insert().values(
                    user_id=user_id, issued_before_ms=issued_before_ms, expires_at=until))
            else:  # never narrowed: an earlier, wider revocation stands
                conn.execute(update(token_floors).where(floor.user_id == user_id).values(
                    issued_before_ms=max(row.issued_before_ms, issued_before_ms),
                    expires_at=max(row.expires_at, until),
                ))

    async def revoked(self, claims: Sequence[TokenClaims]) -> list[bool]:
        if not claims:
            return []
        return await self._db.run(self._revoked, list(claims))

    async def follow(self, on_revoked: Callable[[str | None], None]) -> None:
        await self._listeners.follow(on_revoked)

    @staticmethod
    def _revoked(conn: Connection, claims: list[TokenClaims]) -> list[bool]:
        gone: set[str] = set()
        floors: dict[str, int] = {}
        with conn.begin():
            for chunk in chunks(list({c.token_id for c in claims})):
                gone.update(conn.execute(
                    select(revoked_tokens.c.token_id).where(revoked_tokens.c.token_id.in_(chunk))).scalars())
            for chunk in chunks(list({c.user_id for c in claims})):
                floors.update(conn.execute(
                    select(token_floors.c.user_id, token_floors.c.issued_before_ms)
                    .where(token_floors.c.user_id.in_(chunk))
                ).all())
        return [c.token_id in gone or c.issued_ms < floors.get(c.user_id, -1) for c in claims]


def _forget_expired(conn: Connection, now: int) -> None:
    conn.execute(delete(revoked_tokens).where(revoked_tokens.c.expires_at <= now))
    conn.execute(delete(token_floors).where(token_floors.c.expires_at <= now))

