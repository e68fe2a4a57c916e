"""Users in SQL (users table)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, exc, false, insert, select, update

from adapters.sql.batches import chunks
from adapters.sql.database import Database
from adapters.sql.tables import users
from application.ports import PresencePreferences, ReceiptPreferences, UserRepository
from domain import errors
from domain.model import User, normalised_username_key, username_key


def utcnow() -> datetime:
    """Naive UTC with microseconds: what the DATETIME(6) columns hold."""
    return datetime.now(UTC).replace(tzinfo=None)


def _user(row) -> User | None:
    return User(id=row.id, username=row.username, password_hash=row.password_hash) if row else None


class SqlUserRepository(UserRepository):
    """Both keys of a name are unique columns (see domain.model): a registration that
    loses a race to a look-alike one fails on the index, atomically. A name is looked up
    by its spelling (username_key) first: an account registered before look-alikes were
    refused, whose normalised_key is NULL, is found so. Only then by normalised_key."""

    def __init__(self, db: Database):
        self._db = db

    async def add(self, user: User) -> None:
        await self._db.write(self._add, user)

    @staticmethod
    def _add(conn: Connection, user: User) -> None:
        key, normalised = username_key(user.username), normalised_username_key(user.username)
        try:
            with conn.begin():
                conn.execute(
                    insert(users).values(
                        id=user.id,
                        username=user.username,
                        username_key=key,
                        normalised_key=normalised,
                        password_hash=user.password_hash,
                        created_at=utcnow(),
                    )
                )
        except exc.IntegrityError:
            # Which constraint failed? Asking is portable; parsing driver messages is not.
            with conn.begin():
                taken = conn.execute(
                    select(users.c.id).where((users.c.username_key == key) | (users.c.normalised_key == normalised))
                ).first()
            if taken is not None:
                raise errors.UsernameTaken() from None
            raise

    async def get(self, user_id: str) -> User | None:
        return await self._db.run(self._get, users.c.id == user_id)

    async def get_by_username(self, username: str) -> User | None:
        return await self._db.run(self._get_by_username, username_key(username), normalised_username_key(username))

    @staticmethod
    def _get(conn: Connection, condition) -> User | None:
        with conn.begin():
            return _user(conn.execute(select(users).where(condition)).first())

    async def add_many(self, new: Sequence[User], per_statement: int = 5000) -> None:
        """Many users at once, `per_statement` rows per insert and transaction (seeding:
        `courier seed-channel`; no rate limit, no hashing, no look-alike check beyond the
        unique keys). A name taken raises UsernameTaken; the statements before it stand."""
        rows = list(new)
        for start in range(0, len(rows), per_statement):
            await self._db.write(self._add_many, rows[start:start + per_statement])

    @staticmethod
    def _add_many(conn: Connection, new: list[User]) -> None:
        now = utcnow()
        try:
            with conn.begin():
                conn.execute(insert(users), [
                    dict(id=user.id, username=user.username, username_key=username_key(user.username),
                         normalised_key=normalised_username_key(user.username), password_hash=user.password_hash,
                         created_at=now)
                    for user in new
                ])
        except exc.IntegrityError:
            raise errors.UsernameTaken() from None

    async def existing(self, user_ids: Sequence[str]) -> set[str]:
        return await self._db.run(self._existing, list(user_ids))

    @staticmethod
    def _existing(conn: Connection, user_ids: list[str]) -> set[str]:

        found: set[str] = set()
        with conn.begin():
            for chunk in chunks(user_ids):
                found.update(conn.execute(select(users.c.id).where(users.c.id.in_(chunk))).scalars())
        return found

    @staticmethod
    def _get_by_username(conn: Connection, key: str, normalised: str) -> User | None:
        with conn.begin():
            row = conn.execute(select(users).where(users.c.username_key == key)).first()
            if row is None:
                row = conn.execute(select(users).where(users.c.normalised_key == normalised)).first()
            return _user(row)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._db.write(self._set_password_hash, user_id, password_hash)

    @staticmethod
    def _set_password_hash(conn: Connection, user_id: str, password_hash: str) -> None:
        with conn.begin():
            conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


class SqlReceiptPreferences(ReceiptPreferences):
    """users.send_read_receipts, read at each read marker (no cache: see the port)."""

    def __init__(self, db: Database):
        self._db = db

    async def sends_receipts(self, user_id: str) -> bool:
        return await self._db.run(self._sends_receipts, user_id)

    @staticmethod
    def _sends_receipts(conn: Connection, user_id: str) -> bool:
        with conn.begin():
            value = conn.execute(select(users.c.send_read_receipts).where(users.c.id == user_id)).scalar()
        return value is None or bool(value)

    async def set_sends_receipts(self, user_id: str, value: bool) -> None:
        await self._db.write(self._set_sends_receipts, user_id, value)

    @staticmethod
    def _set_sends_receipts(conn: Connection, user_id: str, value: bool) -> None:
        with conn.begin():
            conn.execute(update(users).where(users.c.id == user_id).values(send_read_receipts=value))


class SqlPresencePreferences(PresencePreferences):
    """users.show_presence, read where a status leaves for others (a change, a
    subscription's answer): never cached, so hiding holds at once."""

    def __init__(self, db: Database):
        self._db = db

    async def hidden_among(self, user_ids: Sequence[str]) -> set[str]:
        if not user_ids:
            return set()
        return await self._db.run(self._hidden_among, list(user_ids))

    @staticmethod
    def _hidden_among(conn: Connection, user_ids: list[str]) -> set[str]:
        with conn.begin():
            rows = conn.execute(select(users.c.id).where(users.c.id.in_(user_ids), users.c.show_presence == false()))
            return {row[0] for row in rows}

    async def set_shows_presence(self, user_id: str, value: bool) -> None:
        await self._db.write(self._set_shows_presence, user_id, value)

    @staticmethod
    def _set_shows_presence(conn: Connection, user_id: str, value: bool) -> None:
        with conn.begin():
            conn.execute(update(users).where(users.c.id == user_id).values(show_presence=value))
