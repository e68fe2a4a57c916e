"""COURIER_REDIS_URL set and COURIER_DATABASE_URL left out: production mode on the
default SQLite file in the data directory. `courier serve` migrates it, as it does in
embedded mode (it answered 503 to every call that reads the database, while /readyz
said ready)."""
from __future__ import annotations

import pytest

from tests.e2e.support import with_settings


@with_settings(database_url="")
@pytest.mark.gen_test(timeout=30)
async def test_serve_migrates_the_default_sqlite_file_in_either_mode(api, courier):
    assert courier.settings.resolved_database_url().startswith("sqlite:///")
    a, b = await api.register(), await api.register()
    sent = await api.send(a, b, "on the default file")
    assert sent.status == 201, sent
    page = await api.history(b, f"/conversations/{a.user_id}")  # settles the persister first
    assert page.status == 200 and [m["id"] for m in page.body["messages"]] == [sent.body["id"]], page
    assert (await api.call("GET", "/readyz")).status == 200
