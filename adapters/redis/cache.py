"""Read-through caches in Redis in front of the SQL user and group repositories,
so a send (which looks its recipient or its group up) keeps working while MySQL
is down: the message waits in stream:persist, and the worker stores it once
MySQL is back. Decorators: each wraps an inner repository and implements the
same port, so the use cases never know.

- A hit is served from Redis; a miss reads the inner repository and stores the
  answer with a TTL. What the inner repository does not find is not cached.
- Redis down (or answering garbage) never fails a request: the cache is skipped
  and the inner repository answers (a warning is logged, at most every few
  seconds). After an outage the cache is left alone for OUTAGE_PAUSE seconds, so
  a hung Redis costs one socket timeout, not one per call. MySQL down on a miss:
  the inner repository's ServiceUnavailable (503).

Users: only what get()'s callers use is cached - id and username, never the
password hash (Redis is not where the credentials live). get() therefore always
answers a User whose password_hash is NO_PASSWORD_HASH, hit or miss, so nothing
can come to depend on it working only while the cache is cold: a check against
it fails closed. Logging in reads get_by_username(), which is not cached. A user
is never renamed or deleted, so the entry cannot go stale; the TTL (a day) keeps
Redis from holding every user ever seen.

Groups: the group (name, owner, members in join order) on get(). Members and
owner change, so a change invalidates: a generation counter per group is bumped
and the entry deleted, once before the SQL write and once after it. A reader
that missed notes the generation before reading SQL and stores what it read
only if the generation is unchanged (one Lua script), so a read racing a change
can never put the old membership back. The bump before the write must succeed:
with Redis down a membership change answers 503 rather than leave a removed
member receiving the group's messages from a stale entry (in production every
send needs Redis anyway). Should the bump after the write fail, the TTL (an
hour) bounds how long a reader that raced it may be served the old members.
A change that fails (the database down) drops the entry all the same, since it
cannot tell whether the database took it: that group's sends then wait for the
database. list_for_member() passes through (not on the send path).

On a Redis Cluster the keys are the same: a user's entry is one key (a batch of them is
read by support.get_many, one MGET per slot), and a group's entry and generation share
the group's hash tag, so its script and its MULTI stay in one slot."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from adapters.redis.support import get_many, text, unavailable
from application.ports import (
    Announcement,
    GroupPage,
    GroupPosition,
    GroupRepository,
    GroupSwitch,
    MemberChange,
    UserRepository,
)
from domain.errors import ServiceUnavailable
from domain.model import KIND_GROUP, Group, User

log = logging.getLogger("courier.redis.cache")

USER_TTL = 24 * 3600
GROUP_TTL = 3600
GENERATION_TTL = 7 * 24 * 3600  # far longer than any read of the inner repository
WARN_EVERY = 10.0  # seconds between two warnings that the cache is skipped
OUTAGE_PAUSE = 5.0  # seconds the cache is left alone after Redis failed a call of it

# shadow(5)'s "no password": never a valid argon2 hash, so verifying against it fails.
NO_PASSWORD_HASH = "!"

# KEYS: the entry, the group's generation. ARGV: the generation read before the
# inner repository was ("" when there was none), the value, its TTL in seconds.
_STORE_IF_UNCHANGED = """
local generation = redis.call('GET', KEYS[2]) or ''
if generation ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

# Errors that make a cache operation skip the cache: an outage (ServiceUnavailable
# from support.unavailable), any other refusal of Redis, a value that is not ours.
_SKIPPED = (ServiceUnavailable, RedisError, ValueError, KeyError, TypeError)


class _Skips:
    """Counts the cache's skips and warns of them at most every WARN_EVERY seconds.
    After an outage (Redis down, or hung: each call waits its socket timeout before
    it is skipped) the cache is left alone for OUTAGE_PAUSE seconds (`paused`): the
    calls meanwhile go straight to the database instead of waiting in turn."""

    def __init__(self, what: str):
        self._what = what
        self._last = float("-inf")
        self._skipped = 0
        self._paused_until = float("-inf")

    @property
    def paused(self) -> bool:
        return time.monotonic() < self._paused_until

    def __call__(self, action: str, error: BaseException) -> None:
        self._skipped += 1
        now = time.monotonic()
        if isinstance(error, ServiceUnavailable):
            self._paused_until = now + OUTAGE_PAUSE
        if now - self._last >= WARN_EVERY:
            log.warning("%s cache skipped (%s; %d times since the last warning): %r",
                        self._what, action, self._skipped, error)
            self._last = now
            self._skipped = 0


def user_key(user_id: str) -> str:
    return f"cache:user:{user_id}"


def group_key(group_id: str) -> str:
    # One hash tag for the entry and its generation: a Lua script touches both.
    return f"cache:group:{{{group_id}}}"


def generation_key(group_id: str) -> str:
    return f"cache:group:{{{group_id}}}:generation"


def _public_user(user: User) -> User:
    return User(id=user.id, username=user.username, password_hash=NO_PASSWORD_HASH)


class RedisCachedUserRepository(UserRepository):
    def __init__(self, inner: UserRepository, client: aioredis.Redis, ttl_seconds: int = USER_TTL):
        self._inner = inner
        self._client = client
        self._ttl = int(ttl_seconds)
        self._skipped = _Skips("user")

    async def add(self, user: User) -> None:
        await self._inner.add(user)
        await self._store(user)  # write-through, once the database has it

    async def get(self, user_id: str) -> User | None:
        if not self._skipped.paused:
            try:
                with unavailable("user cache"):
                    raw = await self._client.get(user_key(user_id))
                if raw is not None:
                    record = orjson.loads(raw)
                    return User(id=record["id"], username=record["username"], password_hash=NO_PASSWORD_HASH)
            except _SKIPPED as e:
                self._skipped("read", e)
        user = await self._inner.get(user_id)  # ServiceUnavailable when the database is down: a 503
        if user is None:
            return None
        await self._store(user)
        return _public_user(user)

    async def get_by_username(self, username: str) -> User | None:
        return await self._inner.get_by_username(username)  # logging in: the hash must be the database's

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._inner.set_password_hash(user_id, password_hash)  # the hash is not cached

    async def existing(self, user_ids: Sequence[str]) -> set[str]:
        """The database's answer; the users it no longer has leave the cache. With the
        database down, the cache answers (what a send would take for granted anyway)."""
        try:
            found = await self._inner.existing(user_ids)
        except ServiceUnavailable:
            return await self._cached(user_ids)
        gone = [user_key(user_id) for user_id in user_ids if user_id not in found]
        if gone and not self._skipped.paused:
            try:
                with unavailable("user cache"):
                    await self._client.delete(*gone)
            except _SKIPPED as e:
                self._skipped("delete", e)
        return found

    async def _cached(self, user_ids: Sequence[str]) -> set[str]:
        if not user_ids or self._skipped.paused:
            raise ServiceUnavailable("neither the database nor the user cache can answer")
        with unavailable("user cache"):
            values = await get_many(self._client, [user_key(user_id) for user_id in user_ids])
        return {user_id for user_id, value in zip(user_ids, values, strict=True) if value is not None}

    async def _store(self, user: User) -> None:
        if self._skipped.paused:
            return
        value = orjson.dumps({"id": user.id, "username": user.username})
        try:
            with unavailable("user cache"):
                await self._client.set(user_key(user.id), value, ex=self._ttl)
        except _SKIPPED as e:
            self._skipped("write", e)


class RedisCachedGroupRepository(GroupRepository):
    def __init__(self, inner: GroupRepository, client: aioredis.Redis, ttl_seconds: int = GROUP_TTL):
        self._inner = inner
        self._client = client
        self._ttl = int(ttl_seconds)
        self._store_script = client.register_script(_STORE_IF_UNCHANGED)
        self._skipped = _Skips("group")

    async def add(self, group: Group, announce: Announcement | None = None) -> GroupSwitch | None:
        generation = await self._generation(group.id)
        switch = await self._inner.add(group, announce)
        if generation is not None and switch is None:
            # Write-through, unless a change came first (or the group became large: its
            # stream number is the store's to give; the next read caches it).
            await self._store(group, generation)
        return switch

    async def get(self, group_id: str) -> Group | None:
        generation = None  # None: do not store what is read now
        if not self._skipped.paused:
            try:
                with unavailable("group cache"):
                    async with self._client.pipeline(transaction=False) as pipe:
                        pipe.get(group_key(group_id))
                        pipe.get(generation_key(group_id))
                        raw, generation = await pipe.execute()
                if raw is not None:
                    record = orjson.loads(raw)
                    return _group_of(record)
                generation = _text(generation)
            except _SKIPPED as e:
                self._skipped("read", e)
                generation = None  # a change may not have invalidated
        group = await self._inner.get(group_id)
        if group is not None and generation is not None:
            await self._store(group, generation)
        return group

    async def list_for_member(self, user_id: str, before: GroupPosition | None, limit: int) -> GroupPage:
        return await self._inner.list_for_member(user_id, before, limit)

    async def add_member(self, group_id: str, user_id: str, announce: Announcement | None = None,
                         invited: bool = False) -> GroupSwitch | MemberChange | None:
        await self._invalidate(group_id, required=True)
        try:
            return await self._inner.add_member(group_id, user_id, announce, invited)
        finally:
            await self._invalidate(group_id, required=False)

    async def add_members(self, group_id: str, user_ids: Sequence[str],
                          announce: Announcement | None = None) -> GroupSwitch | MemberChange | None:
        await self._invalidate(group_id, required=True)
        try:
            return await self._inner.add_members(group_id, user_ids, announce)
        finally:
            await self._invalidate(group_id, required=False)

    async def invite(self, group_id: str, user_id: str, invited_by: str,
                     announce: Announcement | None = None) -> bool:
        return await self._inner.invite(group_id, user_id, invited_by, announce)  # the group is unchanged

    async def rename(self, group_id: str, name: str, announce: Announcement | None = None) -> None:
        await self._invalidate(group_id, required=True)
        try:
            await self._inner.rename(group_id, name, announce)
        finally:
            await self._invalidate(group_id, required=False)

    async def remove_member(self, group_id: str, user_id: str, new_owner_id: str | None,
                            announce: Announcement | None = None) -> MemberChange | None:
        await self._invalidate(group_id, required=True)
        try:
            return await self._inner.remove_member(group_id, user_id, new_owner_id, announce)
        finally:
            await self._invalidate(group_id, required=False)

    # --- internals ----------------------------------------------------------
    async def _generation(self, group_id: str) -> str | None:
        """The group's generation now ("" for none), or None when Redis cannot say."""
        if self._skipped.paused:
            return None
        try:
            with unavailable("group cache"):
                return _text(await self._client.get(generation_key(group_id)))
        except _SKIPPED as e:
            self._skipped("read", e)
            return None

    async def _store(self, group: Group, generation: str) -> None:
        value = orjson.dumps({"id": group.id, "name": group.name, "owner_id": group.owner_id,
                              "member_ids": list(group.member_ids), "kind": group.kind, "stream": group.stream,
                              "member_count": group.member_count, "member_version": group.member_version})
        try:
            with unavailable("group cache"):
                await self._store_script(keys=[group_key(group.id), generation_key(group.id)],
                                         args=[generation, value, self._ttl])
        except _SKIPPED as e:
            self._skipped("write", e)

    async def _invalidate(self, group_id: str, required: bool) -> None:
        """Bump the generation and drop the entry. `required`: raise ServiceUnavailable
        when Redis cannot (before a change); else log and rely on the TTL (after one)."""
        try:
            with unavailable("group cache"):
                async with self._client.pipeline(transaction=True) as pipe:
                    pipe.incr(generation_key(group_id))
                    pipe.expire(generation_key(group_id), GENERATION_TTL)
                    pipe.delete(group_key(group_id))
                    await pipe.execute()
        except _SKIPPED as e:
            if required:
                raise ServiceUnavailable("redis is unavailable (group cache): membership cannot change") from e
            log.warning("group %s changed but its cache entry was not invalidated (it expires within %d s): %r",
                        group_id, self._ttl, e)


def _text(value: bytes | str | None) -> str:
    return "" if value is None else text(value)


def _group_of(record: dict) -> Group:
    """A cached group; one cached by the version before large groups is a small one."""
    return Group(id=record["id"], name=record["name"], owner_id=record["owner_id"],
                 member_ids=list(record["member_ids"]), kind=record.get("kind", KIND_GROUP),
                 stream=record.get("stream"), member_count=record.get("member_count", -1),
                 member_version=record.get("member_version", 0))
