"""POST /api/v1/messages (a private send) answered below Tornado's RequestHandler.

A send is the hottest call there is, and most of its cost in the gateway was
Tornado's web layer rather than Courier: routing by regular expression, a
RequestHandler per request (its response headers, template namespace, the
checks of _execute, finish() and flush()). Here the request still goes through
Tornado's HTTP server and HTTP/1.1 connection (parsing, keep-alive, 100-continue;
a body over the size limit is refused first, by body_limit.py), and only that one
route is answered by a small HTTPMessageDelegate (Tornado's documented extension point); every other request,
and any other method on this path, goes to the Application as before.

The answers are the contract's, the same as every other route's: 201 with the
message, or the error body of entrypoints/http/errors.py, CORS headers, the
access log line, the error counter. tests/e2e exercise this path on every send.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from email.utils import formatdate

import orjson
import tornado.httputil
import tornado.web

from entrypoints.http import body_limit
from entrypoints.http.base import SERVER, bearer_token_in, cors_headers, parse_json_object
from entrypoints.http.client_address import ClientAddresses
from entrypoints.http.errors import answer_to, count_failure, error_body, log_failure
from entrypoints.http.refusals import Refusals, Refused
from entrypoints.logs import log_access

log = logging.getLogger("courier.http")

PATH = "/api/v1/messages"
_JSON = "application/json; charset=UTF-8"
_pending: set[asyncio.Task] = set()  # the event loop keeps only weak references to tasks


class _Date:
    """The Date header, formatted once a second."""

    second = -1
    value = ""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.value = second, formatdate(second, usegmt=True)
        return cls.value


class SendRouter(tornado.httputil.HTTPServerConnectionDelegate):
    """What the HTTPServer serves: the fast send, or else the Application."""

    def __init__(self, application: tornado.web.Application, send_private, authenticate, metrics, origins,
                 client_addresses: ClientAddresses):
        self.application = application
        self.send_private = send_private
        self.authenticate = authenticate
        self.metrics = metrics
        self.origins = origins
        self.client_addresses = client_addresses
        self.refusals = Refusals(metrics, origins)

    def start_request(self, server_conn, request_conn) -> tornado.httputil.HTTPMessageDelegate:
        return _Switch(self, server_conn, request_conn)

    def on_close(self, server_conn) -> None:
        self.application.on_close(server_conn)


class _Switch(tornado.httputil.HTTPMessageDelegate):
    __slots__ = ("_router", "_server_conn", "_request_conn", "_delegate")

    def __init__(self, router: SendRouter, server_conn, request_conn):
        self._router = router
        self._server_conn = server_conn
        self._request_conn = request_conn
        self._delegate: tornado.httputil.HTTPMessageDelegate | None = None

    def headers_received(self, start_line, headers):
        # Every request of the connection is seen, by the handlers and the access log,
        # as coming from its client's address (past the trusted proxies, if any).
        addresses = self._router.client_addresses
        if addresses.trusts_proxies:
            context = self._request_conn.context
            peer = getattr(context, "courier_peer", None)
            if peer is None:
                peer = context.courier_peer = context.remote_ip  # the socket's peer, before any request
            context.remote_ip = addresses.of(peer, headers)
        if body_limit.is_too_large(headers):
            body_limit.refuse(self._request_conn, start_line, headers, self._router.refusals)
            return None  # the connection is detached: Tornado calls nothing more here
        if start_line.method == "POST" and start_line.path.partition("?")[0] == PATH:
            self._delegate = _PrivateSend(self._router, self._request_conn, start_line, headers)
        else:
            self._delegate = self._router.application.start_request(self._server_conn, self._request_conn)
        try:
            return self._delegate.headers_received(start_line, headers)
        except tornado.httputil.HTTPInputError:
            # Tornado's request object refuses a missing or doubled Host header and a query
            # string it cannot parse; left to Tornado, that is a bare 400 with no body.
            self._delegate = None
            self._router.refusals.answer_detached(self._request_conn, Refused(
                400, "bad_request", "the request's Host header or query string is malformed",
                start_line=start_line, headers=headers, discard=body_limit.declared_length(headers)))
            return None  # detached, as above

    def data_received(self, chunk: bytes):
        return self._delegate.data_received(chunk)

    def finish(self) -> None:
        self._delegate.finish()

    def on_connection_close(self) -> None:
        if self._delegate is not None:
            self._delegate.on_connection_close()


class _PrivateSend(tornado.httputil.HTTPMessageDelegate):
    __slots__ = ("_router", "_connection", "_start_line", "_headers", "_chunks", "_started")

    def __init__(self, router: SendRouter, connection, start_line, headers):
        self._router = router
        self._connection = connection
        self._start_line = start_line
        self._headers = headers
        self._chunks: list[bytes] = []
        self._started = time.perf_counter()

    def headers_received(self, start_line, headers):
        return None

    def data_received(self, chunk: bytes):
        self._chunks.append(chunk)

    def finish(self) -> None:
        task = asyncio.ensure_future(self._answer())
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    def on_connection_close(self) -> None:
        pass  # an accepted send goes ahead; the client retries with its client_msg_id

    async def _answer(self) -> None:
        router = self._router
        try:
            user_id = (await router.authenticate(bearer_token_in(self._headers))).user_id
            body = parse_json_object(b"".join(self._chunks))
            message = await router.send_private(user_id, body)
        except Exception as error:
            log_failure("POST", PATH, error)
            answer = answer_to(error)
            count_failure(router.metrics, answer)
            self._reply(answer.status, error_body(answer.status, answer.code, answer.message), answer.headers)
        else:
            router.metrics.accepted.inc()
            self._reply(201, orjson.dumps(message.public()))

    def _reply(self, status: int, body: bytes, extra: Sequence[tuple[str, str]] = ()) -> None:
        headers = tornado.httputil.HTTPHeaders()
        headers["Server"] = SERVER
        headers["Content-Type"] = _JSON
        headers["Date"] = _Date.now()
        headers["Content-Length"] = str(len(body))
        for name, value in (*cors_headers(self._headers.get("Origin"), self._router.origins), *extra):
            headers[name] = value
        connection = self._connection
        try:
            connection.write_headers(
                tornado.httputil.ResponseStartLine("HTTP/1.1", status, tornado.httputil.responses.get(status, "")),
                headers, body,
            )
            connection.finish()
        except Exception:  # the client went away meanwhile: nothing to answer
            log.debug("could not answer POST %s", PATH, exc_info=True)
        context = connection.context
        started = self._started
        log_access(status, "POST", self._start_line.path, getattr(context, "remote_ip", "-"),
                   lambda: time.perf_counter() - started)
