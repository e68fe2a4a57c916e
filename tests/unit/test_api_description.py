"""The API's descriptions cannot drift from the server:

- docs/openapi.yaml is a valid OpenAPI 3.1 document, and entrypoints/web/openapi.json
  (what GET /api/v1/openapi.json answers) is its rendering;
- every route the application serves, with every method it answers, is described there,
  and every route and method described there is served (the application's own route
  table, as tests/fuzz/test_http_routes.py reads it);
- every error code the server can answer is named there and in docs/api.md;
- docs/asyncapi.yaml names every frame type a client may send, every event type of the
  event view and every close code the server uses.

tests/schemathesis checks the answers themselves against the document, live."""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import tornado.web
import yaml

from domain import errors
from entrypoints.http import ops
from entrypoints.http.app import make_app
from entrypoints.http.errors import CODE_BY_STATUS
from entrypoints.http.fast_send import PATH as FAST_SEND_PATH
from entrypoints.server import CourierServer
from entrypoints.settings import Settings

REPO = Path(__file__).resolve().parents[2]
OPENAPI = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
SERVED_OPENAPI = REPO / "entrypoints" / "web" / "openapi.json"
ASYNCAPI = yaml.safe_load((REPO / "docs" / "asyncapi.yaml").read_text())
API_MD = (REPO / "docs" / "api.md").read_text()
METHODS = ("get", "post", "patch", "put", "delete")


def test_the_openapi_document_is_valid_openapi_3_1():
    from openapi_spec_validator import validate

    assert OPENAPI["openapi"].startswith("3.1")
    validate(OPENAPI)


def test_the_served_document_is_the_rendering_of_docs_openapi_yaml():
    from scripts.render_openapi import rendered

    assert SERVED_OPENAPI.read_text() == rendered(), "run: .venv/bin/python scripts/render_openapi.py"


def served_routes(tmp_path) -> dict[str, set[str]]:
    """Path (parameters as {}) -> the methods its handler answers (CORS preflights and
    HEAD aside), from the application's route table."""
    server = CourierServer(Settings(data_dir=str(tmp_path)))
    app = make_app(server.container, set(), ops.routes({}, None), metrics=None)
    served: dict[str, set[str]] = {}
    for rule in app.application.wildcard_router.rules:
        path = rule.matcher.regex.pattern.rstrip("$").replace("([^/]+)", "{}").replace("(.*)", "{}")
        handler = rule.target
        methods = set()
        for method in METHODS:
            own = getattr(handler, method, None)
            if own is not None and own is not getattr(tornado.web.RequestHandler, method):
                methods.add(method)
        served[path] = methods
    # POST /api/v1/messages is answered below the application (entrypoints/http/fast_send.py).
    served[FAST_SEND_PATH].add("post")
    return served


def described_routes() -> dict[str, set[str]]:
    return {re.sub(r"\{[^}]+\}", "{}", path): {m for m in item if m in METHODS}
            for path, item in OPENAPI["paths"].items()}


def test_every_served_route_is_described_and_every_described_route_is_served(tmp_path):
    served, described = served_routes(tmp_path), described_routes()
    assert set(served) - set(described) == set(), "routes served but not in docs/openapi.yaml"
    assert set(described) - set(served) == set(), "routes in docs/openapi.yaml the application does not serve"
    for path, methods in served.items():
        assert methods == described[path], f"{path}: served {sorted(methods)}, described {sorted(described[path])}"


def error_codes() -> set[str]:
    # CourierError and Conflict are only ever raised as one of their kinds (their codes
    # "error" and "conflict" reach no client).
    never_raised = (errors.CourierError, errors.Conflict)
    codes = {kind.code for _, kind in inspect.getmembers(errors, inspect.isclass)
             if issubclass(kind, errors.CourierError) and kind not in never_raised}
    codes |= set(CODE_BY_STATUS.values()) - {"internal_error", "unauthorized", "method_not_allowed"}
    codes.add("upgrade_required")  # the WebSocket upgrade's 426 (entrypoints/ws.py)
    return codes


def test_every_error_code_is_in_the_openapi_document_and_in_docs_api_md():
    text = json.dumps(OPENAPI)
    assert {code for code in error_codes() if f"`{code}`" not in text} == set()
    assert {code for code in error_codes() if f"`{code}`" not in API_MD} == set()


def test_every_operation_has_an_id_and_a_json_error_for_each_error_status():
    for path, item in OPENAPI["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            assert operation.get("operationId"), (method, path)
            for status, answer in operation["responses"].items():
                if int(status) >= 400 and "$ref" not in answer:
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_asyncapi_document_names_every_frame_event_and_close_code():
    from domain.events import GROUP_CHANGES, MESSAGE_CHANGES, MESSAGE_TYPES, READ
    from entrypoints import ws
    from entrypoints.http import tornado_overrides

    assert ASYNCAPI["asyncapi"].startswith("3.")
    text = json.dumps(ASYNCAPI)
    for event in (*MESSAGE_TYPES, *GROUP_CHANGES, *MESSAGE_CHANGES, READ, "typing", "presence", "pong", "error"):
        assert f'"{event}"' in text, event
    for frame in ("ping", "typing", "presence_subscribe"):
        assert f'"{frame}"' in text, frame
    closes = {ws.CLOSE_GOING_AWAY, ws.CLOSE_TRY_AGAIN, ws.CLOSE_TOKEN_EXPIRED, ws.CLOSE_CURSOR_EXPIRED,
              tornado_overrides.CLOSE_POLICY, tornado_overrides.CLOSE_PROTOCOL_ERROR, 1009}
    for code in closes:
        assert str(code) in text and f"`{code}`" in API_MD, code


def test_every_client_frame_type_the_server_handles_is_in_the_asyncapi_document():
    from tests.unit.courier import build

    courier = build()
    text = json.dumps(ASYNCAPI)
    for frame in courier.container.client_frames().types:
        assert f'"{frame}"' in text, frame


def test_every_setting_is_in_the_settings_table_of_docs_api_md():
    from dataclasses import fields

    from entrypoints.settings import Settings

    section = API_MD[API_MD.index("## Settings"):]
    table = section[: section.index("\n## ", 1)]
    documented = set(re.findall(r"\bCOURIER_[A-Z0-9_]+", table))
    settings = {"COURIER_" + f.name.upper() for f in fields(Settings) if f.name != "extra"}
    assert settings - documented == set(), "add these to the settings table of docs/api.md"
    assert documented - settings == set(), "docs/api.md lists settings Courier does not read"
