"""Error answers written on the bare connection, below every handler: a request refused
before or while it is read (malformed HTTP, a body or headers over the limit, a body
that takes too long).

Tornado's HTTP/1.1 server meets these by writing a bare "400 Bad Request" with no body,
or nothing at all, and closing. The contract wants every error as its JSON body, so
body_limit.py and tornado_overrides.py turn those moments into a Refused, answered here:

- the status, `Server`, the contract's JSON error body, `Connection: close` (a request
  that could not be parsed cannot be trusted to end where it says: the connection ends
  with it), and the CORS headers when the request's headers could be read;
- the access log line and the error counter, as for every other answer;
- then a lingering close, as nginx does: the client may still be sending (the rest of a
  body, of headers over the limit), and closing a socket with unread data makes the
  kernel reset the connection, which a client that sends before it reads gets instead
  of the answer. So what it still sends is read and thrown away (at most DISCARD_BYTES,
  for at most DISCARD_SECONDS) before the socket is closed.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from email.utils import formatdate
from http import HTTPStatus

import tornado.httputil
import tornado.iostream

from entrypoints.http.base import SERVER, cors_headers
from entrypoints.http.errors import ErrorAnswer, count_failure, error_body
from entrypoints.logs import log_access

log = logging.getLogger("courier.http")

DISCARD_BYTES = 8 * 1024 * 1024  # read and thrown away at most, after an answer
DISCARD_SECONDS = 10.0  # for at most this long
# When the client did not say how much it still sends: once it has been silent this long,
# it has sent what it meant to (or is stalling): close.
LINGER_IDLE = 2.0
UNKNOWN = None  # Refused.discard: the client may still send anything
_pending: set[asyncio.Task] = set()  # the event loop keeps only weak references to tasks


class Refused(Exception):
    """A request answered with an error on the bare connection. `start_line` and
    `headers` are what could be read of it (None when nothing could be trusted);
    `discard` how many bytes the client still sends: UNKNOWN, a declared length,
    or 0 when nothing is to be read any more."""

    def __init__(self, status: int, code: str, message: str, *,
                 start_line: tornado.httputil.RequestStartLine | None = None,
                 headers: tornado.httputil.HTTPHeaders | None = None, discard: int | None = UNKNOWN):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.start_line = start_line
        self.headers = headers
        self.discard = discard


class Refusals:
    """Answers the Refused requests of one server: counts them in its metrics, and
    adds the CORS headers its allowed origins call for."""

    def __init__(self, metrics, origins: frozenset | set | None):
        self.metrics = metrics
        self.origins = origins

    async def answer(self, stream: tornado.iostream.IOStream, refused: Refused, remote_ip: str | None) -> None:
        """Write the answer on `stream`, then close it (after the lingering read)."""
        started = time.perf_counter()
        count_failure(self.metrics, ErrorAnswer(refused.status, refused.code, refused.message, []))
        line = refused.start_line
        log_access(refused.status, line.method if line else "-", line.path if line else "-", remote_ip or "-",
                   lambda: time.perf_counter() - started)
        await answer_then_close(stream, self._response(refused), refused.discard)

    def answer_detached(self, request_conn, refused: Refused) -> None:
        """Answer on a connection taken over from Tornado (HTTP1Connection.detach(), only
        from HTTPMessageDelegate.headers_received: Tornado reads nothing more of it)."""
        remote_ip = getattr(request_conn.context, "remote_ip", None)
        task = asyncio.ensure_future(self.answer(request_conn.detach(), refused, remote_ip))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    def _response(self, refused: Refused) -> bytes:
        body = error_body(refused.status, refused.code, refused.message)
        origin = refused.headers.get("Origin") if refused.headers is not None else None
        lines = [
            f"HTTP/1.1 {refused.status} {HTTPStatus(refused.status).phrase}",
            f"Server: {SERVER}",
            f"Date: {formatdate(usegmt=True)}",
            "Content-Type: application/json; charset=UTF-8",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in cors_headers(origin, self.origins)),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def answer_then_close(stream: tornado.iostream.IOStream, response: bytes, discard: int | None) -> None:
    """Write `response`, read and throw away what the client still sends (see the module's
    docstring; `discard` as in Refused), then close."""
    try:
        await stream.write(response)
        if discard == 0:
            return
        if discard is UNKNOWN:
            # The answer is all the client gets: say so at once (FIN), so that a client
            # waiting for the end of the connection need not wait for the read below.
            stream.socket.shutdown(socket.SHUT_WR)
        await _discard(stream, DISCARD_BYTES if discard is UNKNOWN else min(discard, DISCARD_BYTES),
                       LINGER_IDLE if discard is UNKNOWN else DISCARD_SECONDS)
    except (TimeoutError, OSError, tornado.iostream.StreamClosedError):
        pass  # the client went away, went silent, or took too long: nothing more to do
    except Exception:  # a connection's end must never fail the server
        log.debug("closing a refused connection failed", exc_info=True)
    finally:
        stream.close()


async def _discard(stream: tornado.iostream.IOStream, to_discard: int, silent_for: float) -> None:
    """Read and drop up to `to_discard` bytes within DISCARD_SECONDS; TimeoutError once the
    client has sent nothing for `silent_for` seconds (or the time is up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DISCARD_SECONDS
    while to_discard > 0:
        left = deadline - loop.time()
        if left <= 0:
            return
        chunk = await asyncio.wait_for(stream.read_bytes(min(to_discard, 64 * 1024), partial=True),
                                       min(left, silent_for))
        to_discard -= len(chunk)
