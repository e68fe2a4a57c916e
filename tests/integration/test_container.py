"""The container picks the production adapters from settings alone: users and
groups read through the Redis cache in production (plain SQL in embedded mode),
and COURIER_WORKER_CLAIM_IDLE reaches the persist queue."""
from __future__ import annotations

import pytest

from adapters.memory.known_users import KnownUsers
from adapters.redis.cache import RedisCachedGroupRepository, RedisCachedUserRepository
from adapters.sql.groups import SqlGroupRepository
from adapters.sql.users import SqlUserRepository
from entrypoints import settings as settings_module
from entrypoints.container import Container
from entrypoints.settings import SettingsError


def container_for(tmp_path, **environ) -> Container:
    environ = {"COURIER_DATA_DIR": str(tmp_path / "data"), **environ}
    return Container(settings=settings_module.load(environ=environ))


def close(container: Container) -> None:
    container.database().close()


def test_production_reads_users_and_groups_through_the_redis_cache(tmp_path):
    container = container_for(tmp_path, COURIER_REDIS_URL="redis://127.0.0.1:1/0", COURIER_JWT_SECRET="s" * 32,
                              COURIER_DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}")
    try:
        assert isinstance(container.users(), KnownUsers)
        assert isinstance(container.users()._inner, RedisCachedUserRepository)
        assert isinstance(container.groups(), RedisCachedGroupRepository)
        assert container.send_private().users is container.users()
        assert container.send_group().groups is container.groups()
    finally:
        close(container)


def test_embedded_keeps_the_sql_repositories(tmp_path):
    container = container_for(tmp_path)
    try:
        assert type(container.users()._inner) is SqlUserRepository  # behind KnownUsers
        assert type(container.groups()._inner) is SqlGroupRepository  # behind CachedGroups
    finally:
        close(container)


def test_worker_claim_idle_is_a_setting_in_seconds(tmp_path):
    default = container_for(tmp_path, COURIER_REDIS_URL="redis://127.0.0.1:1/0")
    assert default.persist_queue()._claim_idle_ms == 30_000
    fast = container_for(tmp_path, COURIER_REDIS_URL="redis://127.0.0.1:1/0", COURIER_WORKER_CLAIM_IDLE="0.5")
    assert fast.persist_queue()._claim_idle_ms == 500
    with pytest.raises(SettingsError):
        settings_module.load(environ={"COURIER_WORKER_CLAIM_IDLE": "0"})


@pytest.mark.gen_test
async def test_shutdown_closes_what_was_made_each_before_what_it_depends_on(tmp_path, monkeypatch):
    from entrypoints.container import shutdown

    container = container_for(tmp_path)
    closed: list[str] = []
    inbox, database = container.inbox(), container.database()
    container.send_private()  # made without anything to close
    for name, adapter in (("inbox", inbox), ("database", database)):
        real_close = adapter.close

        def close(real_close=real_close, name=name):
            closed.append(name)
            return real_close()

        monkeypatch.setattr(adapter, "close", close)
    await shutdown(container)
    assert closed == ["inbox", "database"]  # the hasher was never made: nothing to close
    assert container.closing() == []


# -- the Redis client: one Redis, or a Redis Cluster (issue 19) ----------------------------


@pytest.mark.gen_test
async def test_one_redis_gets_a_blocking_pool_and_the_default_buckets(tmp_path):
    import redis.asyncio as aioredis

    from entrypoints.container import REDIS_POOL_SIZE, shutdown

    container = container_for(tmp_path, COURIER_REDIS_URL="redis://127.0.0.1:1/0")
    client = container.redis()
    assert type(client) is aioredis.Redis
    assert isinstance(client.connection_pool, aioredis.BlockingConnectionPool)
    assert client.connection_pool.max_connections == REDIS_POOL_SIZE
    assert container.buckets().count == 256
    assert container.group_streams()._cluster is None
    assert container.seq_counters()._keys is None
    await shutdown(container)


@pytest.mark.gen_test
async def test_a_cluster_url_gets_a_cluster_client_with_every_node_and_the_same_timeouts(tmp_path):
    from redis.asyncio.cluster import RedisCluster

    from entrypoints.container import REDIS_POOL_SIZE, shutdown

    container = container_for(
        tmp_path, COURIER_REDIS_URL="rediss+cluster://courier:pw@10.0.0.1:7000,10.0.0.2:7001?ssl_cert_reqs=none",
        COURIER_REDIS_BUCKETS="1024")
    client = container.redis()  # nothing connects before the first command
    assert type(client) is RedisCluster
    assert sorted(node.name for node in client.startup_nodes) == ["10.0.0.1:7000", "10.0.0.2:7001"]
    node = client.startup_nodes[0]
    assert node.max_connections == REDIS_POOL_SIZE  # per node
    options = node.connection_kwargs
    timeouts = ("socket_timeout", "socket_connect_timeout", "health_check_interval")
    assert tuple(options[name] for name in timeouts) == (5, 2, 15)
    assert (options["username"], options["password"], options["ssl_cert_reqs"]) == ("courier", "pw", "none")
    assert node.connection_class.__name__ == "SSLConnection"
    assert not client.maint_notifications_config or not client.maint_notifications_config.enabled
    assert container.buckets().count == 1024
    assert container.bucket_count().count == 1024
    # The adapters shared with one Redis get the cluster's key layout (its buckets'), one
    # Redis's get none (their own key names).
    keys = container.cluster_keys()
    assert container.group_streams()._cluster._keys is keys
    assert container.seq_counters()._keys is keys
    assert container.mark_read().counters._keys is keys
    await shutdown(container)


@pytest.mark.parametrize("how", ["url", "flag"])
@pytest.mark.gen_test(timeout=30)
async def test_the_container_talks_to_the_local_cluster(tmp_path, redis_cluster, how):
    from redis.asyncio.cluster import RedisCluster

    from adapters.redis.deployment import BUCKETS_KEY
    from entrypoints.container import shutdown

    ports = redis_cluster.ports
    environ = ({"COURIER_REDIS_URL": f"redis+cluster://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"} if how == "url"
               else {"COURIER_REDIS_URL": redis_cluster.url, "COURIER_REDIS_CLUSTER": "1"})
    container = container_for(tmp_path, COURIER_JWT_SECRET="s" * 32, **environ)
    client = container.redis()
    assert type(client) is RedisCluster
    try:
        await client.delete(BUCKETS_KEY)
        assert await container.bucket_count().record() == 256
        assert len(client.get_primaries()) == 3
        # A key on each master (their buckets' tags spread over every slot range).
        buckets = container.buckets()
        keys = [f"courier-test:{buckets.tag(bucket)}:container" for bucket in range(0, 256, 32)]
        assert len({client.get_node_from_key(key).name for key in keys}) == 3
        for key in keys:
            await client.set(key, key, ex=60)
        assert await client.mget_nonatomic(keys) == [key.encode() for key in keys]
        await client.delete(*keys, BUCKETS_KEY)
    finally:
        await shutdown(container)


@pytest.mark.parametrize("cluster", [False, True])
@pytest.mark.gen_test
async def test_presence_and_the_socket_caps_are_spread_over_the_buckets_on_a_cluster_only(
        tmp_path, monkeypatch, cluster):
    """One Redis keeps one store and one counter (its key names); a cluster gets one of each
    per user bucket (adapters/redis/bucketed_presence.py, bucketed_sockets.py), the counter
    still closed at shutdown. Nothing connects."""
    from adapters.redis.bucketed_presence import BucketedPresenceStore
    from adapters.redis.bucketed_sockets import BucketedConnectionCounter
    from adapters.redis.connection_counter import RedisConnectionCounter
    from adapters.redis.presence_store import RedisPresenceStore
    from entrypoints.container import shutdown

    url = "redis+cluster://10.0.0.1:7000,10.0.0.2:7001" if cluster else "redis://127.0.0.1:1/0"
    container = container_for(tmp_path, COURIER_REDIS_URL=url, COURIER_REDIS_BUCKETS="64",
                              COURIER_JWT_SECRET="s" * 32, COURIER_DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}")
    store, counter = container.presence_store(), container.sockets_per_user()
    if cluster:
        assert type(store) is BucketedPresenceStore and type(counter) is BucketedConnectionCounter
        assert store._buckets is counter._buckets is container.buckets()
        assert store._buckets.count == 64
    else:
        assert type(store) is RedisPresenceStore and type(counter) is RedisConnectionCounter
        assert store.keys.gateways == "presence:gateways" and counter.gateways_key == "ws:gateways"
    assert container.presence_tracker()._store is store and container.admit_socket().per_user is counter
    closed: list[object] = []

    async def close() -> None:
        closed.append(counter)

    monkeypatch.setattr(counter, "close", close)
    await shutdown(container)
    assert closed == [counter]
