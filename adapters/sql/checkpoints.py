"""The embedded mode's CursorCheckpoints (docs/design/large-groups.md, sections 3.4 and 8),
in the table cursor_checkpoints, with the Redis adapter's rules (adapters/redis/
checkpoints.py): a user keeps at most `ring` checkpoints (saving one drops those a ring
before it) for `ttl` seconds; a checkpoint that is gone, or an id never handed out,
answers CursorExpired (410).

Ids grow per user and are never handed out twice: the next is one above the user's newest
row, and a user with no row left (all expired) starts again from the clock in
milliseconds, above every id the rows that expired had. SQLite has one writer, so two
saves never take the same id.

The same positions saved again answer the checkpoint that keeps them, while it is kept,
and its time starts again (as the Redis adapter: a resume repeated must not push the
user's other checkpoints out of the ring). A checkpoint read with more than half of its
time gone is kept for another whole TTL (as the Redis adapter; one write per half TTL)."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from sqlalchemy import Connection, delete, func, insert, select, update

from adapters.sql.database import Database
from adapters.sql.messages import MAX_SEQ
from adapters.sql.tables import cursor_checkpoints
from application.ports import CursorCheckpoints
from domain import errors
from domain.cursor import Position, stream_id
from domain.model import cursor_position

RING = 64
TTL = 14 * 24 * 3600  # COURIER_CURSOR_CHECKPOINT_TTL
SWEEP_EVERY = 1000  # saves between two deletions of every user's expired checkpoints


class SqliteCursorCheckpoints(CursorCheckpoints):
    def __init__(self, db: Database, *, ttl: int = TTL, ring: int = RING, clock: Callable[[], float] = time.time):
        self._db = db
        self._ttl = int(ttl)
        self._ring = ring
        self._clock = clock
        self._saves = 0

    async def save(self, user_id: str, groups: Mapping[int, Position]) -> int:
        vector = ",".join(f"{stream}={stream_id(position)}" for stream, position in sorted(groups.items()))
        self._saves += 1
        return await self._db.write(self._save, user_id, vector, self._saves % SWEEP_EVERY == 1)

    def _save(self, conn: Connection, user_id: str, vector: str, sweep: bool) -> int:
        now = self._clock()
        row = cursor_checkpoints.c
        with conn.begin():
            # The user's expired rows go first, so that "no row left" means a new counter.
            conn.execute(delete(cursor_checkpoints).where(row.user_id == user_id, row.created_at < now - self._ttl))
            newest = conn.execute(select(func.max(row.id)).where(row.user_id == user_id)).scalar()
            same = conn.execute(select(row.id).where(row.user_id == user_id, row.vector == vector)
                                .order_by(row.id.desc()).limit(1)).scalar()
            if same is not None:
                conn.execute(update(cursor_checkpoints).where(row.user_id == user_id, row.id == same)
                             .values(created_at=int(now)))
                return same
            checkpoint = newest + 1 if newest is not None else int(now * 1000)
            conn.execute(insert(cursor_checkpoints).values(user_id=user_id, id=checkpoint, vector=vector,
                                                           created_at=int(now)))
            conn.execute(delete(cursor_checkpoints).where(row.user_id == user_id, row.id <= checkpoint - self._ring))
            if sweep:  # users who never save again
                conn.execute(delete(cursor_checkpoints).where(row.created_at < now - self._ttl))
        return checkpoint

    async def load(self, user_id: str, checkpoint: int) -> dict[int, Position]:
        kept = None
        if 0 <= checkpoint <= MAX_SEQ:  # a larger one was never handed out (nor fits the column)
            kept = await self._db.run(self._load, user_id, checkpoint)
        if kept is None:
            raise errors.CursorExpired("the cursor's checkpoint is no longer kept; use the history calls")
        vector, created_at = kept
        if created_at < self._clock() - self._ttl / 2:  # read with more than half of its time gone
            await self._db.write(self._keep, user_id, checkpoint)
        return {int(stream): cursor_position(position)
                for stream, position in (part.split("=") for part in vector.split(",") if part)}

    def _load(self, conn: Connection, user_id: str, checkpoint: int) -> tuple[str, int] | None:
        row = cursor_checkpoints.c
        with conn.begin():
            found = conn.execute(select(row.vector, row.created_at).where(
                row.user_id == user_id, row.id == checkpoint, row.created_at >= self._clock() - self._ttl)).first()
        return None if found is None else (found.vector, found.created_at)

    def _keep(self, conn: Connection, user_id: str, checkpoint: int) -> None:
        row = cursor_checkpoints.c
        with conn.begin():
            conn.execute(update(cursor_checkpoints).where(row.user_id == user_id, row.id == checkpoint)
                         .values(created_at=int(self._clock())))
