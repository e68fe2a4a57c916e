"""GET /ws: the WebSocket a client receives its pushes on.

Lifecycle, and why:
- The token is checked before the upgrade (401 as plain HTTP), so a refused
  client never holds a socket.
- open() registers the connection with the gateway and replays from the
  client's cursor; Tornado holds incoming frames until open() finishes.
- Ping frames every ws_ping_interval seconds; a peer that has not answered
  within ws_ping_timeout is dropped (dead peers, half-open TCP).
- The socket is closed with 4001 when the token expires, so a session cannot
  keep listening forever. Pings, pong deadlines and expiry are kept by one
  Heartbeat for all the sockets of the process, not a timer each. It is closed
  with 4001 too when its token is revoked or its user removed (SessionWatch).
- A user, and a client address, may have only so many sockets open (AdmitSocket):
  past that the upgrade is answered 429 before it is accepted.
- Each connection may buffer at most ws_write_buffer bytes of unsent frames;
  a reader that falls further behind is dropped (1013) and resumes from its
  cursor, so one slow client never grows the server's memory without bound.

Pushes are framed once and written without Tornado's write_message: see
Frames and SocketHandler._write_frame (a message for a thousand sockets is
one JSON encoding, one frame, and a thousand socket sends).
"""
from __future__ import annotations

import asyncio
import logging
import struct
import sys

import orjson
import tornado.httputil
import tornado.iostream
import tornado.web
import tornado.websocket

from application.accounts import Authenticate
from application.gateway import Connection, Gateway
from application.sockets import Admission, AdmitSocket
from domain import errors
from domain.model import validate_cursor
from entrypoints.heartbeat import Heartbeat
from entrypoints.http.base import ServerHeader, bearer_token
from entrypoints.http.errors import error_headers, finish_with_error, status_of
from entrypoints.http.tornado_overrides import ProtocolErrorCloses1002
from entrypoints.ws_protocol import protocol_token, selected_protocol

log = logging.getLogger("courier.ws")
_releasing: set[asyncio.Task] = set()  # the event loop keeps only weak references to tasks


def _finish_release(task: asyncio.Task) -> None:
    _releasing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("releasing a socket's count failed: %r", task.exception())

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_TOKEN_EXPIRED = 4001
CLOSE_CURSOR_EXPIRED = 4410

PONG = b'{"type":"pong"}'
PING_FRAME = b"\x89\x00"  # FIN + ping opcode, no payload
_TEXT_FIN = 0x81  # FIN + text opcode; frames from a server are never masked
_NO_HEADERS = tornado.httputil.HTTPHeaders()  # shared by open sockets, never written to
WRITE_CHUNK = 64 * 1024  # frames for one socket are joined into writes of about this size


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented, uncompressed text frame (RFC 6455 section 5.2)."""
    length = len(payload)
    if length < 126:
        return bytes((_TEXT_FIN, length)) + payload
    if length <= 0xFFFF:
        return struct.pack("!BBH", _TEXT_FIN, 126, length) + payload
    return struct.pack("!BBQ", _TEXT_FIN, 127, length) + payload


class Frames:
    """Frames payloads and writes them, one per process, shared by its sockets.

    - It remembers the last frame: the gateway hands the same bytes object to every
      socket a message goes to, so a fan-out frames it once (Gorilla's PreparedMessage).
    - Frames for one socket during one turn of the event loop are written together,
      in one send(), at the end of the turn: when the gateway pushes several
      notifications in one go (the subscriber found several waiting, i.e. exactly
      when it is behind), a socket costs one system call instead of one per frame.
      A frame waits at most until the loop's next turn."""

    __slots__ = ("_payload", "_frame", "_pending", "_scheduled")

    def __init__(self) -> None:
        self._payload: bytes | None = None
        self._frame = b""
        self._pending: dict[SocketHandler, bytes | list[bytes]] = {}
        self._scheduled = False

    def frame(self, payload: bytes) -> bytes:
        if payload is not self._payload:
            self._frame = text_frame(payload)
            self._payload = payload
        return self._frame

    def queue(self, handler: SocketHandler, frame: bytes) -> None:
        pending = self._pending
        queued = pending.get(handler)
        if queued is None:
            pending[handler] = frame
            if not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self.flush)
        elif type(queued) is list:
            queued.append(frame)
        else:
            pending[handler] = [queued, frame]

    def flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for handler, queued in pending.items():
            handler._flush(queued)


class _Protocol(ProtocolErrorCloses1002):
    """RFC 6455's protocol errors close with 1002 (ProtocolErrorCloses1002). The contract
    wants garbage closed with 1008, and Tornado lets two kinds through:
    a text frame of invalid UTF-8 is dropped with no close code at all, and a frame
    the client did not mask is taken (RFC 6455 section 5.1: the server MUST close).
    Tornado keeps the last frame's mask in _frame_mask and sets it only for a masked
    frame, so it is cleared after each message: None then means "not masked" (for a
    message in fragments, the last one's). (Private hooks of the pinned Tornado:
    re-check on upgrade; tests/e2e cover them.)"""

    def _handle_message(self, opcode: int, data: bytes):
        if self._frame_mask is None:
            self.close(CLOSE_POLICY, "frames from a client must be masked")
            return None
        self._frame_mask = None
        if opcode == 0x1 and not self._frame_compressed:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                self.close(CLOSE_POLICY, "frames must be UTF-8 JSON")
                return None
        return super()._handle_message(opcode, data)

    async def _accept_connection(self, handler: SocketHandler) -> None:
        """Tornado's handshake (no compression; the one subprotocol is ws_protocol.py's),
        except that the frame loop runs in a Task of its own once open() is done.

        In Tornado the loop is awaited here, so the whole chain of the upgrade request
        (RequestHandler._execute, both get()s, accept_connection, this coroutine) stays
        suspended for the socket's life: ~4 KB per socket for nothing. Here that chain
        finishes, and the handler drops what only the upgrade needed. Incoming frames
        still wait until open() has finished. (Private hooks of the pinned Tornado:
        re-check on upgrade; tests/e2e/test_websocket.py covers the socket's life.)
        Overriding only _receive_frame_loop, to keep Tornado's handshake code, was
        tried: 10.1 KB per socket against 8.8 with this (connect 5000, twice each)."""
        handler.clear_header("Content-Type")
        handler.set_status(101)
        handler.set_header("Upgrade", "websocket")
        handler.set_header("Connection", "Upgrade")
        handler.set_header("Sec-WebSocket-Accept", self._challenge_response(handler))
        protocol = selected_protocol(handler.request.headers)
        if protocol is not None:
            handler.set_header("Sec-WebSocket-Protocol", protocol)
        handler.finish()
        self.stream = handler._detach_stream()
        try:
            await handler.open()
        except Exception:
            handler.log_exception(*sys.exc_info())
            self._abort()
            return
        handler.shed_upgrade_state()
        self._frame_loop = asyncio.get_running_loop().create_task(self._run_frame_loop())

    async def _run_frame_loop(self) -> None:
        try:
            await self._receive_frame_loop()
        except asyncio.CancelledError:
            self._abort()
        except ValueError:  # what Tornado's accept_connection catches around the loop
            log.debug("malformed WebSocket frame", exc_info=True)
            self._abort()


class SocketHandler(ServerHeader, tornado.websocket.WebSocketHandler):
    gateway: Gateway
    authenticate: Authenticate
    admit: AdmitSocket
    open_sockets: set
    frames: Frames
    heartbeat: Heartbeat

    def initialize(self, gateway: Gateway, authenticate: Authenticate, admit: AdmitSocket, open_sockets: set,
                   frames: Frames, heartbeat: Heartbeat) -> None:
        self.gateway = gateway
        self.authenticate = authenticate
        self.admit = admit
        self.open_sockets = open_sockets
        self.frames = frames
        self.heartbeat = heartbeat
        self.conn: Connection | None = None
        self.awaiting_pong = False
        self._gone = False
        self._admission: Admission | None = None

    async def get(self, *args, **kwargs) -> None:
        request = self.request
        token = self.get_query_argument("token", None) or bearer_token(request) or protocol_token(request.headers)
        try:
            claims = await self.authenticate(token)
            self.cursor = validate_cursor(self.get_query_argument("cursor", None))
        except errors.CourierError as error:
            return self._refuse(status_of(error), error)
        # Tornado's own refusals (below, in super().get) answer plain text; the
        # contract wants every error as JSON, so make the same checks first.
        headers = self.request.headers
        connection = {part.strip().lower() for part in headers.get("Connection", "").split(",")}
        if headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in connection:
            return self._refuse(400, errors.InvalidInput("this is a WebSocket endpoint: send an Upgrade request"))
        if headers.get("Sec-WebSocket-Version") != "13":
            self.set_header("Sec-WebSocket-Version", "13")
            return finish_with_error(self, 426, "upgrade_required", "only WebSocket version 13 (RFC 6455) is spoken")
        if not headers.get("Sec-WebSocket-Key") or not headers.get("Host"):
            return self._refuse(400, errors.InvalidInput("the Sec-WebSocket-Key and Host headers are required"))
        origin = headers.get("Origin", headers.get("Sec-Websocket-Origin"))
        if origin is not None and not self.check_origin(origin):
            return self._refuse(403, errors.Forbidden("this origin is not allowed"))
        self.claims = claims
        try:
            admission = await self.admit(claims.user_id, self.request.remote_ip)
        except errors.CourierError as error:
            return self._refuse(status_of(error), error)
        if self._gone:  # the client went away meanwhile
            return self._release(admission)
        self._admission = admission
        if self.cursor is None:
            # Starting live: fix the position now, before the 101. Read in open(), after
            # the client saw its socket open, it could pass over a message the client
            # sent (or was sent) in between, and that message would never reach this socket.
            try:
                self.cursor = await self.gateway.live_cursor(claims.user_id)
            except errors.ServiceUnavailable as error:
                self._release_admission()
                return self._refuse(503, error)
        await super().get(*args, **kwargs)
        if self.get_status() != 101:  # refused by Tornado's own checks: no socket after all
            self._release_admission()

    def _refuse(self, status: int, error: errors.CourierError) -> None:
        for name, value in error_headers(error):
            self.set_header(name, value)
        finish_with_error(self, status, error.code, error.message)

    def _release_admission(self) -> None:
        admission, self._admission = self._admission, None
        if admission is not None:
            self._release(admission)

    def _release(self, admission: Admission) -> None:
        task = asyncio.ensure_future(self.admit.release(admission))
        _releasing.add(task)
        task.add_done_callback(_finish_release)

    def write_error(self, status_code: int, **kwargs) -> None:
        """Any other error before the upgrade (e.g. 405 for a POST) as JSON too."""
        finish_with_error(self, status_code)

    def check_origin(self, origin: str) -> bool:
        allowed = self.settings.get("courier_origins")
        return allowed is None or origin.rstrip("/") in allowed

    def get_websocket_protocol(self):
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None
        params = tornado.websocket._WebSocketParams(
            ping_interval=0,  # the Heartbeat pings: no ping Task per socket
            ping_timeout=0,
            max_message_size=self.max_message_size,
            compression_options=self.get_compression_options(),
        )
        return _Protocol(self, False, params)

    def get_compression_options(self):
        return None  # frames are framed once and shared; compression would undo that

    async def open(self, *args, **kwargs) -> None:
        user_id = self.claims.user_id
        self.open_sockets.add(self)
        self.ws_connection.stream.max_write_buffer_size = self.settings["courier_ws_write_buffer"]
        # No Nagle: Tornado leaves it on for WebSockets, so a push written while the
        # previous one is not yet acknowledged waited for that ACK (up to the client's
        # delayed ACK, tens of ms). Frames already gathers a turn's frames into one write.
        self.set_nodelay(True)
        self.heartbeat.add(self, self.claims.expires_at)
        log.info("Client %s connected", user_id)
        try:
            conn = await self.gateway.attach(user_id, self, self.cursor)
        except errors.CursorExpired:
            self.close(CLOSE_CURSOR_EXPIRED, "cursor expired")
        except errors.ServiceUnavailable as error:
            log.warning("replay for user %s failed: %s", user_id, error.__cause__ or error)
            self.close(CLOSE_TRY_AGAIN, "service unavailable")
        else:
            if self._gone:  # closed while replaying
                self.gateway.detach(conn)
            else:
                self.conn = conn

    def shed_upgrade_state(self) -> None:
        """Once open, drop what only the upgrade request needed (its headers, the
        query with the token, Tornado's response headers and template namespace):
        ~2 KB a socket. What is kept: the method and the path, for log lines."""
        request = self.request
        request.headers = _NO_HEADERS
        request.uri = request.path
        request.query = ""
        request.arguments = request.query_arguments = request.body_arguments = request.files = {}
        request.connection = request.server_connection = None
        self._headers = _NO_HEADERS
        self.ui = None
        self.path_args = self.path_kwargs = self.open_args = self.open_kwargs = None

    # --- ClientChannel ----------------------------------------------------------
    def send(self, payload: bytes) -> bool:
        if self._gone:
            return False
        self.frames.queue(self, self.frames.frame(payload))  # written at the end of this turn
        return True

    def _flush(self, queued: bytes | list[bytes]) -> None:
        """Write what Frames gathered for this socket during one turn of the loop, in
        writes of up to WRITE_CHUNK bytes: each is taken whole or refused whole by the
        write buffer limit, so a reader that falls behind still gets every frame that
        fits before it is dropped (a replay of a large backlog makes progress)."""
        if self._gone:
            return
        try:
            if type(queued) is bytes:
                self._write_frame(queued)
                return
            chunk: list[bytes] = []
            size = 0
            for frame in queued:
                chunk.append(frame)
                size += len(frame)
                if size >= WRITE_CHUNK:
                    self._write_frame(b"".join(chunk))
                    chunk, size = [], 0
            if chunk:
                self._write_frame(chunk[0] if len(chunk) == 1 else b"".join(chunk))
        except tornado.iostream.StreamBufferFullError:
            self._drop_slow_reader()
        except (tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
            self._forget()

    def _write_frame(self, frame: bytes) -> None:
        """Write a ready frame. Tornado's write_message would frame the payload again
        for every socket and make a Future, a coroutine and a Task per frame; here,
        when nothing is queued on the stream, the frame goes straight to the socket
        (one send(), no allocation), and only what the kernel does not take is
        queued on the IOStream, which keeps the order, the write buffer limit
        (StreamBufferFullError) and the error handling. (Private attributes of the
        pinned Tornado's IOStream, read only: re-check on upgrade; tests/e2e push
        through this path.)"""
        protocol = self.ws_connection
        if protocol is None or protocol.is_closing():
            raise tornado.websocket.WebSocketClosedError()
        stream = protocol.stream
        if not stream._write_buffer and type(stream) is tornado.iostream.IOStream and not stream._connecting:
            try:
                sent = stream.socket.send(frame)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # let the IOStream meet the error again, close and log it its own way
            if sent == len(frame):
                return
            if sent:
                # Part of it is on the wire: the rest must follow whatever the limit, or the
                # client would read a torn frame; past the limit the reader is dropped after.
                limit = stream.max_write_buffer_size
                stream.max_write_buffer_size = None
                try:
                    stream.write(frame[sent:])
                finally:
                    stream.max_write_buffer_size = limit
                if limit is not None and len(stream._write_buffer) > limit:
                    raise tornado.iostream.StreamBufferFullError("Reached maximum write buffer size")
                return
        stream.write(frame)

    async def drain(self) -> None:
        self.frames.flush()
        protocol = self.ws_connection
        if protocol is None or protocol.is_closing() or not protocol.stream._write_buffer:
            return
        try:
            # Resolves once everything queued so far has been handed to the kernel.
            await protocol.stream.write(b"")
        except (tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
            self._forget()

    def _drop_slow_reader(self) -> None:
        log.warning("dropping a slow reader (user %s): its write buffer is full", self.claims.user_id)
        self._forget()
        stream = self.ws_connection.stream if self.ws_connection else None
        if stream is not None:
            stream.max_write_buffer_size = None  # room for the close frame
        self.close(CLOSE_TRY_AGAIN, "too slow: resume from your cursor")

    # --- from the client --------------------------------------------------------
    def on_message(self, message) -> None:
        if isinstance(message, bytes):
            return self.close(CLOSE_POLICY, "binary frames are not accepted")
        try:
            frame = orjson.loads(message)
        except orjson.JSONDecodeError:
            return self.close(CLOSE_POLICY, "frames must be JSON")
        if not isinstance(frame, dict):
            return self.close(CLOSE_POLICY, "frames must be JSON objects")
        if frame.get("type") == "ping":
            self.send(PONG)
        # Other well-formed frames are ignored: room for future client messages.

    def resume_later(self, cursor_expired: bool) -> None:
        self._forget()
        if cursor_expired:
            self.close(CLOSE_CURSOR_EXPIRED, "cursor expired")
        else:
            self.close(CLOSE_TRY_AGAIN, "missed messages could not be read: resume from your cursor")

    # --- Heartbeat, SessionWatch -----------------------------------------------
    def token_expired(self) -> None:
        self._forget()
        self.close(CLOSE_TOKEN_EXPIRED, "token expired")

    def session_ended(self, reason: str) -> None:
        """The token was revoked, or its user removed."""
        self._forget()
        self.close(CLOSE_TOKEN_EXPIRED, reason)

    def send_ping(self) -> None:
        if not self._gone:
            self.frames.queue(self, PING_FRAME)

    def on_pong(self, data: bytes) -> None:
        self.awaiting_pong = False

    def ping_timed_out(self) -> None:
        self._forget()
        self.close(reason="ping timed out")  # as Tornado's own pinger closes

    def shutdown(self) -> None:
        self._forget()
        self.close(CLOSE_GOING_AWAY, "server shutting down")

    def on_close(self) -> None:
        self._forget()

    def _forget(self) -> None:
        """Stop pushing to this socket at once (it may take a while to close)."""
        if self._gone:
            return
        self._gone = True
        self._release_admission()
        self.open_sockets.discard(self)
        self.heartbeat.discard(self)
        # The Connection refers back to this handler: let go of it, so that a closed
        # socket is freed at once by reference counting instead of waiting, with all
        # it holds, for a collection of the oldest generation (the longer, the more
        # sockets the process has).
        conn, self.conn = self.conn, None
        if conn is not None:
            self.gateway.detach(conn)

    def on_ping(self, data: bytes) -> None:
        pass
