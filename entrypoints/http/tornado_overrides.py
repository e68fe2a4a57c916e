"""Courier's changes to Tornado's HTTP/1.1 server and WebSocket protocol, in one place,
and why.

Each override is small and relies on private names of the pinned Tornado (6.6.1): they
are listed in PRIVATE_NAMES, which tests/unit/test_tornado_overrides.py checks against
the installed Tornado, so that an upgrade renaming one fails loudly instead of quietly
bringing back what is fixed here.

Malformed HTTP. Tornado meets a request it cannot parse (a request line or header line
it cannot read, a NUL in either, both Transfer-Encoding and Content-Length, a bad chunk)
in HTTP1Connection._read_message_inner, by writing a bare "HTTP/1.1 400 Bad Request"
with no body and closing. RefusingHTTP1Connection wraps the methods that raise there
(_parse_headers, _read_body, _read_chunked_body) to raise refusals.Refused instead, which
that handler does not catch, and RefusingHTTP1ServerConnection's request loop answers it
with the contract's JSON error (refusals.py). A chunked body over max_body_size is the
same, as 413 (a declared Content-Length over it is refused earlier, by body_limit.py).
On the success path this adds a call frame per wrapped method and one regular expression
match of the request line (~0.3 us a request; Tornado's own parse of it follows, and
cannot be hooked).

Slow bodies. Tornado's own body timeout (HTTPServer(body_timeout=...)) closes the
connection without a word, and wraps every body read in a Task and a timer (~50 us a
request in a micro-benchmark here, for every request with a body, sends included).
RefusingHTTP1Connection arms a bare timer only when the body is not already in the read
buffer once the headers are parsed (a small JSON body usually comes in the same packet
as its headers; from some clients, such as Python's http.client, in the next one), and
when it fires it answers 408 on the stream itself and closes it: the read still waiting
then ends (StreamClosedError), which the request loop takes as the connection's end.
No Task is made to race the read against the timer. The idle timeout is Tornado's own
(idle_connection_timeout: the time a connection may wait for a request's headers),
which does the job: a connection closed before a request came has nothing to answer.

Headers over the limit. Headers are read by IOStream.read_until_regex(max_bytes=...);
past max_bytes the IOStream closes the socket itself (UnsatisfiableReadError) and the
client gets no answer at all. SocketKeepingIOStream keeps the socket open past that
close, and the request loop answers 431 on it.

WebSocket protocol errors. Tornado drops the TCP connection of a client that breaks
the framing rules, with no close frame: ProtocolErrorCloses1002 sends 1002 first.
"""
from __future__ import annotations

import asyncio
import socket

import tornado.http1connection
import tornado.httputil
import tornado.iostream
import tornado.websocket
from tornado.log import gen_log

from entrypoints.http import body_limit
from entrypoints.http.refusals import Refusals, Refused

# The private names of the pinned Tornado that the overrides of Courier rely on (here, in
# listener.py and in ws.py): "module.Class" (or "module") -> attribute names, class or
# instance. tests/unit/test_tornado_overrides.py checks that each still exists.
PRIVATE_NAMES: dict[str, tuple[str, ...]] = {
    "tornado.http1connection.HTTP1Connection": (
        "_read_message_inner", "_parse_headers", "_read_body", "_read_fixed_body", "_read_chunked_body",
        "_request_start_line", "_request_headers", "_max_body_size",
    ),
    "tornado.http1connection.HTTP1ServerConnection": ("_server_request_loop",),
    "tornado.httputil._ABNF": ("request_line",),
    "tornado.httpserver": ("_HTTPRequestContext",),
    "tornado.httpserver.HTTPServer": (
        "conn_params", "protocol", "trusted_downstream", "_connections", "_sockets", "_handlers",
        "ssl_options", "max_buffer_size", "read_chunk_size", "_handle_connection",
    ),
    "tornado.iostream.IOStream": ("close_fd", "error", "socket", "_read_buffer_size", "_write_buffer", "_connecting"),
    "tornado.websocket": ("_WebSocketParams",),
    "tornado.websocket.WebSocketHandler": ("_detach_stream",),
    "tornado.websocket.WebSocketProtocol13": (
        "_receive_frame", "_abort", "_handle_message", "_receive_frame_loop", "_challenge_response",
        "_frame_mask", "_frame_compressed", "server_terminated", "stream",
    ),
}

# What _read_chunked_body raises for a body over max_body_size (the one way to tell it
# from a malformed chunk; the unit test checks Tornado still says exactly this).
CHUNKED_TOO_LARGE = "chunked body too large"
_REQUEST_LINE = tornado.httputil._ABNF.request_line
_answering: set[asyncio.Task] = set()  # the event loop keeps only weak references to tasks


_GOOD_REQUEST_LINES: dict[str, None] = {}  # lines found good, so that a client's next same line is not matched again
_GOOD_REQUEST_LINES_KEPT = 1024


def is_request_line(line: str) -> bool:
    """The check of tornado.httputil.parse_request_start_line (its regular expression,
    and HTTP/1.x only), without building the RequestStartLine it returns."""
    if line in _GOOD_REQUEST_LINES:
        return True
    match = _REQUEST_LINE.fullmatch(line)
    if match is None or not match.group(3).startswith("HTTP/1"):
        return False
    if "?" in line:
        return True  # a query may carry a token: not kept
    if len(_GOOD_REQUEST_LINES) >= _GOOD_REQUEST_LINES_KEPT:
        _GOOD_REQUEST_LINES.clear()
    _GOOD_REQUEST_LINES[line] = None
    return True


class RefusingHTTP1Connection(tornado.http1connection.HTTP1Connection):
    """One request of a server connection: Tornado's, raising Refused where Tornado would
    answer a bare 400, and 408 when its body takes longer than `body_timeout` seconds
    (see the module's docstring)."""

    def __init__(self, stream: tornado.iostream.IOStream, is_client: bool, params=None, context=None,
                 body_timeout: float | None = None, refusals: Refusals | None = None):
        super().__init__(stream, is_client, params, context)
        self.body_timeout = body_timeout
        self.refusals = refusals

    def _parse_headers(self, data: bytes) -> tuple[str, tornado.httputil.HTTPHeaders]:
        try:
            start_line, headers = super()._parse_headers(data)
        except tornado.httputil.HTTPInputError:
            raise Refused(400, "bad_request", "a header line is malformed") from None
        # Tornado parses the request line next: its failure there is a bare 400 as well.
        if not is_request_line(start_line):
            raise Refused(400, "bad_request", "the request line is malformed (expected: METHOD /path HTTP/1.1)")
        return start_line, headers

    def _read_body(self, code: int, headers: tornado.httputil.HTTPHeaders, delegate):
        try:
            return super()._read_body(code, headers, delegate)
        except tornado.httputil.HTTPInputError:
            length = body_limit.declared_length(headers)  # as Tornado left it ("5, 5" -> "5")
            if length is not None and length > self._max_body_size:
                raise self._refused(body_limit.too_large()) from None
            raise self._refused(Refused(
                400, "bad_request", "the body's framing is malformed (one Content-Length, or Transfer-Encoding: "
                                    "chunked, never both)")) from None

    def _read_fixed_body(self, content_length: int, delegate):
        reading = super()._read_fixed_body(content_length, delegate)
        if self.stream._read_buffer_size >= content_length:
            return reading  # all of it is here: nothing to wait for, no timer
        return self._in_time(reading)

    async def _read_chunked_body(self, delegate) -> None:
        try:
            await self._in_time(super()._read_chunked_body(delegate))
        except tornado.httputil.HTTPInputError as error:
            if str(error) == CHUNKED_TOO_LARGE:
                raise self._refused(body_limit.too_large()) from None
            raise self._refused(Refused(400, "bad_request", "the chunked body is malformed")) from None

    async def _in_time(self, reading) -> None:
        """Await `reading` (a body being read); if it takes more than body_timeout seconds,
        the answer is 408 (_body_too_slow)."""
        if self.body_timeout is None or self.refusals is None:
            await reading
            return
        io_loop = self.stream.io_loop
        timer = io_loop.call_later(self.body_timeout, self._body_too_slow)
        try:
            await reading
        finally:
            io_loop.remove_timeout(timer)

    def _body_too_slow(self) -> None:
        """The body did not arrive in time: answer 408 on the stream and close it (nothing
        more is read from it: discard=0). The read still waiting then fails, and the
        request loop ends."""
        refused = self._refused(Refused(
            408, "request_timeout", f"the request body did not arrive within {self.body_timeout:g} seconds",
            discard=0))
        answering = asyncio.ensure_future(
            self.refusals.answer(self.stream, refused, getattr(self.context, "remote_ip", None)))
        _answering.add(answering)
        answering.add_done_callback(_answering.discard)

    def _refused(self, refused: Refused) -> Refused:
        """`refused`, with what was read of the request (its line and headers)."""
        refused.start_line = self._request_start_line
        refused.headers = self._request_headers
        return refused


class RefusingHTTP1ServerConnection(tornado.http1connection.HTTP1ServerConnection):
    """A server connection whose requests are RefusingHTTP1Connections, and which answers
    their Refused (and headers over the limit) before it ends."""

    def __init__(self, stream: tornado.iostream.IOStream, params, context, refusals: Refusals,
                 body_timeout: float | None = None):
        super().__init__(stream, params, context)
        self.refusals = refusals
        self.body_timeout = body_timeout

    async def _server_request_loop(self, delegate) -> None:
        """Tornado's own loop (6.6.1: it names its connection class itself, so it is
        copied; the unit test fingerprints Tornado's), with RefusingHTTP1Connection and
        the two answers marked below."""
        try:
            while True:
                conn = RefusingHTTP1Connection(self.stream, False, self.params, self.context, self.body_timeout,
                                               self.refusals)
                request_delegate = delegate.start_request(self, conn)
                try:
                    ret = await conn.read_response(request_delegate)
                except Refused as refused:  # Courier: answer it
                    await self.refusals.answer(self.stream, refused, self._remote_ip())
                    return
                except tornado.iostream.StreamClosedError:  # Courier: answer an overflow
                    await self._answer_an_overflow(conn)
                    return
                except (tornado.iostream.UnsatisfiableReadError, asyncio.CancelledError):
                    return
                except Exception:
                    gen_log.error("Uncaught exception", exc_info=True)
                    conn.close()
                    return
                if not ret:
                    return
                await asyncio.sleep(0)
        finally:
            delegate.on_close(self)

    async def _answer_an_overflow(self, conn: RefusingHTTP1Connection) -> None:
        """When the stream closed itself on a read past its max_bytes, its socket is still
        open (SocketKeepingIOStream): headers over max_header_size are answered 431, a
        chunk-size line over 64 bytes 400. Any other close has no socket left."""
        kept = self.stream.take_kept_socket() if isinstance(self.stream, SocketKeepingIOStream) else None
        if kept is None:
            return
        self.stream = tornado.iostream.IOStream(kept)  # what close() closes from now on
        if conn._request_start_line is None:
            refused = Refused(431, "headers_too_large",
                              f"the request's headers are larger than {self.params.max_header_size} bytes")
        else:
            refused = conn._refused(Refused(400, "bad_request", "the chunked body is malformed"))
        await self.refusals.answer(self.stream, refused, self._remote_ip())

    def _remote_ip(self) -> str | None:
        return getattr(self.context, "remote_ip", None)


class SocketKeepingIOStream(tornado.iostream.IOStream):
    """An IOStream that, when it closes itself because a read went past its max_bytes
    (UnsatisfiableReadError: Tornado's way to end headers over the limit), leaves its
    socket open for take_kept_socket(): the server still has an answer to write there.
    close_fd() is BaseIOStream's hook for subclasses; close() sets `error` before it."""

    _kept_socket: socket.socket | None = None

    def close_fd(self) -> None:
        if isinstance(self.error, tornado.iostream.UnsatisfiableReadError):
            self._kept_socket, self.socket = self.socket, None
            return
        super().close_fd()

    def take_kept_socket(self) -> socket.socket | None:
        kept, self._kept_socket = self._kept_socket, None
        return kept


CLOSE_PROTOCOL_ERROR = 1002


class ProtocolErrorCloses1002(tornado.websocket.WebSocketProtocol13):
    """A WebSocket that fails a client breaking the framing rules as RFC 6455 says
    (section 7.1.7): a close frame with 1002 (protocol error), then the end of the TCP
    connection. Tornado sends no close frame: it _abort()s at once on RSV bits set with
    no extension negotiated, a reserved opcode, a control frame over 125 bytes or in
    fragments, and a continuation of nothing.

    Each of those _abort()s is called from within _receive_frame (or the _handle_message
    it calls) while the connection is open and not closing; Tornado's other _abort()s
    come once the stream is closed, or after a close frame was sent (server_terminated,
    as for 1009). So an _abort() during _receive_frame on an open connection that has
    not started closing sends the 1002 frame first. _receive_frame runs once per frame
    from the client (pings, pongs): pushes to the client never go through it."""

    _receiving_frame = False

    async def _receive_frame(self) -> None:
        self._receiving_frame = True
        try:
            await super()._receive_frame()
        finally:
            self._receiving_frame = False

    def _abort(self) -> None:
        if (self._receiving_frame and not self.server_terminated
                and self.stream is not None and not self.stream.closed()):
            self.close(CLOSE_PROTOCOL_ERROR, "protocol error")
        super()._abort()
