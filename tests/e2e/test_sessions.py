"""Sessions end before their tokens expire: logging out (POST /users/logout ends the
token it is called with, /users/logout-all every token of the user issued until
then), and a token whose user does not exist - never created (a database reset with
the secret kept) or removed - is refused everywhere. Sockets of an ended session
close with 4001. Both modes."""
from __future__ import annotations

import uuid

import pytest

from tests.e2e.support import assert_error, remove_user, token_for, with_settings

LOGOUT, LOGOUT_ALL = "/api/v1/users/logout", "/api/v1/users/logout-all"


async def second_token(api, account) -> str:
    """Log in again: another device's token."""
    r = await api.login(account.username, account.password)
    assert r.status == 200, r
    return r.body["token"]


async def assert_refused_everywhere(api, token: str, peer) -> None:
    """401 on every kind of authenticated call: the app's routes, the fast send path,
    the socket upgrade."""
    group_id = str(uuid.uuid4())
    calls = [
        ("GET", "/api/v1/users/me", None),
        ("GET", f"/api/v1/users?username={peer.username}", None),
        ("GET", f"/api/v1/users/{peer.user_id}", None),
        ("GET", "/api/v1/messages", None),
        ("POST", "/api/v1/messages", {"to_user_id": peer.user_id, "content": "hi"}),
        ("POST", "/api/v1/groups", {"name": "g", "member_ids": [peer.user_id]}),
        ("GET", "/api/v1/groups", None),
        ("GET", f"/api/v1/groups/{group_id}", None),
        ("POST", f"/api/v1/groups/{group_id}/messages", {"content": "hi"}),
        ("GET", f"/api/v1/conversations/{peer.user_id}/messages", None),
        ("POST", LOGOUT, None),
        ("POST", LOGOUT_ALL, None),
    ]
    for method, path, body in calls:
        assert_error(await api.call(method, path, body, token=token), 401, "invalid_token")
    refused = await api.refused(token=token)
    assert_error(refused, 401, "invalid_token")


@pytest.mark.gen_test(timeout=30)
async def test_logout_ends_the_token_it_is_called_with_and_no_other(api):
    alice, bob = await api.register(), await api.register()
    other_device = await second_token(api, alice)
    r = await api.call("POST", LOGOUT, token=alice.token)
    assert r.status == 204 and not r.body, r
    await assert_refused_everywhere(api, alice.token, bob)
    me = await api.call("GET", "/api/v1/users/me", token=other_device)
    assert me.status == 200 and me.body["user_id"] == alice.user_id, me
    assert (await api.login(alice.username, alice.password)).status == 200


@pytest.mark.gen_test(timeout=30)
async def test_logout_closes_the_sockets_of_that_token_with_4001(api):
    alice, bob = await api.register(), await api.register()
    other_device = await second_token(api, alice)
    ws_logged_out = await api.connect(alice)
    ws_other = await api.connect(token=other_device)
    assert (await api.call("POST", LOGOUT, token=alice.token)).status == 204
    code, _ = await ws_logged_out.closed(timeout=5)
    assert code == 4001
    sent = await api.send(bob, alice, "still here")
    assert (await ws_other.next())["id"] == sent.body["id"]


@pytest.mark.gen_test(timeout=30)
async def test_logout_all_ends_every_token_of_the_user_and_closes_their_sockets(api):
    alice, bob = await api.register(), await api.register()
    tokens = [alice.token, await second_token(api, alice), await second_token(api, alice)]
    sockets = [await api.connect(token=token) for token in tokens]
    ws_bob = await api.connect(bob)
    r = await api.call("POST", LOGOUT_ALL, token=tokens[1])
    assert r.status == 204, r
    for ws in sockets:
        code, _ = await ws.closed(timeout=5)
        assert code == 4001
    for token in tokens:
        await assert_refused_everywhere(api, token, bob)
    # A login after it is a new session; nobody else was touched.
    fresh = await second_token(api, alice)
    assert (await api.call("GET", "/api/v1/users/me", token=fresh)).status == 200
    assert await ws_bob.nothing(0.2)


@pytest.mark.gen_test(timeout=30)
async def test_a_logout_is_remembered_across_a_restart(api, courier):
    alice = await api.register()
    assert (await api.call("POST", LOGOUT, token=alice.token)).status == 204
    await courier.restart()
    assert_error(await api.call("GET", "/api/v1/users/me", token=alice.token), 401, "invalid_token")


@pytest.mark.gen_test(timeout=30)
async def test_a_token_of_a_user_that_never_existed_is_401_everywhere(api, courier):
    # Signed with the server's own secret: what a database reset with the secret kept
    # leaves behind. POST /groups answered 500 with it, and a send 201 (a message the
    # worker could never store).
    bob = await api.register()
    ghost = token_for(courier, str(uuid.uuid4()))
    await assert_refused_everywhere(api, ghost, bob)
    await courier.settle()


@with_settings(account_check=0.5)
@pytest.mark.gen_test(timeout=30)
async def test_a_removed_user_is_refused_and_its_sockets_close_with_4001(api, courier):
    alice, bob = await api.register(), await api.register()
    ws = await api.connect(alice)
    assert (await api.call("GET", "/api/v1/users/me", token=alice.token)).status == 200  # known to exist
    await remove_user(courier, alice.user_id)
    code, reason = await ws.closed(timeout=10)
    assert code == 4001, (code, reason)
    await assert_refused_everywhere(api, alice.token, bob)
