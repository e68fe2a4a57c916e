"""POST /api/v1/messages is answered below Tornado's RequestHandler (entrypoints/http/
fast_send.py): its answers must be the same as every other route's - status, JSON body,
headers, CORS, access log - and every other method on the path still reaches the app."""
from __future__ import annotations

import logging

import pytest

from tests.e2e.support import assert_error, with_settings

ALLOWED = "https://app.example.com"


@pytest.mark.gen_test(timeout=30)
async def test_a_send_answers_201_with_the_headers_of_any_other_route(api):
    a, b = await api.register(), await api.register()
    r = await api.send(a, b, "hello")
    assert r.status == 201, r
    assert set(r.body) == {"type", "id", "from_user_id", "to_user_id", "content", "created_at", "seq"}
    assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert int(r.headers["Content-Length"]) > 0 and r.headers["Date"].endswith("GMT")
    other = await api.call("GET", "/api/v1/users/me", token=a.token)
    assert {"Server", "Content-Type", "Date"} <= set(other.headers) & set(r.headers)
    # A query string does not change the route (Tornado routes on the path too).
    assert (await api.call("POST", "/api/v1/messages?via=test", {"to_user_id": b.user_id, "content": "q"},
                           a.token)).status == 201


@pytest.mark.gen_test(timeout=30)
async def test_bad_sends_get_the_contract_errors(api):
    a, b = await api.register(), await api.register()
    assert_error(await api.call("POST", "/api/v1/messages", {"to_user_id": b.user_id, "content": "x"}),
                 401, "invalid_token")
    assert_error(await api.call("POST", "/api/v1/messages", {"to_user_id": b.user_id, "content": "x"},
                                "Bearer-less garbage"), 401, "invalid_token")
    assert_error(await api.call("POST", "/api/v1/messages", raw=b"{not json", token=a.token), 400)
    assert_error(await api.call("POST", "/api/v1/messages", raw=b"[1, 2]", token=a.token), 400)
    assert_error(await api.call("POST", "/api/v1/messages", raw=b"", token=a.token), 400)
    assert_error(await api.call("POST", "/api/v1/messages", {"content": "x"}, a.token), 400)
    assert_error(await api.send(a, b, "x" * 4001), 413, "content_too_long")
    unknown = await api.call("POST", "/api/v1/messages",
                             {"to_user_id": "00000000-0000-4000-8000-000000000000", "content": "x"}, a.token)
    assert_error(unknown, 404)
    assert unknown.headers["Content-Type"] == "application/json; charset=UTF-8"


@pytest.mark.gen_test(timeout=30)
async def test_other_methods_and_paths_still_reach_the_app(api):
    a = await api.register()
    r = await api.call("GET", "/api/v1/messages", token=a.token)  # the pull
    assert r.status == 200 and set(r.body) == {"messages", "next_cursor", "has_more"}, r
    assert_error(await api.call("PUT", "/api/v1/messages", {"x": 1}, a.token), 405)
    assert_error(await api.call("POST", "/api/v1/messages/", {"x": 1}, a.token), 404)
    assert_error(await api.call("POST", "/api/v1/messagesx", {"x": 1}, a.token), 404)


@with_settings(allowed_origins=ALLOWED)
@pytest.mark.gen_test(timeout=30)
async def test_a_send_from_an_allowed_origin_carries_cors_headers_and_others_do_not(api):
    a, b = await api.register(), await api.register()
    body = {"to_user_id": b.user_id, "content": "from the web app"}
    r = await api.call("POST", "/api/v1/messages", body, a.token, headers={"Origin": ALLOWED})
    assert r.status == 201 and r.headers["Access-Control-Allow-Origin"] == ALLOWED and r.headers["Vary"] == "Origin"
    assert r.headers["Access-Control-Expose-Headers"] == "Retry-After"  # a web app reads when to try again
    r = await api.call("POST", "/api/v1/messages", body, headers={"Origin": ALLOWED})
    assert_error(r, 401)
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED  # errors are readable by the web app too
    r = await api.call("POST", "/api/v1/messages", body, a.token, headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.gen_test(timeout=30)
async def test_any_origin_is_allowed_when_no_list_is_set(api):
    a, b = await api.register(), await api.register()
    r = await api.call("POST", "/api/v1/messages", {"to_user_id": b.user_id, "content": "x"}, a.token,
                       headers={"Origin": "https://anywhere.example.com"})
    assert r.status == 201 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Expose-Headers"] == "Retry-After"


@pytest.mark.gen_test(timeout=30)
async def test_a_send_writes_the_access_log_line_without_the_token(api, caplog):
    a, b = await api.register(), await api.register()
    with caplog.at_level(logging.INFO, logger="tornado.access"):
        r = await api.send(a, b, "logged")
        assert r.status == 201
        await api.call("POST", "/api/v1/messages", {"to_user_id": b.user_id, "content": "x"})  # 401
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "tornado.access"]
    assert any(line.startswith("201 POST /api/v1/messages (127.0.0.1) ") for line in lines), lines
    assert any(line.startswith("401 POST /api/v1/messages (127.0.0.1) ") for line in lines), lines
    assert not any(a.token in line for line in caplog.text.splitlines())


@with_settings(allowed_origins=ALLOWED)
@pytest.mark.gen_test(timeout=30)
async def test_the_browser_client_module_is_served_with_cors_the_page_files_are_not(api):
    for name in ("courier.js", "courier-http.js", "courier-socket.js", "courier-events.js"):
        r = await api.call("GET", f"/static/{name}", headers={"Origin": ALLOWED})
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == ALLOWED, name
        r = await api.call("GET", f"/static/{name}", headers={"Origin": "https://evil.example.com"})
        assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers, name
    r = await api.call("GET", "/static/app.js", headers={"Origin": ALLOWED})
    assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
