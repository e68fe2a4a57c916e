"""Every answer says `Server: Courier`, without the framework or its version (which
tell an attacker which known flaws to try): the Tornado routes, the fast send path,
the 413 of body_limit.py, the refusals of malformed HTTP and the WebSocket upgrade.

Embedded only: the same HTTP code answers in both modes."""
from __future__ import annotations

import asyncio
import base64
import os

import pytest

from entrypoints.http.body_limit import MAX_BODY_BYTES
from tests.e2e.raw_http import exchange

pytestmark = pytest.mark.embedded_only


def server_of(headers: dict) -> str | None:
    return next((value for name, value in headers.items() if name.lower() == "server"), None)


@pytest.mark.gen_test(timeout=60)
async def test_every_http_answer_says_server_courier(api, courier):
    a, b = await api.register(), await api.register()
    replies = {
        "a handler": await api.call("GET", "/healthz"),
        "a handler's error": await api.call("GET", "/api/v1/users/me"),
        "an unknown route": await api.call("GET", "/nope"),
        "the page": await api.call("GET", "/"),
        "a static file": await api.call("GET", "/static/app.js"),
        "a missing static file": await api.call("GET", "/static/nope.js"),
        "a CORS preflight": await api.call("OPTIONS", "/api/v1/groups", headers={"Origin": "https://a.example"}),
        "a send": await api.send(a, b, "hello"),
        "a refused send": await api.call("POST", "/api/v1/messages", {"to_user_id": b.user_id, "content": "x"}),
        "a body over the limit": await api.call("POST", "/api/v1/groups", raw=b"x" * (MAX_BODY_BYTES + 1)),
        "a refused upgrade": await api.call("GET", "/ws?token=bad", headers={"Upgrade": "websocket"}),
    }
    for what, reply in replies.items():
        assert reply.status < 600 and server_of(reply.headers) == "Courier", (what, reply)
    malformed = await exchange(courier.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n")
    assert malformed.status == 400 and malformed.headers.get("server") == "Courier", malformed


@pytest.mark.gen_test(timeout=30)
async def test_the_websocket_upgrade_says_server_courier(api, courier):
    a = await api.register()
    reader, writer = await asyncio.open_connection("127.0.0.1", courier.port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws?token={a.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert b"\r\nServer: Courier\r\n" in head and b"Tornado" not in head, head


def test_every_route_has_a_handler_that_sets_it(courier):
    """A handler added later without ServerHeader would answer `TornadoServer/<version>`."""
    from entrypoints.http.base import ServerHeader

    application = courier.server._http.request_callback.application
    handlers = [rule.target for rule in application.wildcard_router.rules]
    handlers.append(application.settings["default_handler_class"])
    assert len(handlers) > 10
    assert [h.__name__ for h in handlers if not issubclass(h, ServerHeader)] == []
