"""A request whose body is over the size limit is answered 413 with the contract's
error body.

Tornado's HTTP/1.1 connection refuses a body over HTTPServer(max_body_size=...) by
writing a bare "400 Bad Request" and closing (tornadoweb/tornado#2900): no JSON, no
CORS header, and after a "100 Continue" it had itself invited. So a request that
declares its length (Content-Length: what browsers and HTTP libraries send for a JSON
body) is refused here, as soon as its headers are read:

- the answer is written on the connection taken over from Tornado (detach(), as a
  WebSocket upgrade does), before any of the body is read; a client that asked
  "Expect: 100-continue" never sends it;
- then the body the client may already be sending is read and thrown away, up to
  DISCARD_BYTES within DISCARD_SECONDS, before the connection is closed: closing a
  socket with unread data makes the kernel reset it, and a client that sends its
  whole body before reading (most do) would see a reset instead of the 413.

A chunked body (no declared length) that outgrows the limit still meets Tornado's
bare 400: it is found out only halfway through, inside Tornado's body reader.
"""
from __future__ import annotations

import asyncio
import logging
import time

import tornado.httputil
import tornado.iostream

from entrypoints.http.base import cors_headers
from entrypoints.http.errors import ErrorAnswer, count_failure, error_body
from entrypoints.logs import log_access

log = logging.getLogger("courier.http")

MAX_BODY_BYTES = 1024 * 1024
DISCARD_BYTES = 8 * MAX_BODY_BYTES
DISCARD_SECONDS = 10.0
_pending: set[asyncio.Task] = set()  # the event loop keeps only weak references to tasks


def declared_length(headers: tornado.httputil.HTTPHeaders) -> int | None:
    """The Content-Length a request declares; None when it declares none (or one that
    Tornado refuses itself as malformed)."""
    value = headers.get("Content-Length")
    if value is None or not value.isdigit():
        return None
    return int(value)


def is_too_large(headers: tornado.httputil.HTTPHeaders) -> bool:
    length = declared_length(headers)
    return length is not None and length > MAX_BODY_BYTES


def refuse(request_conn, start_line, headers: tornado.httputil.HTTPHeaders, origins, metrics) -> None:
    """Answer 413 on a request whose headers are in (see the module's docstring). Must be
    called from HTTPMessageDelegate.headers_received: Tornado reads nothing more of it."""
    started = time.perf_counter()
    answer = ErrorAnswer(413, "too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes", [])
    body = error_body(answer.status, answer.code, answer.message)
    lines = [
        "HTTP/1.1 413 Request Entity Too Large",
        "Content-Type: application/json; charset=UTF-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in cors_headers(headers.get("Origin"), origins)),
    ]
    stream = request_conn.detach()
    task = asyncio.ensure_future(_answer_then_close(stream, ("\r\n".join(lines) + "\r\n\r\n").encode() + body,
                                                    declared_length(headers) or 0))
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    count_failure(metrics, answer)
    context = request_conn.context
    log_access(413, start_line.method, start_line.path, getattr(context, "remote_ip", "-"),
               lambda: time.perf_counter() - started)


async def _answer_then_close(stream: tornado.iostream.IOStream, response: bytes, declared: int) -> None:
    try:
        await stream.write(response)
        to_discard = min(declared, DISCARD_BYTES)
        deadline = asyncio.get_running_loop().time() + DISCARD_SECONDS
        while to_discard > 0:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            chunk = await asyncio.wait_for(stream.read_bytes(min(to_discard, 64 * 1024), partial=True), left)
            to_discard -= len(chunk)
    except (TimeoutError, tornado.iostream.StreamClosedError):
        pass  # the client went away, or took too long: nothing more to do
    except Exception:  # a connection's end must never fail the server
        log.debug("closing a refused connection failed", exc_info=True)
    finally:
        stream.close()
