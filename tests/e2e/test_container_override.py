"""Swapping an adapter for a fake is one line: the running app then uses it."""
from __future__ import annotations

import json
import logging

import pytest
import tornado.httpclient
from dependency_injector import providers

from entrypoints.container import Container
from entrypoints.server import CourierServer
from tests.e2e.conftest import embedded_settings
from tests.fakes.repositories import MemoryUserRepository


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


CURSED_ID = "00000000-0000-4000-8000-00000000dead"


class _BrokenLookups(MemoryUserRepository):
    """Fails the lookup of one user id with a fault of its own."""

    async def get(self, user_id: str):
        if user_id == CURSED_ID:
            raise RuntimeError("disk on fire: SECRET-DETAIL")
        return await super().get(user_id)


@pytest.mark.gen_test(timeout=30)
async def test_an_unexpected_fault_is_a_plain_500_logged_and_counted(tmp_path, caplog):
    """Both answer paths (the fast private send and every RequestHandler) tell the client
    nothing of the fault, log it with its traceback, and count it as internal_error."""
    settings = embedded_settings(tmp_path)
    container = Container(settings=settings)
    container.users.override(providers.Object(_BrokenLookups()))
    server = CourierServer(settings, container)
    await server.start()
    client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    base = f"http://127.0.0.1:{server.port}"

    async def call(method, path, body=None, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await client.fetch(base + path, method=method, headers=headers, raise_error=False,
                                   body=None if body is None else json.dumps(body))

    try:
        alice = {"username": "alice", "password": "password-123"}
        assert (await call("POST", "/api/v1/users/register", alice)).code == 201
        token = json.loads((await call("POST", "/api/v1/users/login", alice)).body)["token"]
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="courier.http"):
            answers = [
                await call("POST", "/api/v1/messages", {"to_user_id": CURSED_ID, "content": "hi"}, token),
                await call("GET", "/api/v1/users/" + CURSED_ID, token=token),
            ]
        for response in answers:
            assert response.code == 500
            body = json.loads(response.body)
            assert body == {"error": {"code": "internal_error", "message": "internal server error"}}
        faults = [r for r in caplog.records if r.name == "courier.http" and r.levelno == logging.ERROR]
        assert [r.getMessage() for r in faults] == [
            "unexpected error on POST /api/v1/messages", "unexpected error on GET /api/v1/users/" + CURSED_ID]
        assert all("SECRET-DETAIL" in logging.Formatter().formatException(r.exc_info) for r in faults)
        metrics = (await call("GET", "/metrics")).body.decode()
        assert 'courier_errors_total{code="internal_error"} 2.0' in metrics
    finally:
        client.close()
        await server.stop()
