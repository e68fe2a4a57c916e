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
