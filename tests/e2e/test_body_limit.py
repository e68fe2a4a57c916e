"""A body over the size limit (1 MiB) is answered 413 with the contract's error body,
on every route, with or without "Expect: 100-continue", and a client that sends its
whole body before reading gets the answer, not a reset (entrypoints/http/body_limit.py)."""
from __future__ import annotations

import json

import pytest
import tornado.tcpclient

from entrypoints.http import refusals
from entrypoints.http.body_limit import MAX_BODY_BYTES
from tests.e2e.support import assert_error


def body_of_length(length: int, **fields) -> bytes:
    """A JSON object of exactly `length` bytes (its content padded)."""
    empty = json.dumps({**fields, "content": ""}).encode()
    return json.dumps({**fields, "content": "x" * (length - len(empty))}).encode()


@pytest.mark.gen_test(timeout=60)
async def test_a_body_over_the_limit_is_413_json_on_every_route(api):
    a, b = await api.register(), await api.register()
    raw = body_of_length(MAX_BODY_BYTES + 1, to_user_id=b.user_id)
    for method, path in (
        ("POST", "/api/v1/messages"),  # the fast send path
        ("POST", "/api/v1/groups"),
        ("POST", "/api/v1/users/register"),
        ("PUT", "/api/v1/nope"),
    ):
        reply = await api.call(method, path, token=a.token, raw=raw, headers={"Origin": "http://app.example"})
        assert_error(reply, 413, "too_large")
        assert reply.headers["Access-Control-Allow-Origin"] == "*"  # a web app can read the answer
        assert reply.headers["Connection"] == "close"
    # At the limit exactly, the body is read and the route answers (here: the content is too long).
    assert_error(await api.call("POST", "/api/v1/messages", token=a.token,
                                raw=body_of_length(MAX_BODY_BYTES, to_user_id=b.user_id)), 413, "content_too_long")
    assert (await api.send(a, b, "still serving")).status == 201


@pytest.mark.gen_test(timeout=60)
async def test_a_client_expecting_100_continue_gets_the_413_instead(api):
    a, b = await api.register(), await api.register()
    response = await api.http.fetch(
        api.running.base_url + "/api/v1/messages", method="POST", expect_100_continue=True, raise_error=False,
        body=body_of_length(2 * MAX_BODY_BYTES, to_user_id=b.user_id),
        headers={"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"},
    )
    assert response.code == 413
    assert json.loads(response.body)["error"]["code"] == "too_large"


@pytest.mark.gen_test(timeout=60)
async def test_the_answer_comes_before_the_body_and_the_body_is_drained_before_the_close(api):
    size = 3 * MAX_BODY_BYTES
    stream = await tornado.tcpclient.TCPClient().connect("127.0.0.1", api.running.port)
    try:
        await stream.write(b"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n" % size)
        head = await stream.read_until(b"\r\n\r\n")  # no byte of the body sent yet
        assert head.startswith(b"HTTP/1.1 413 "), head
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.startswith(b"Content-Length"))
        assert json.loads(await stream.read_bytes(length))["error"]["code"] == "too_large"
        # The client sends its body all the same (as most do): the server reads it, so
        # every byte goes out without a reset, and only then closes.
        chunk = b"x" * 65536
        for _ in range(size // len(chunk)):
            await stream.write(chunk)
        assert await stream.read_until_close() == b""
    finally:
        stream.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_client_that_never_sends_the_body_it_declared_is_closed_after_a_while(api, monkeypatch):
    monkeypatch.setattr(refusals, "DISCARD_SECONDS", 0.3)
    stream = await tornado.tcpclient.TCPClient().connect("127.0.0.1", api.running.port)
    try:
        await stream.write(b"POST /api/v1/groups HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        answer = await stream.read_until_close()  # returns once the server closes
        assert answer.startswith(b"HTTP/1.1 413 ") and b'"too_large"' in answer
    finally:
        stream.close()
