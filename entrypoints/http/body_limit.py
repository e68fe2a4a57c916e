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
  refusals.DISCARD_BYTES within refusals.DISCARD_SECONDS, before the connection is
  closed: closing a socket with unread data makes the kernel reset it, and a client
  that sends its whole body before reading (most do) would see a reset instead of the 413.

A chunked body (no declared length) that outgrows the limit is found out only halfway
through, inside Tornado's body reader: tornado_overrides.py answers that one.
"""
from __future__ import annotations

import tornado.httputil

from entrypoints.http.refusals import Refusals, Refused

MAX_BODY_BYTES = 1024 * 1024


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


def too_large(**what_was_read) -> Refused:
    """The 413 of a body over MAX_BODY_BYTES (Refused's keyword arguments)."""
    return Refused(413, "too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes", **what_was_read)


def refuse(request_conn, start_line, headers: tornado.httputil.HTTPHeaders, refusals: Refusals) -> None:
    """Answer 413 on a request whose headers are in (see the module's docstring). Must be
    called from HTTPMessageDelegate.headers_received: Tornado reads nothing more of it."""
    refusals.answer_detached(
        request_conn, too_large(start_line=start_line, headers=headers, discard=declared_length(headers) or 0))
