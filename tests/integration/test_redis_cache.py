"""RedisCachedUserRepository and RedisCachedGroupRepository against a real Redis (one,
and the cluster: the same key names, a group's two keys share its hash tag), in front of
the SQL repositories on SQLite and MariaDB: hits, misses, what is stored and for how
long, invalidation on membership changes, and what happens when either side is down."""
from __future__ import annotations

import asyncio
import logging
import uuid

import orjson
import pytest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.redis import cache
from adapters.redis.cache import (
    NO_PASSWORD_HASH,
    RedisCachedGroupRepository,
    RedisCachedUserRepository,
    generation_key,
    group_key,
    user_key,
)
from adapters.sql.groups import SqlGroupRepository
from adapters.sql.users import SqlUserRepository
from domain import errors
from domain.model import Group, User
from tests.services.redis import make_client

pytestmark = pytest.mark.redis


def new_id() -> str:
    return str(uuid.uuid4())


class Inner:
    """The SQL repository, counting the calls that reach it; `down` makes them
    fail as a repository fails when its database is down."""

    def __init__(self, repository):
        self.repository = repository
        self.calls: list[str] = []
        self.down = False

    def __getattr__(self, name):
        method = getattr(self.repository, name)

        async def call(*args):
            self.calls.append(name)
            if self.down:
                raise errors.ServiceUnavailable("the database is down")
            return await method(*args)

        return call


@pytest.fixture(params=["single", "cluster"])
def redis_client(request, io_loop):
    """The cache's Redis: the claimed database of one Redis, or the local cluster (emptied)."""
    if request.param == "cluster":
        yield request.getfixturevalue("redis_cluster_target").client
        return
    client = make_client(request.getfixturevalue("redis_url"))
    yield client
    io_loop.run_sync(client.aclose)


@pytest.fixture
def sql_users(db) -> Inner:
    return Inner(SqlUserRepository(db))


@pytest.fixture
def sql_groups(db) -> Inner:
    return Inner(SqlGroupRepository(db))


@pytest.fixture
def users(sql_users, redis_client) -> RedisCachedUserRepository:
    return RedisCachedUserRepository(sql_users, redis_client)


@pytest.fixture
def groups(sql_groups, redis_client) -> RedisCachedGroupRepository:
    return RedisCachedGroupRepository(sql_groups, redis_client)


async def add_users(users, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        user = User(id=new_id(), username="u" + uuid.uuid4().hex[:12], password_hash="$argon2id$secret")
        await users.add(user)
        ids.append(user.id)
    return ids


# --- users ---------------------------------------------------------------------

@pytest.mark.gen_test
async def test_existing_asks_the_database_and_forgets_users_it_no_longer_has(sql_users, users, redis_client):
    kept, removed = await add_users(users, 2)
    await users.get(removed)  # cached
    await sql_users.repository._db.write(_delete_user, removed)  # an operator removes it
    assert await users.existing([kept, removed]) == {kept}
    assert sql_users.calls[-1] == "existing"
    assert await redis_client.get(user_key(removed)) is None
    assert await users.get(removed) is None


@pytest.mark.gen_test
async def test_existing_is_answered_by_the_cache_while_the_database_is_down(sql_users, users):
    (cached,), never_seen = await add_users(users, 1), new_id()
    sql_users.down = True
    assert await users.existing([cached, never_seen]) == {cached}


def _delete_user(conn, user_id: str) -> None:
    from sqlalchemy import delete

    from adapters.sql.tables import users as users_table

    with conn.begin():
        conn.execute(delete(users_table).where(users_table.c.id == user_id))


@pytest.mark.gen_test
async def test_a_user_is_read_through_then_served_from_the_cache_without_its_password_hash(
        sql_users, users, redis_client):
    user = User(id=new_id(), username="Alice", password_hash="$argon2id$secret")
    await sql_users.repository.add(user)  # behind the cache's back: not cached yet

    first = await users.get(user.id)  # a miss: read from SQL, stored
    assert first == User(id=user.id, username="Alice", password_hash=NO_PASSWORD_HASH)
    assert sql_users.calls == ["get"]
    stored = orjson.loads(await redis_client.get(user_key(user.id)))
    assert stored == {"id": user.id, "username": "Alice"}  # never the hash
    assert 23 * 3600 < await redis_client.ttl(user_key(user.id)) <= 24 * 3600

    assert await users.get(user.id) == first  # a hit: SQL is not asked
    assert sql_users.calls == ["get"]


@pytest.mark.gen_test
async def test_add_writes_through_once_the_database_has_the_user(sql_users, users, redis_client):
    user = User(id=new_id(), username="Bob", password_hash="$argon2id$secret")
    await users.add(user)
    assert orjson.loads(await redis_client.get(user_key(user.id))) == {"id": user.id, "username": "Bob"}
    assert await redis_client.ttl(user_key(user.id)) > 0
    assert (await users.get(user.id)).username == "Bob"
    assert sql_users.calls == ["add"]

    taken = User(id=new_id(), username="BOB", password_hash="h")
    with pytest.raises(errors.UsernameTaken):
        await users.add(taken)
    assert await redis_client.exists(user_key(taken.id)) == 0  # refused by the database: not cached


@pytest.mark.gen_test
async def test_an_unknown_user_is_not_cached(sql_users, users, redis_client):
    missing = new_id()
    assert await users.get(missing) is None
    assert await redis_client.exists(user_key(missing)) == 0
    await sql_users.repository.add(User(id=missing, username="late", password_hash="h"))
    assert (await users.get(missing)).username == "late"


@pytest.mark.gen_test
async def test_logging_in_reads_the_database_with_its_hash(sql_users, users):
    user = User(id=new_id(), username="Carol", password_hash="$argon2id$old")
    await users.add(user)
    assert await users.get_by_username("carol") == user
    await users.set_password_hash(user.id, "$argon2id$new")
    assert (await users.get_by_username("CAROL")).password_hash == "$argon2id$new"
    assert (await users.get(user.id)).password_hash == NO_PASSWORD_HASH
    assert sql_users.calls == ["add", "get_by_username", "set_password_hash", "get_by_username"]


@pytest.mark.gen_test
async def test_with_the_database_down_a_cached_user_is_served_and_an_uncached_one_is_503(sql_users, users):
    known, unknown = await add_users(sql_users.repository, 2)
    await users.get(known)
    sql_users.down = True
    assert (await users.get(known)).id == known
    with pytest.raises(errors.ServiceUnavailable):
        await users.get(unknown)


@pytest.mark.gen_test
async def test_with_redis_down_users_come_from_the_database_and_warnings_are_rate_limited(
        sql_users, down_client, caplog):
    users = RedisCachedUserRepository(sql_users, down_client)
    caplog.set_level(logging.WARNING, logger="courier.redis.cache")
    user = User(id=new_id(), username="Dave", password_hash="$argon2id$secret")
    await users.add(user)  # the database has it; the cache could not be written
    for _ in range(5):
        assert await users.get(user.id) == User(id=user.id, username="Dave", password_hash=NO_PASSWORD_HASH)
    assert await users.get(new_id()) is None
    assert sql_users.calls.count("get") == 6
    warnings = [r for r in caplog.records if r.name == "courier.redis.cache"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "user cache skipped" in warnings[0].getMessage()


@pytest.mark.gen_test
async def test_an_unreadable_entry_is_skipped(sql_users, users, redis_client):
    (user_id,) = await add_users(sql_users.repository, 1)
    await redis_client.set(user_key(user_id), b"not json")
    assert (await users.get(user_id)).id == user_id


# --- groups --------------------------------------------------------------------

@pytest.mark.gen_test
async def test_a_group_is_read_through_then_served_from_the_cache(sql_users, sql_groups, groups, redis_client):
    owner, b, c = await add_users(sql_users.repository, 3)
    group = Group(id=new_id(), name="team ✓", owner_id=owner, member_ids=[owner, c, b])
    await sql_groups.repository.add(group)

    assert await groups.get(group.id) == group  # a miss: members in join order
    assert sql_groups.calls == ["get"]
    assert orjson.loads(await redis_client.get(group_key(group.id))) == {
        "id": group.id, "name": "team ✓", "owner_id": owner, "member_ids": [owner, c, b],
        "kind": "group", "stream": None, "member_count": 3, "member_version": 0}  # the large-group fields too
    assert 3500 < await redis_client.ttl(group_key(group.id)) <= 3600

    assert await groups.get(group.id) == group  # a hit
    assert sql_groups.calls == ["get"]
    assert await groups.get(new_id()) is None  # not found: not cached
    # SCAN: KEYS asks one node of a cluster, SCAN each of them.
    assert [key async for key in redis_client.scan_iter("cache:group:*")] == [group_key(group.id).encode()]


@pytest.mark.gen_test
async def test_a_large_group_is_cached_with_its_stream_and_counts(db, sql_users, redis_client):
    """The cache keeps what the send path decides on (design, section 4.1): the stream
    number, the count and the version; a record cached by the version before them reads
    as a small group whose count is its member list's."""
    owner, b, c = await add_users(sql_users.repository, 3)
    groups = RedisCachedGroupRepository(SqlGroupRepository(db, large_group=2), redis_client)
    group = Group(id=new_id(), name="big", owner_id=owner, member_ids=[owner, b])
    assert await groups.add(group) is None
    switch = await groups.add_member(group.id, c)
    assert switch is not None
    read = await groups.get(group.id)  # a miss, then cached
    cached = await groups.get(group.id)  # a hit
    assert cached == read
    assert (cached.stream, cached.member_count, cached.member_version) == (switch.stream, 3, 1)
    await redis_client.set(group_key(group.id), orjson.dumps({"id": group.id, "name": "big", "owner_id": owner,
                                                              "member_ids": [owner, b]}))
    old = await groups.get(group.id)
    assert (old.stream, old.kind, old.member_count, old.member_version) == (None, "group", 2, 0)


@pytest.mark.gen_test
async def test_a_new_group_is_written_through(sql_users, sql_groups, groups):
    owner, b = await add_users(sql_users.repository, 2)
    group = Group(id=new_id(), name="new", owner_id=owner, member_ids=[owner, b])
    await groups.add(group)
    assert await groups.get(group.id) == group
    assert sql_groups.calls == ["add"]


@pytest.mark.gen_test
async def test_membership_changes_invalidate_the_entry(sql_users, sql_groups, groups, redis_client):
    owner, b, c = await add_users(sql_users.repository, 3)
    group = Group(id=new_id(), name="g", owner_id=owner, member_ids=[owner, b])
    await groups.add(group)
    assert (await groups.get(group.id)).member_ids == [owner, b]

    await groups.add_member(group.id, c)
    assert await redis_client.exists(group_key(group.id)) == 0
    assert (await groups.get(group.id)).member_ids == [owner, b, c]  # read through again
    assert await redis_client.exists(group_key(group.id)) == 1

    await groups.remove_member(group.id, owner, b)  # the owner leaves; b takes over
    after = await groups.get(group.id)
    assert (after.owner_id, after.member_ids) == (b, [b, c])
    assert sql_groups.calls.count("get") == 2  # add wrote through; each change cost one read
    assert 0 < await redis_client.ttl(generation_key(group.id)) <= cache.GENERATION_TTL

    with pytest.raises(errors.AlreadyAMember):  # a change the database refuses still invalidates
        await groups.add_member(group.id, c)
    assert (await groups.get(group.id)).member_ids == [b, c]


@pytest.mark.gen_test
async def test_a_read_racing_a_change_never_caches_the_old_members(sql_users, sql_groups, groups, redis_client):
    owner, b, c = await add_users(sql_users.repository, 3)
    group = Group(id=new_id(), name="g", owner_id=owner, member_ids=[owner, b])
    await sql_groups.repository.add(group)
    read_done, change_done = asyncio.Event(), asyncio.Event()
    real_get = sql_groups.repository.get

    async def slow_get(group_id):
        found = await real_get(group_id)  # the old members...
        read_done.set()
        await change_done.wait()  # ...returned only after the change was made
        return found

    sql_groups.repository.get = slow_get
    reader = asyncio.ensure_future(groups.get(group.id))
    await read_done.wait()
    await groups.add_member(group.id, c)
    change_done.set()
    assert (await reader).member_ids == [owner, b]  # that request saw the group as it read it
    assert await redis_client.exists(group_key(group.id)) == 0  # but did not cache it
    sql_groups.repository.get = real_get
    assert (await groups.get(group.id)).member_ids == [owner, b, c]


@pytest.mark.gen_test
async def test_with_the_database_down_a_cached_group_is_served_and_an_uncached_one_is_503(
        sql_users, sql_groups, groups):
    owner, b = await add_users(sql_users.repository, 2)
    cached = Group(id=new_id(), name="warm", owner_id=owner, member_ids=[owner, b])
    cold = Group(id=new_id(), name="cold", owner_id=owner, member_ids=[owner])
    await sql_groups.repository.add(cached)
    await sql_groups.repository.add(cold)
    await groups.get(cached.id)
    sql_groups.down = True
    assert await groups.get(cached.id) == cached
    with pytest.raises(errors.ServiceUnavailable):
        await groups.get(cold.id)
    with pytest.raises(errors.ServiceUnavailable):
        await groups.list_for_member(owner, None, 50)  # passes through


@pytest.mark.gen_test
async def test_with_redis_down_groups_are_read_from_the_database_and_are_not_changed(
        sql_users, sql_groups, down_client):
    groups = RedisCachedGroupRepository(sql_groups, down_client)
    owner, b, c = await add_users(sql_users.repository, 3)
    group = Group(id=new_id(), name="g", owner_id=owner, member_ids=[owner, b])
    await groups.add(group)  # creating one needs no invalidation
    assert await groups.get(group.id) == group
    assert await groups.get(group.id) == group
    assert sql_groups.calls == ["add", "get", "get"]
    assert [g.id for g in (await groups.list_for_member(b, None, 50)).groups] == [group.id]
    # A change that could not be invalidated could leave a removed member receiving
    # the group's messages from a stale entry: refused before the database is touched.
    with pytest.raises(errors.ServiceUnavailable):
        await groups.add_member(group.id, c)
    with pytest.raises(errors.ServiceUnavailable):
        await groups.remove_member(group.id, b, None)
    assert (await sql_groups.repository.get(group.id)).member_ids == [owner, b]


@pytest.mark.gen_test
async def test_an_unreadable_group_entry_is_skipped(sql_users, sql_groups, groups, redis_client):
    (owner,) = await add_users(sql_users.repository, 1)
    group = Group(id=new_id(), name="g", owner_id=owner, member_ids=[owner])
    await sql_groups.repository.add(group)
    await redis_client.set(group_key(group.id), orjson.dumps({"id": group.id}))
    assert await groups.get(group.id) == group


@pytest.mark.gen_test(timeout=30)
async def test_after_redis_failed_a_call_the_cache_is_left_alone_for_a_while(sql_users, sql_groups, private_redis):
    """A hung Redis makes a cache call wait its socket timeout before it is skipped: the
    calls that follow within OUTAGE_PAUSE go straight to the database instead."""
    client = make_client(private_redis.url, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    users = RedisCachedUserRepository(sql_users, client)
    groups = RedisCachedGroupRepository(sql_groups, client)
    owner, member = await add_users(sql_users.repository, 2)
    group = Group(id=new_id(), name="g", owner_id=owner, member_ids=[owner, member])
    await sql_groups.repository.add(group)
    loop = asyncio.get_running_loop()
    private_redis.freeze()
    try:
        started = loop.time()
        assert (await users.get(owner)).id == owner  # waits the timeout, then the database
        assert loop.time() - started >= 0.5
        started = loop.time()
        for _ in range(5):
            assert (await users.get(member)).id == member
        assert loop.time() - started < 0.4  # no call waited for Redis
        assert await groups.get(group.id) == group  # the groups' cache waits once too
        started = loop.time()
        for _ in range(5):
            assert await groups.get(group.id) == group
        assert loop.time() - started < 0.4  # no call waited for Redis
    finally:
        private_redis.thaw()
        await client.aclose()
