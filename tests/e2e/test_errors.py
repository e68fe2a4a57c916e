"""Errors: unknown routes, wrong methods, and the one error shape for all of them."""
from __future__ import annotations

import logging
import uuid

import pytest

from tests.e2e.support import assert_error


@pytest.mark.gen_test(timeout=30)
async def test_unknown_routes_are_404_json(api):
    a = await api.register()
    for path in ("/api/v1/nope", "/nope", "/api/v2/messages", "/api/v1/users/register/extra", "/api/v1/",
                 "/api/v1/groups/x/y/z/w", "/static/no-such-file.js", "/ws/extra"):
        assert_error(await api.call("GET", path), 404)
        assert_error(await api.call("GET", path, token=a.token), 404)
        # Static files are GET only: a POST there is a 405 (also JSON).
        assert_error(await api.call("POST", path, {"x": 1}, a.token), 405 if path.startswith("/static/") else 404)


@pytest.mark.gen_test(timeout=30)
async def test_wrong_methods_are_405_json(api):
    a = await api.register()
    group = await api.create_group(a)
    gid = group["group_id"]
    for method, path in (
        ("GET", "/api/v1/users/register"),
        ("PUT", "/api/v1/users/register"),
        ("GET", "/api/v1/users/login"),
        ("DELETE", "/api/v1/users/me"),
        ("POST", "/api/v1/users/me"),
        ("PATCH", "/api/v1/messages"),
        ("DELETE", "/api/v1/messages"),
        ("PUT", f"/api/v1/groups/{gid}"),
        ("DELETE", f"/api/v1/groups/{gid}"),
        ("GET", f"/api/v1/groups/{gid}/members"),
        ("GET", f"/api/v1/groups/{gid}/members/{a.user_id}"),
        ("DELETE", f"/api/v1/groups/{gid}/messages"),
        ("POST", f"/api/v1/conversations/{a.user_id}/messages"),
        ("POST", "/healthz"),
        ("POST", "/"),
    ):
        r = await api.call(method, path, {"x": 1} if method in ("POST", "PUT", "PATCH") else None, a.token)
        assert_error(r, 405)
        assert r.body["error"]["code"] == "method_not_allowed", (method, path, r)
    # Nothing was changed by them.
    r = await api.call("GET", f"/api/v1/groups/{gid}", token=a.token)
    assert r.status == 200 and r.body == group


@pytest.mark.gen_test(timeout=30)
async def test_every_error_has_the_one_shape(api):
    """A sample of every status the contract names; assert_error checks the exact shape."""
    a, b = await api.register(), await api.register()
    group = await api.create_group(a, "g")
    cases = [
        (400, await api.call("POST", "/api/v1/messages", raw=b"{", token=a.token)),
        (400, await api.call("POST", "/api/v1/users/register", {"username": "x", "password": "password-1"})),
        (400, await api.pull(a, "bad")),
        (401, await api.call("GET", "/api/v1/users/me")),
        (401, await api.login(a.username, "wrong-password")),
        (403, await api.call("GET", f"/api/v1/groups/{group['group_id']}", token=b.token)),
        (404, await api.call("GET", f"/api/v1/groups/{uuid.uuid4()}", token=a.token)),
        (404, await api.call("GET", "/nothing-here")),
        (405, await api.call("DELETE", "/api/v1/users/login")),
        (409, await api.call("POST", "/api/v1/users/register", {"username": a.username, "password": "password-1"})),
        (413, await api.send(a, b, "x" * 4001)),
    ]
    for status, reply in cases:
        assert_error(reply, status)


@pytest.mark.gen_test(timeout=30)
async def test_bodies_a_client_can_send_never_cause_a_500(api):
    a, b = await api.register(), await api.register()
    bodies = [
        b"\xff\xfe\xfa",  # not UTF-8
        b'{"to_user_id": "' + b.user_id.encode() + b'", "content": "\xff"}',  # invalid UTF-8 inside a string
        b'{"to_user_id": "' + b.user_id.encode() + b'", "content": "x", "content": ""}',  # duplicate key
        b'{"to_user_id": {"$ne": null}, "content": "x"}',
        b"[" * 10_000 + b"]" * 10_000,  # deeply nested
        b'{"to_user_id": "' + b.user_id.encode() + b'", "content": "' + b"y" * 600_000 + b'"}',
        b"{}" + b" " * 1000,
        b"1e999999",
    ]
    for raw in bodies:
        r = await api.call("POST", "/api/v1/messages", raw=raw, token=a.token)
        assert 400 <= r.status < 500, (raw[:60], r)
        assert_error(r, r.status)
    for path in ("/api/v1/users/register", "/api/v1/users/login", "/api/v1/groups"):
        for raw in bodies[:4] + [b"null", b"[]"]:
            r = await api.call("POST", path, raw=raw, token=a.token)
            assert 400 <= r.status < 500, (path, raw[:60], r)
            assert_error(r, r.status)
    # Query strings too.
    for query in ("?cursor=%00", "?cursor=%ff", "?limit=%ff%fe", "?cursor=" + "1" * 5000 + "-0", "?limit=&cursor="):
        r = await api.call("GET", "/api/v1/messages" + query, token=a.token)
        assert r.status in (200, 400), (query, r)
        if r.status != 200:
            assert_error(r, 400)
    r = await api.call("GET", "/api/v1/users?username=%ff%00", token=a.token)
    assert r.status in (400, 404), r
    assert_error(r, r.status)


# Embedded only: static files are served the same way in both modes.
@pytest.mark.embedded_only
@pytest.mark.gen_test(timeout=30)
async def test_a_nul_in_a_static_path_is_a_404_without_a_traceback(api, caplog):
    """No file name holds a NUL, and the OS refuses such a path with a ValueError, which
    Tornado's StaticFileHandler let through as a 500 with an ERROR traceback: anyone could
    fill the log."""
    for path in ("/static/app.js%00.css", "/static/%00", "/static/a/%00/b.js"):
        assert_error(await api.call("GET", path), 404, "not_found")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
    assert (await api.call("GET", "/static/app.js")).status == 200
