"""A fuzzing pass over every HTTP route (hypothesis): whatever a client sends - any
method, path segments, query, headers, body - the answer is never a 5xx, and every
error is the contract's JSON body {"error": {"code", "message"}}.

Against `courier serve` as users run it, in both modes (production: the claimed
Redis database and a MariaDB database of its own; no worker is needed for answers).
Requests go over a plain socket (http.client), one connection each, so that paths,
methods and headers reach the server as written."""
from __future__ import annotations

import http.client
import json
import os
import urllib.request
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.services.courier_command import FAST_ENV, CourierCommand

# Every route of entrypoints/http/app.py, with its path parameters as {}: the test at
# the bottom fails when the application serves a route this list does not name.
ROUTES = [
    "/api/v1/users/register",
    "/api/v1/users/login",
    "/api/v1/users/logout",
    "/api/v1/users/logout-all",
    "/api/v1/users/me",
    "/api/v1/users/me/settings",
    "/api/v1/users",
    "/api/v1/users/{}",
    "/api/v1/users/{}/presence",
    "/api/v1/messages",
    "/api/v1/messages/{}",
    "/api/v1/events",
    "/api/v1/groups",
    "/api/v1/groups/{}",
    "/api/v1/groups/{}/members",
    "/api/v1/groups/{}/members/{}",
    "/api/v1/groups/{}/invitations",
    "/api/v1/groups/{}/messages",
    "/api/v1/groups/{}/read",
    "/api/v1/groups/{}/reads",
    "/api/v1/conversations",
    "/api/v1/conversations/{}/messages",
    "/api/v1/conversations/{}/read",
    "/ws",
    "/healthz",
    "/readyz",
    "/metrics",
    "/",
    "/static/{}",
    "/api/v1/openapi.json",
    "/docs",
    "/docs/{}",
]
METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]
FIELDS = ["username", "password", "to_user_id", "content", "client_msg_id", "name", "member_ids", "kind", "user_id",
          "seq", "send_read_receipts", "show_presence"]
QUERY_KEYS = ["cursor", "limit", "before", "username", "token", "events"]
PASSWORD = "fuzz-password-1"
CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


class Target:
    """A running `courier serve`, with a user, its token and a group to aim at."""

    def __init__(self, command: CourierCommand):
        self.command = command
        self.port = command.port
        me = self.call_json("POST", "/api/v1/users/register", {"username": "fuzzer", "password": PASSWORD})
        peer = self.call_json("POST", "/api/v1/users/register", {"username": "fuzzpeer", "password": PASSWORD})
        self.token = self.call_json("POST", "/api/v1/users/login",
                                    {"username": "fuzzer", "password": PASSWORD})["token"]
        self.ids = [me["user_id"], peer["user_id"]]
        group = self.call_json("POST", "/api/v1/groups", {"name": "fuzz", "member_ids": [peer["user_id"]]},
                               token=self.token)
        self.ids.append(group["group_id"])

    def call_json(self, method: str, path: str, body, token: str | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
                                         headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def request(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, dict, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            connection.request(method, path, body=body, headers={"Connection": "close", **headers})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


@pytest.fixture(scope="module", params=["embedded", pytest.param("production", marks=[pytest.mark.redis,
                                                                                     pytest.mark.mysql])])
def target(request, tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env.update(FAST_ENV, COURIER_LOG_LEVEL="warning")
    if request.param == "production":
        import redis

        from adapters.sql import migrate

        redis_db = request.getfixturevalue("redis_db")
        with redis.Redis(db=redis_db) as client:
            client.flushdb()
        database_url = request.getfixturevalue("make_mysql_database")()
        migrate.upgrade(database_url)
        env.update(COURIER_REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}", COURIER_DATABASE_URL=database_url,
                   COURIER_JWT_SECRET="fuzz-secret-of-at-least-32-bytes-long")
    command = CourierCommand("serve", tmp_path_factory.mktemp(f"fuzz-{request.param}"), env)
    command.start()
    try:
        command.wait_ready()
        yield Target(command)
    finally:
        command.cleanup()
        log = command.output()
        assert "Traceback" not in log, f"the server logged a traceback:\n{log}"


def segment(target: Target):
    return st.one_of(
        st.sampled_from(target.ids),
        st.uuids().map(str),
        st.text(min_size=0, max_size=40),
        st.sampled_from(["app.js", "index.html", "style.css", "app.js\x00.css", "..", "../../etc/passwd", "%00",
                         "a" * 300]),
    )


@st.composite
def requests(draw, target: Target, template: str):
    parts = template.split("{}")
    path = parts[0]
    for rest in parts[1:]:
        path += quote(draw(segment(target)), safe="") + rest
    query = draw(st.dictionaries(st.sampled_from(QUERY_KEYS), st.text(max_size=30) | st.sampled_from(
        ["0", "-1", "1", "200", "201", "1-0", "0-0", "99999999999999999999-0", "abc", ""]), max_size=3))
    if query:
        path += "?" + urlencode(query)
    method = draw(st.sampled_from(["GET", "POST"]) | st.sampled_from(METHODS))
    kind = draw(st.sampled_from(["none", "bytes", "json", "fields"]))
    if kind == "none":
        body = None
    elif kind == "bytes":
        body = draw(st.binary(max_size=300))
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    else:
        fields = draw(st.dictionaries(st.sampled_from(FIELDS), json_values | st.sampled_from(target.ids),
                                      max_size=4))
        body = json.dumps(fields).encode()
    headers = {}
    auth = draw(st.sampled_from(["token", "none", "garbage", "scheme"]))
    if auth == "token":
        headers["Authorization"] = "Bearer " + target.token
    elif auth == "garbage":
        headers["Authorization"] = "Bearer " + draw(st.text(alphabet=st.characters(min_codepoint=33,
                                                                                  max_codepoint=126), max_size=60))
    elif auth == "scheme":
        headers["Authorization"] = draw(st.sampled_from(["Basic Zm9vOmJhcg==", "Bearer", "bearer  x", "Token x"]))
    headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES))
    if draw(st.booleans()):
        headers["Origin"] = draw(st.sampled_from(["http://evil.example", "null", "http://127.0.0.1"]))
    return method, path, body, headers


def assert_contract_answer(method: str, path: str, status: int, headers: dict, body: bytes) -> None:
    where = f"{method} {path} -> {status}: {body[:300]!r}"
    assert 100 <= status < 500, where
    if status < 400 or method == "HEAD":
        return
    assert headers.get("content-type", "").startswith("application/json"), where
    error = json.loads(body)
    assert set(error) == {"error"}, where
    assert set(error["error"]) == {"code", "message"}, where
    assert isinstance(error["error"]["code"], str) and error["error"]["code"], where
    assert isinstance(error["error"]["message"], str) and error["error"]["message"], where


FUZZ = settings(max_examples=int(os.environ.get("COURIER_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("route", ROUTES)
@FUZZ
@given(data=st.data())
def test_no_route_answers_a_5xx_or_an_error_that_is_not_json(target, route, data):
    method, path, body, headers = data.draw(requests(target, route))
    status, answer_headers, answer = target.request(method, path, body, headers)
    assert_contract_answer(method, path, status, answer_headers, answer)


def test_the_fuzzed_routes_are_every_route_the_application_serves(tmp_path):
    from entrypoints.http import ops
    from entrypoints.http.app import make_app
    from entrypoints.server import CourierServer
    from entrypoints.settings import Settings

    server = CourierServer(Settings(data_dir=str(tmp_path)))
    app = make_app(server.container, set(), ops.routes({}, None), metrics=None)
    routes = app.application.wildcard_router.rules
    served = set()
    for rule in routes:
        pattern = rule.matcher.regex.pattern.rstrip("$")
        served.add(pattern.replace("([^/]+)", "{}").replace("(.*)", "{}"))
    assert served == set(ROUTES)
