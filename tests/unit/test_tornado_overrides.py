"""The overrides of Tornado internals (all in entrypoints/http/tornado_overrides.py) rely
on private names of the pinned Tornado: an upgrade that renames or reshapes one must fail
here, loudly, rather than quietly bring back a bare 400, a silent close, a dropped
WebSocket or a slower push."""
from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import socket
import types
from pathlib import Path

import pytest
import tornado.http1connection
import tornado.httpserver
import tornado.httputil
import tornado.iostream
import tornado.web
import tornado.websocket

from entrypoints.http import tornado_overrides
from entrypoints.http.tornado_overrides import CHUNKED_TOO_LARGE, PRIVATE_NAMES, is_request_line

ROOT = Path(__file__).resolve().parents[2]

# sha256 of the source of Tornado's HTTP1ServerConnection._server_request_loop that
# RefusingHTTP1ServerConnection._server_request_loop copies (Tornado 6.6.1).
SERVER_REQUEST_LOOP_SHA256 = "878caf064d85d615c371d09ed9068eaaadfda25e70a8e9a35cb92996d0a7e539"


def resolve(dotted: str):
    """"tornado.httpserver.HTTPServer" -> the class; "tornado.httpserver" -> the module."""
    try:
        return importlib.import_module(dotted)
    except ImportError:
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)


@pytest.fixture
def instances(io_loop) -> dict[str, set[str]]:
    """The names instances of some classes have once made (some are set in __init__ only),
    made on the test's loop (their futures need one), and nothing connected anywhere."""
    async def make() -> dict[str, set[str]]:
        left, right = socket.socketpair()
        stream = tornado.iostream.IOStream(left)
        try:
            placeholder = types.SimpleNamespace(max_buffer_size=1024, set_close_callback=lambda callback: None)
            request = tornado.httputil.HTTPServerRequest(
                connection=placeholder, start_line=tornado.httputil.RequestStartLine("GET", "/", "HTTP/1.1"),
                headers=tornado.httputil.HTTPHeaders({"Host": "courier.test"}))
            return {
                "tornado.web.RequestHandler": set(dir(tornado.web.RequestHandler(tornado.web.Application(), request))),
                "tornado.iostream.IOStream": set(dir(stream)),
                "tornado.http1connection.HTTP1Connection": set(dir(
                    tornado.http1connection.HTTP1Connection(placeholder, False))),
                "tornado.httpserver.HTTPServer": set(dir(tornado.httpserver.HTTPServer(lambda request: None))),
                "tornado.websocket.WebSocketProtocol13": set(dir(tornado.websocket.WebSocketProtocol13(
                    types.SimpleNamespace(), False, tornado.websocket._WebSocketParams()))),
            }
        finally:
            stream.close()
            right.close()

    return io_loop.run_sync(make)


@pytest.mark.parametrize("dotted", sorted(PRIVATE_NAMES))
def test_every_private_name_the_overrides_use_still_exists(dotted, instances):
    names = instances.get(dotted) or set(dir(resolve(dotted)))
    missing = [name for name in PRIVATE_NAMES[dotted] if name not in names]
    assert missing == [], f"{dotted} no longer has {missing}: re-check entrypoints/http/tornado_overrides.py"


def test_the_copied_request_loop_is_still_tornados():
    source = inspect.getsource(tornado.http1connection.HTTP1ServerConnection._server_request_loop)
    assert hashlib.sha256(source.encode()).hexdigest() == SERVER_REQUEST_LOOP_SHA256, (
        "Tornado's HTTP1ServerConnection._server_request_loop changed: bring its changes into "
        "RefusingHTTP1ServerConnection._server_request_loop, then update the fingerprint here")


def test_a_chunked_body_over_the_limit_is_still_told_apart_by_its_message():
    source = inspect.getsource(tornado.http1connection.HTTP1Connection._read_chunked_body)
    assert f'HTTPInputError("{CHUNKED_TOO_LARGE}")' in source


@pytest.mark.parametrize("line", [
    "GET / HTTP/1.1", "POST /api/v1/messages HTTP/1.1", "GET /a?b=c&d HTTP/1.0", "OPTIONS * HTTP/1.1",
    "GET / HTTP/2.0", "GET / HTTP/1.1 ", "GET /", "GARBAGE", "", "GET  / HTTP/1.1", "GET /a\x00b HTTP/1.1",
    "GET / http/1.1", "G(T / HTTP/1.1", "GET /\x7f HTTP/1.1", "GET /caf\xe9 HTTP/1.1",
])
def test_the_request_line_check_agrees_with_tornados_parser(line):
    try:
        tornado.httputil.parse_request_start_line(line)
        parsed = True
    except tornado.httputil.HTTPInputError:
        parsed = False
    assert is_request_line(line) is parsed
    assert is_request_line(line) is parsed  # the second time, from the lines found good


def private_uses(path: Path, private: set[str]) -> list[str]:
    """Where a module reads one of Tornado's private names: tornado.<...>._name, super()._name,
    or <something>._name of those in PRIVATE_NAMES, on anything but self (a class's own
    private attributes may share a name with Tornado's)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        value = node.value
        dotted = ast.unparse(value)
        if dotted.startswith("tornado.") or dotted == "super()" or (
                node.attr in private and not (isinstance(value, ast.Name) and value.id == "self")):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {dotted}.{node.attr}")
    return found


def test_no_other_module_uses_tornados_private_names():
    private = {name for names in PRIVATE_NAMES.values() for name in names if name.startswith("_")}
    home = Path(tornado_overrides.__file__).resolve()
    uses = [use for package in ("entrypoints", "adapters", "application")
            for path in sorted((ROOT / package).rglob("*.py")) if path.resolve() != home
            for use in private_uses(path, private)]
    assert uses == [], "Tornado's private names belong in entrypoints/http/tornado_overrides.py"
