"""Helpers shared by the end-to-end tests."""
from __future__ import annotations

import time
import uuid

import pytest

from tests.services.waiting import eventually

# The console script next to this interpreter (the venv's bin), as users run it.


def with_settings(**overrides):
    """Run one test (or a module, as `pytestmark`) against a server with these settings."""
    return pytest.mark.parametrize("settings_overrides", [overrides], ids=["settings"])


def is_uuid(value) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def assert_error(reply, status: int, code: str | None = None) -> None:
    """The contract's error answer: the status, and exactly {"error": {"code", "message"}}."""
    assert reply.status == status, reply
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply
    body = reply.body
    assert isinstance(body, dict) and set(body) == {"error"}, reply
    assert set(body["error"]) == {"code", "message"}, reply
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], reply
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], reply
    if code is not None:
        assert body["error"]["code"] == code, reply


def expired_token(running, user_id: str) -> str:
    """A token signed with the server's own secret that expired a minute ago."""
    from adapters.security import JwtTokenService

    tokens = JwtTokenService(running.settings.resolved_jwt_secret(), 60, now=lambda: time.time() - 120)
    return tokens.issue(user_id).token


def token_for(running, user_id: str, ttl: int = 3600) -> str:
    """A valid token, signed with the server's own secret, for any user id (one that
    never existed, or was removed)."""
    from adapters.security import JwtTokenService

    return JwtTokenService(running.settings.resolved_jwt_secret(), ttl).issue(user_id).token


async def remove_user(running, user_id: str) -> None:
    """Delete a user's row from the server's database, as an operator would (the user
    must own nothing else: no messages, no groups)."""
    from sqlalchemy import delete

    from adapters.sql.tables import users

    def remove(conn) -> None:
        with conn.begin():
            conn.execute(delete(users).where(users.c.id == user_id))

    await running.server.container.database().write(remove)


async def connect_once_admitted(api, account, timeout: float = 5.0):
    """Connect `account`'s socket as soon as the server admits it (a socket of the user
    closed a moment ago frees its place once the server has seen it close)."""
    import tornado.httpclient

    async def admitted():
        try:
            return await api.connect(account)
        except tornado.httpclient.HTTPClientError:
            return None

    return await eventually(admitted, timeout)
