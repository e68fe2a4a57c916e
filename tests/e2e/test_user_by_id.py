"""GET /users/{user_id}: the name for an id seen in a message or a group."""
from __future__ import annotations

import uuid

import pytest

from tests.e2e.support import assert_error


@pytest.mark.gen_test(timeout=30)
async def test_a_user_is_found_by_id(api):
    alice, bob = await api.register(), await api.register()
    r = await api.call("GET", f"/api/v1/users/{bob.user_id}", token=alice.token)
    assert r.status == 200, r
    assert r.body == {"user_id": bob.user_id, "username": bob.username}


@pytest.mark.gen_test(timeout=30)
async def test_unknown_malformed_and_anonymous_lookups_are_refused(api):
    alice = await api.register()
    assert_error(await api.call("GET", f"/api/v1/users/{uuid.uuid4()}", token=alice.token), 404, "user_not_found")
    assert_error(await api.call("GET", "/api/v1/users/not-a-uuid", token=alice.token), 400, "invalid_input")
    r = await api.call("GET", f"/api/v1/users/{alice.user_id}")
    assert r.status == 401 and r.body["error"]["code"] == "invalid_token"
