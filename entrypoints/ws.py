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

Pushes are framed once and written without Tornado's write_message by the
process's SocketWriter (entrypoints/socket_writer.py). What a client sends is
handed, by its type, to the handlers of ClientFrames (entrypoints/client_frames.py).
The WebSocket protocol of these sockets, and the other uses of Tornado's private
names, are in entrypoints/http/tornado_overrides.py.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable

import orjson
import tornado.websocket

from application.accounts import Authenticate
from application.gateway import Connection, Gateway
from application.sockets import Admission, AdmitSocket
from domain import errors
from domain.events import parse_view
from entrypoints.client_frames import ClientFrames
from entrypoints.heartbeat import Heartbeat
from entrypoints.http.base import ServerHeader, bearer_token
from entrypoints.http.errors import error_headers, finish_with_error, status_of
from entrypoints.http.tornado_overrides import CLOSE_POLICY, websocket_protocol
from entrypoints.socket_observers import SocketObservers
from entrypoints.socket_writer import PING_FRAME, SocketWriter, text_frame_parts
from entrypoints.ws_protocol import protocol_token

log = logging.getLogger("courier.ws")

CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN = 1013
CLOSE_TOKEN_EXPIRED = 4001
CLOSE_CURSOR_EXPIRED = 4410


class SocketHandler(ServerHeader, tornado.websocket.WebSocketHandler):
    gateway: Gateway
    authenticate: Authenticate
    admit: AdmitSocket
    open_sockets: set
    writer: SocketWriter
    heartbeat: Heartbeat
    client_frames: ClientFrames
    observers: SocketObservers

    def initialize(self, gateway: Gateway, authenticate: Authenticate, admit: AdmitSocket, open_sockets: set,
                   writer: SocketWriter, heartbeat: Heartbeat, client_frames: ClientFrames,
                   observers: SocketObservers) -> None:
        self.gateway = gateway
        self.authenticate = authenticate
        self.admit = admit
        self.open_sockets = open_sockets
        self.writer = writer
        self.heartbeat = heartbeat
        self.client_frames = client_frames
        self.observers = observers
        self.conn: Connection | None = None
        self.awaiting_pong = False
        self.gone = False  # forgotten: nothing more is pushed to it (it may take a while to close)
        self._admission: Admission | None = None

    async def get(self, *args, **kwargs) -> None:
        request = self.request
        token = self.get_query_argument("token", None) or bearer_token(request) or protocol_token(request.headers)
        try:
            claims = await self.authenticate(token)
            self.cursor = self.gateway.check_cursor(self.get_query_argument("cursor", None))
            self.events = parse_view(self.get_query_argument("events", None))
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
        if self.gone:  # the client went away meanwhile
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
        self.admit.release_soon(admission)  # the server's stop waits for it (AdmitSocket.settle)

    def write_error(self, status_code: int, **kwargs) -> None:
        """Any other error before the upgrade (e.g. 405 for a POST) as JSON too."""
        finish_with_error(self, status_code)

    def check_origin(self, origin: str) -> bool:
        allowed = self.settings.get("courier_origins")
        return allowed is None or origin.rstrip("/") in allowed

    def get_websocket_protocol(self):
        return websocket_protocol(self)

    def get_compression_options(self):
        return None  # frames are framed once and shared; compression would undo that

    async def open(self, *args, **kwargs) -> None:
        user_id = self.claims.user_id
        self.open_sockets.add(self)
        self.ws_connection.stream.max_write_buffer_size = self.settings["courier_ws_write_buffer"]
        # No Nagle: Tornado leaves it on for WebSockets, so a push written while the
        # previous one is not yet acknowledged waited for that ACK (up to the client's
        # delayed ACK, tens of ms). SocketWriter already gathers a turn's frames into one write.
        self.set_nodelay(True)
        self.heartbeat.add(self, self.claims.expires_at)
        log.info("Client %s connected", user_id)
        try:
            conn = await self.gateway.attach(user_id, self, self.cursor, self.events)
        except errors.CursorExpired:
            self.close(CLOSE_CURSOR_EXPIRED, "cursor expired")
        except errors.ServiceUnavailable as error:
            log.warning("replay for user %s failed: %s", user_id, error.__cause__ or error)
            self.close(CLOSE_TRY_AGAIN, "service unavailable")
        else:
            if self.gone:  # closed while replaying
                self.gateway.detach(conn)
            else:
                self.conn = conn
                self.observers.opened(self)

    @property
    def user_id(self) -> str:
        return self.claims.user_id

    # --- ClientChannel ----------------------------------------------------------
    def send(self, payload: bytes) -> bool:
        if self.gone:
            return False
        self.writer.queue(self, self.writer.frame(payload))  # written at the end of this turn
        return True

    def send_parts(self, parts: tuple[bytes, ...]) -> bool:
        if self.gone:
            return False
        self.writer.queue(self, text_frame_parts(parts))
        return True

    def drain(self) -> Awaitable[None]:
        return self.writer.drain(self)

    def drop_slow_reader(self) -> None:
        log.warning("dropping a slow reader (user %s): its write buffer is full", self.claims.user_id)
        self.forget()
        stream = self.ws_connection.stream if self.ws_connection else None
        if stream is not None:
            stream.max_write_buffer_size = None  # room for the close frame
        self.close(CLOSE_TRY_AGAIN, "too slow: resume from your cursor")

    # --- from the client --------------------------------------------------------
    def on_message(self, message) -> Awaitable[None] | None:
        if isinstance(message, bytes):
            return self.close(CLOSE_POLICY, "binary frames are not accepted")
        try:
            frame = orjson.loads(message)
        except orjson.JSONDecodeError:
            return self.close(CLOSE_POLICY, "frames must be JSON")
        if not isinstance(frame, dict):
            return self.close(CLOSE_POLICY, "frames must be JSON objects")
        return self.client_frames.dispatch(self, frame)  # a type without a handler is ignored

    def resume_later(self, cursor_expired: bool) -> None:
        self.forget()
        if cursor_expired:
            self.close(CLOSE_CURSOR_EXPIRED, "cursor expired")
        else:
            self.close(CLOSE_TRY_AGAIN, "missed messages could not be read: resume from your cursor")

    # --- Heartbeat, SessionWatch -----------------------------------------------
    def token_expired(self) -> None:
        self.forget()
        self.close(CLOSE_TOKEN_EXPIRED, "token expired")

    def session_ended(self, reason: str) -> None:
        """The token was revoked, or its user removed."""
        self.forget()
        self.close(CLOSE_TOKEN_EXPIRED, reason)

    def send_ping(self) -> None:
        if not self.gone:
            self.writer.queue(self, PING_FRAME)

    def on_pong(self, data: bytes) -> None:
        self.awaiting_pong = False

    def ping_timed_out(self) -> None:
        self.forget()
        self.close(reason="ping timed out")  # as Tornado's own pinger closes

    def shutdown(self) -> None:
        self.forget()
        self.close(CLOSE_GOING_AWAY, "server shutting down")

    def on_close(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Stop pushing to this socket at once (it may take a while to close)."""
        if self.gone:
            return
        self.gone = True
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
            self.observers.closed(self)

    def on_ping(self, data: bytes) -> None:
        pass
