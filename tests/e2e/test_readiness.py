"""/readyz says a gateway is not ready while its database lacks this version's schema (a
forgotten `courier migrate`: every call that reads the database would fail), and says
why; ready once migrated."""
from __future__ import annotations

import asyncio

import pytest

from adapters.sql import migrate

pytestmark = pytest.mark.mysql


@pytest.fixture
def settings_overrides(make_mysql_database) -> dict:
    # A database of its own, never migrated; large groups off, as the embedded mode on a
    # server database runs (their streams are kept in SQLite only).
    return {"database_url": make_mysql_database(), "large_group": 0}


@pytest.mark.gen_test(timeout=60)
async def test_not_ready_until_the_database_is_migrated(api, courier):
    not_ready = await api.call("GET", "/readyz")
    assert not_ready.status == 503, not_ready
    assert "run `courier migrate`" in not_ready.body["error"]["message"], not_ready
    await asyncio.get_running_loop().run_in_executor(None, migrate.upgrade, courier.settings.database_url)
    ready = await api.call("GET", "/readyz")
    assert ready.status == 200 and ready.body["checks"]["database"] == "ok", ready
    assert (await api.register()).user_id
