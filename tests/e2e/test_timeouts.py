"""Slow clients cannot hold a connection for ever: a body must arrive within
COURIER_BODY_TIMEOUT (else 408 with the JSON error, and the connection closes), and a
connection with no request, or whose headers do not arrive, is closed after
COURIER_IDLE_TIMEOUT. The bounds asserted are generous: the machine is slow and shared.

Embedded only: this is the HTTP layer below every route, the same code in both modes."""
from __future__ import annotations

import asyncio
import json

import pytest

from tests.e2e.raw_http import CLOSE_WITHIN, assert_json_error, exchange, parse, read_to_the_end
from tests.e2e.support import with_settings

pytestmark = [pytest.mark.embedded_only, with_settings(body_timeout=1.0, idle_timeout=1.5)]


async def trickle(port: int, head: bytes, byte: bytes, every: float = 0.1, within: float = CLOSE_WITHIN):
    """Send `head`, then `byte` every `every` seconds while reading what the server answers;
    (the answer, how many bytes were trickled)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0

    async def keep_sending() -> None:
        nonlocal sent
        try:
            while True:
                await asyncio.sleep(every)
                writer.write(byte)
                await writer.drain()
                sent += 1
        except (ConnectionResetError, BrokenPipeError):
            pass

    writer.write(head)
    sender = asyncio.ensure_future(keep_sending())
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        data, closed = await read_to_the_end(reader, within)
        return parse(data, closed, loop.time() - started), sent
    finally:
        sender.cancel()
        writer.close()


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/groups"])
@pytest.mark.gen_test(timeout=60)
async def test_a_body_that_trickles_in_is_answered_408_and_the_connection_closes(courier, api, path):
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    answer, sent = await trickle(courier.port, head.encode(), b" ")
    assert_json_error(answer, 408, "request_timeout")
    assert sent < 999, sent  # it was cut short, long before its body could have ended
    metrics = (await api.call("GET", "/metrics")).body
    assert 'courier_errors_total{code="request_timeout"} 1.0' in metrics, metrics


@pytest.mark.gen_test(timeout=60)
async def test_a_chunked_body_that_trickles_in_is_answered_408(courier):
    head = b"POST /api/v1/groups HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"
    answer, _ = await trickle(courier.port, head, b"1\r\n \r\n")
    assert_json_error(answer, 408, "request_timeout")


@pytest.mark.gen_test(timeout=60)
async def test_a_connection_that_sends_no_request_is_closed(courier):
    answer = await exchange(courier.port, b"")
    assert answer.closed and answer.status is None, answer


@pytest.mark.gen_test(timeout=60)
async def test_a_request_whose_headers_trickle_in_is_closed(courier):
    answer, sent = await trickle(courier.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a")
    assert answer.closed and answer.status is None, answer
    assert sent < CLOSE_WITHIN / 0.1, sent


@pytest.mark.gen_test(timeout=60)
async def test_a_body_in_pieces_within_the_timeout_and_keep_alive_within_the_idle_timeout_are_served(courier, api):
    a, b = await api.register(), await api.register()
    body = json.dumps({"to_user_id": b.user_id, "content": "in two pieces"}).encode()
    head = (f"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {a.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", courier.port)
    try:
        for _ in range(2):  # the second request on the same connection, after a pause
            writer.write(head + body[:10])
            await asyncio.sleep(0.1)
            writer.write(body[10:])
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CLOSE_WITHIN)
            assert answer.startswith(b"HTTP/1.1 201 "), answer
            length = next(int(line.split(b":")[1]) for line in answer.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            await asyncio.sleep(0.3)
    finally:
        writer.close()
