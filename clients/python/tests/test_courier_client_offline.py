"""courier_client's own tests, with no Courier server: a scripted stand-in (Tornado, in
this process) answers what a test needs - a 409 send_in_progress, a 503, a 429 with
Retry-After, a body that is not the API's, a socket that replays what was already seen.
The tests against a live Courier, in both modes, are the repository's tests/clients.

Run: pytest clients/python/tests (needs pytest and tornado only)."""
from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
import tornado.httpserver
import tornado.web
import tornado.websocket
from courier_client import RESYNC, Client, CourierConnectionError, CourierError, backoff_delay, cursor_order


def run(coroutine):
    """asyncio.run, but leaving the policy's current loop alone: in the repository's run,
    Tornado's test loops (pytest-tornado) keep one there, and asyncio.run would drop it."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class Script:
    """The answers the stand-in gives, in order, and what it was asked."""

    def __init__(self, answers=()):
        self.answers = list(answers)
        self.requests: list[tuple[str, str, dict | None, float]] = []
        self.sockets: list[dict] = []  # per socket: its query arguments
        self.socket_frames: list[list] = []  # per socket: (frames to send, close code)


class Answer(tornado.web.RequestHandler):
    def initialize(self, script: Script) -> None:
        self.script = script

    def _answer(self) -> None:
        body = json.loads(self.request.body) if self.request.body else None
        self.script.requests.append((self.request.method, self.request.uri, body, time.monotonic()))
        status, payload, headers = self.script.answers.pop(0)
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name, value)
        if payload is not None:
            self.finish(payload if isinstance(payload, bytes) else json.dumps(payload))

    get = post = patch = delete = _answer  # type: ignore[assignment]


class Socket(tornado.websocket.WebSocketHandler):
    def initialize(self, script: Script) -> None:
        self.script = script

    async def open(self) -> None:
        self.script.sockets.append({k: self.get_query_argument(k) for k in self.request.query_arguments})
        frames, close_code = self.script.socket_frames.pop(0)
        for frame in frames:
            await self.write_message(json.dumps(frame))
        if close_code is not None:
            self.close(close_code)


class StandIn:
    def __init__(self, script: Script):
        self.script = script
        self.server: tornado.httpserver.HTTPServer | None = None

    async def __aenter__(self) -> str:
        app = tornado.web.Application([(r"/ws", Socket, {"script": self.script}),
                                       (r"/.*", Answer, {"script": self.script})])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        self.server = tornado.httpserver.HTTPServer(app)
        self.server.add_sockets([sock])
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def __aexit__(self, *exc_info) -> None:
        self.server.stop()
        await self.server.close_all_connections()


def error(code: str, message: str = "no") -> dict:
    return {"error": {"code": code, "message": message}}


MESSAGE = {"type": "private", "id": "m1", "seq": 1, "content": "hi"}


def test_a_send_is_retried_with_the_same_client_msg_id_on_409_503_and_429():
    script = Script([
        (409, error("send_in_progress"), {}),
        (503, error("service_unavailable"), {}),
        (429, error("rate_limited"), {"Retry-After": "1"}),
        (201, MESSAGE, {}),
    ])

    async def main():
        async with StandIn(script) as url, Client(url, token="t", backoff_base=0.01) as client:
            return await client.send_private("u2", "hi")

    assert run(main()) == MESSAGE
    bodies = [body for _, _, body, _ in script.requests]
    assert len(bodies) == 4 and all(body == bodies[0] for body in bodies)  # the very same body each time
    assert bodies[0]["client_msg_id"] and bodies[0]["to_user_id"] == "u2"
    assert script.requests[3][3] - script.requests[2][3] >= 0.95  # Retry-After was honoured


def test_a_send_gives_up_after_retry_for_with_the_last_error():
    script = Script([(503, error("service_unavailable"), {})] * 50)

    async def main():
        async with StandIn(script) as url, Client(url, token="t", retry_for=0.3, backoff_base=0.05) as client:
            await client.send_group("g1", "hi", client_msg_id="mine")

    with pytest.raises(CourierError) as raised:
        run(main())
    assert (raised.value.status, raised.value.code) == (503, "service_unavailable")
    assert 2 <= len(script.requests) < 50
    assert {body["client_msg_id"] for _, _, body, _ in script.requests} == {"mine"}


def test_other_errors_are_raised_at_once_as_courier_errors():
    script = Script([
        (400, error("invalid_input", "content must be a string"), {}),
        (409, error("username_taken"), {}),
        (502, b"<html>bad gateway</html>", {}),
    ])

    async def main():
        async with StandIn(script) as url, Client(url, token="t") as client:
            raised = []
            for call in (client.send_private("u2", "hi"), client.register("bob", "pw"), client.me()):
                with pytest.raises(CourierError) as e:
                    await call
                raised.append(e.value)
            return raised

    bad, taken, gateway = run(main())
    assert (bad.status, bad.code, bad.message) == (400, "invalid_input", "content must be a string")
    assert (taken.status, taken.code) == (409, "username_taken")
    assert (gateway.status, gateway.code) == (502, "http_502")  # not the API's body
    assert len(script.requests) == 3  # none was retried


def test_a_server_that_cannot_be_reached_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main():
        async with Client(f"http://127.0.0.1:{port}", token="t", retry_for=0.2, backoff_base=0.05) as client:
            await client.send_private("u2", "hi")

    with pytest.raises(CourierConnectionError) as raised:
        run(main())
    assert raised.value.status == 0 and raised.value.code == "network_error"


def test_login_keeps_the_token():
    script = Script([(200, {"user_id": "u1", "username": "alice", "token": "T", "expires_at": 1}, {}),
                     (200, {"user_id": "u1", "username": "alice"}, {})])

    async def main():
        async with StandIn(script) as url, Client(url) as client:
            await client.login("alice", "pw")
            await client.me()
            return client

    client = run(main())
    assert (client.token, client.user_id, client.username) == ("T", "u1", "alice")


def event(cursor: str, n: int) -> dict:
    return {"type": "private", "id": f"m{n}", "content": str(n), "cursor": cursor}


def test_the_stream_resumes_from_its_cursor_and_never_yields_an_event_twice():
    script = Script()
    script.socket_frames = [
        ([event("1-0", 1), event("2-0", 2)], 1011),
        # a replay that goes back further than asked: the overlap is passed over
        ([event("1-0", 1), event("2-0", 2), {"type": "typing", "user_id": "u2", "state": "start"},
          event("3-0", 3), {"type": "pong"}], 1001),
        ([event("3-0", 3), event("10-0", 4)], None),
    ]

    async def main():
        async with StandIn(script) as url, Client(url, token="t") as client:
            got = []
            async with client.events(cursor="0-5", backoff_base=0.01) as stream:
                async for e in stream:
                    got.append(e)
                    if e.get("id") == "m4":
                        break
            return got, stream

    got, stream = run(main())
    assert [e.get("id", e["type"]) for e in got] == ["m1", "m2", "typing", "m3", "m4"]
    assert [s.get("cursor") for s in script.sockets] == ["0-5", "2-0", "3-0"]
    assert all(s["events"] == "1" for s in script.sockets)
    assert stream.cursor == "10-0" and stream.connects == 3


def test_an_expired_cursor_is_told_then_the_retained_log_is_read_from_its_start():
    script = Script([(200, {"events": [event("7-0", 7), event("8-0", 8)], "next_cursor": "8-0", "has_more": True},
                      {}),
                     (200, {"events": [event("9-0", 9)], "next_cursor": "9-0", "has_more": False}, {})])
    script.socket_frames = [([], 4410), ([event("9-0", 9), event("11-0", 11)], None)]

    async def main():
        async with StandIn(script) as url, Client(url, token="t") as client:
            got = []
            async with client.events(cursor="2-0", backoff_base=0.01) as stream:
                async for e in stream:
                    got.append(e)
                    if e.get("id") == "m11":
                        break
            return got

    got = run(main())
    assert got[0] == {"type": RESYNC, "expired_cursor": "2-0"}
    assert [e["id"] for e in got[1:]] == ["m7", "m8", "m9", "m11"]
    assert [s.get("cursor") for s in script.sockets] == ["2-0", None]  # the fallback socket: no cursor
    assert [uri for _, uri, _, _ in script.requests] == ["/api/v1/events?limit=200",
                                                        "/api/v1/events?cursor=8-0&limit=200"]


def test_a_stream_whose_token_is_refused_raises_401():
    empty = (200, {"events": [], "next_cursor": None, "has_more": False}, {})
    script = Script([empty, empty])  # an empty log: read before the socket, and after it opened
    script.socket_frames = [([], 4001)]

    async def main():
        async with StandIn(script) as url, Client(url, token="t") as client:
            try:
                async for _ in client.events(backoff_base=0.01):
                    pass
            except CourierError as e:
                await asyncio.sleep(0.2)  # the server closes the TCP connection after its close frame
                return e

    raised = run(main())
    assert isinstance(raised, CourierError) and raised.status == 401


def test_backoff_grows_with_jitter_up_to_its_ceiling():
    for attempt in range(12):
        top = min(5.0, 0.2 * 2 ** attempt)
        delays = [backoff_delay(attempt, 0.2, 5.0) for _ in range(200)]
        assert all(top / 2 <= d <= top for d in delays)
        assert len(set(delays)) > 1


def test_cursors_are_ordered_by_their_integer_pair():
    assert cursor_order("10-0") > cursor_order("9-5") > cursor_order("9-4")
    assert cursor_order("x") is None and cursor_order(None) is None
