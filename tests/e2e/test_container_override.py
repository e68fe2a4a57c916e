"""Swapping an adapter for a fake is one line: the running app then uses it."""
from __future__ import annotations

import json

import pytest
import tornado.httpclient
from dependency_injector import providers

from adapters.memory.repositories import MemoryUserRepository
from entrypoints.container import Container
from entrypoints.server import CourierServer
from tests.e2e.conftest import embedded_settings


@pytest.mark.gen_test(timeout=30)
async def test_the_running_app_uses_an_adapter_swapped_in_by_one_line(tmp_path):
    settings = embedded_settings(tmp_path)
    container = Container(settings=settings)
    fake_users = MemoryUserRepository()
    container.users.override(providers.Object(fake_users))  # the one line

    server = CourierServer(settings, container)
    await server.start()
    client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    try:
        response = await client.fetch(
            f"http://127.0.0.1:{server.port}/api/v1/users/register", method="POST",
            body=json.dumps({"username": "faked", "password": "password-123"}),
        )
        assert response.code == 201
        user_id = json.loads(response.body)["user_id"]
        assert [u.username for u in fake_users.by_id.values()] == ["faked"]
        assert fake_users.by_id[user_id].password_hash.startswith("$argon2id$")
    finally:
        client.close()
        await server.stop()
