"""`courier seed-channel`: a broadcast channel of N members, for benchmarks and trials
(docs/design/large-groups.md, section 9). The members are new users, written in bulk
(one password hash shared by all: hashing 100,000 passwords is not what is measured);
the channel is made and filled through the use cases: `ManageGroups.create` (kind
"channel") and `ManageGroups.add_members`, 1,000 per transaction, each batch one member
version, one announcement and, in production, one change of the channel's Redis stream."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from adapters.sql.database import is_sqlite
from adapters.sql.migrate import upgrade
from domain.model import User, validate_username
from entrypoints.container import Container, shutdown
from entrypoints.settings import PRODUCTION, Settings

USERS_PER_STATEMENT = 5000


@dataclass
class Seeded:
    group_id: str
    owner_id: str
    owner: str  # its username; every member's is prefix + a number of six digits
    members: int  # the owner included
    prefix: str
    password: str
    seconds: float

    def public(self) -> dict:
        return dict(self.__dict__)


def member_name(prefix: str, number: int) -> str:
    return f"{prefix}{number:06d}"


async def seed_channel(settings: Settings, members: int, password: str, prefix: str | None = None,
                       name: str = "seeded channel") -> Seeded:
    """A channel of `members` members (its owner, `prefix`-owner, and members-1 others,
    `prefix`000001 ...), all with `password`. A SQLite database is migrated first, as
    `courier serve` does; a server database must have been migrated (`courier migrate`)."""
    if members < 1:
        raise ValueError("a channel has at least its owner")
    prefix = prefix if prefix is not None else "s" + uuid.uuid4().hex[:8] + "-"
    for longest in (prefix + "owner", member_name(prefix, members)):
        validate_username(longest)  # every name fits, or none is written
    if is_sqlite(settings.resolved_database_url()):
        upgrade(settings.resolved_database_url())
    began = time.monotonic()
    container = Container(settings=settings)
    try:
        if settings.mode == PRODUCTION:
            await container.bucket_count().record()  # as `courier serve` does, but no waiting: a one-shot tool
        password_hash = await container.hasher().hash(password)
        ids = container.ids()
        owner = User(ids.new_id(), prefix + "owner", password_hash)
        others = [User(ids.new_id(), member_name(prefix, i), password_hash) for i in range(1, members)]
        await container.sql_users().add_many([owner, *others], USERS_PER_STATEMENT)
        manage = container.manage_groups()
        channel = await manage.create(owner.id, name, [], kind="channel")
        await manage.add_members(owner.id, channel.id, [user.id for user in others])
    finally:
        await shutdown(container)
    return Seeded(channel.id, owner.id, owner.username, members, prefix, password, time.monotonic() - began)
