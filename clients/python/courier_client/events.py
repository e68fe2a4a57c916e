"""EventStream: the user's event log, live, as an async iterator that survives drops.

How it keeps "every event once, none lost":

- Every stored event carries a `cursor`, its place in the user's log; cursors grow in
  log order. The stream remembers the last one it took, and ignores any event at or
  before it (so a replay that overlaps what was already yielded yields nothing twice).
- On any drop (the server restarted, the network went, the socket was closed as too
  slow, a ping went unanswered) it reconnects with exponential backoff and jitter and
  resumes with `?cursor=<last>`: the server sends everything after it, then live events.
- A start without a cursor first reads the log to its end (GET /api/v1/events), so
  that even the first socket resumes from a known place. A start at the beginning, and
  the fallback below, open the socket first (the server fixes its live position before
  answering) and then read the retained log from its start: the two overlap, never gap.
- A cursor the server no longer retains (410 cursor_expired, close 4410) cannot be
  resumed: the stream yields `{"type": "resync", "expired_cursor": C}` (RESYNC), then the
  whole retained log from its start, then live events. What was between C and the oldest
  retained event is not in the stream: refetch history (and the conversation list).

Typing and presence frames carry no cursor; they are yielded as they come (never
replayed: a frame sent while the socket was down is lost by design). `{"type": "error"}`
frames answer a refused frame the client sent. The server's WebSocket pings are answered
by Tornado; the stream pings the server too (`ping_interval`) and drops a connection whose
pong does not come within `ping_timeout`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import tornado.httpclient
import tornado.websocket

from courier_client.errors import CourierConnectionError, CourierError, error_from_answer
from courier_client.retry import backoff_delay, is_retryable

if TYPE_CHECKING:
    from courier_client.client import Client

log = logging.getLogger("courier_client")

RESYNC = "resync"
CLOSE_TOKEN_EXPIRED = 4001
CLOSE_CURSOR_EXPIRED = 4410
_CURSOR = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


def cursor_order(cursor: str | None) -> tuple[int, int] | None:
    """A cursor ("<major>-<minor>") as the pair of integers the server orders cursors by."""
    match = _CURSOR.fullmatch(cursor) if isinstance(cursor, str) else None
    return (int(match.group(1)), int(match.group(2))) if match else None


class EventStream:
    """Iterate with `async for event in stream`; close with `await stream.aclose()` (or
    use `async with client.events() as stream:`). Each event is the server's JSON object
    (a dict): see the README of the API for the types.

    `cursor` is the cursor of the last event yielded: keep it, and a later
    `client.events(cursor=...)` goes on right after it.

    Raises CourierError when the stream cannot go on: 401 (token expired or revoked:
    log in again and resume from `cursor`), or another answer that retrying cannot
    change (403, 400). Network errors, 503 and 429 are retried, for ever.

    Options: `backoff_base`/`backoff_max` (seconds) shape the reconnection delays;
    `stable_after`: a socket open that long starts the backoff again from its base;
    `ping_interval`/`ping_timeout`: the client's own pings; `page_size`: events per
    pull; `on_state(state)`: called with "connecting", "connected" and "disconnected"."""

    def __init__(self, client: Client, cursor: str | None = None, *, from_start: bool = False,
                 backoff_base: float = 0.5, backoff_max: float = 15.0, stable_after: float = 10.0,
                 ping_interval: float = 20.0, ping_timeout: float = 20.0, page_size: int = 200,
                 on_state: Callable[[str], None] | None = None):
        self._client = client
        self.cursor = cursor
        self._position = cursor  # the last event taken (yielded, or queued to be)
        self._order = cursor_order(cursor)
        # "resume": from _position; "start": from the beginning of the retained log;
        # "live": from the end of the log as it is now (found before the first socket).
        self._mode = "resume" if cursor else ("start" if from_start else "live")
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.page_size = page_size
        self.on_state = on_state
        self._pending: deque[dict] = deque()
        self._ws: tornado.websocket.WebSocketClientConnection | None = None
        self._opened_at = 0.0
        self._attempt = 0
        self._delay = 0.0
        self._closed = False
        self._wake: asyncio.Event | None = None
        self._presence: list[str] | None = None
        self.connects = 0  # sockets opened so far (the first one included)
        self.resyncs = 0  # cursor expired fallbacks taken

    # --- iteration ------------------------------------------------------------

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> dict:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._pending:
                return self._hand_out(self._pending.popleft())
            if self._ws is None:
                await self._connect()
                continue
            ws = self._ws
            message = await ws.read_message()
            if message is None:
                self._lost(ws)
                continue
            if isinstance(message, bytes):
                continue
            try:
                frame = json.loads(message)
            except ValueError:
                continue
            if isinstance(frame, dict) and frame.get("type") != "pong" and self._take(frame):
                return self._hand_out(frame)

    def _hand_out(self, event: dict) -> dict:
        if isinstance(event.get("cursor"), str):
            self.cursor = event["cursor"]
        return event

    def _take(self, event: dict) -> bool:
        """Whether an event is new: after the last one taken (its cursor is then the last)."""
        cursor = event.get("cursor")
        if not isinstance(cursor, str):
            return True  # typing, presence, error: not stored, not replayed
        order = cursor_order(cursor)
        if order is None:  # not a cursor of today's form: take it unless it is the last one again
            if cursor == self._position:
                return False
        elif self._order is not None and order <= self._order:
            return False
        self._position, self._order = cursor, order
        return True

    # --- async with -----------------------------------------------------------

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self, timeout: float = 2.0) -> None:
        """Stop: iteration ends, and the socket is closed (its closing handshake is
        awaited for up to `timeout` seconds, then the connection is dropped)."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        ws, self._ws = self._ws, None
        if ws is None:
            return
        stream = ws.protocol.stream if ws.protocol is not None else None
        ws.close(1000, "client closed the stream")
        deadline = time.monotonic() + timeout
        while stream is not None and not stream.closed():
            if time.monotonic() > deadline:
                stream.close()
                break
            await asyncio.sleep(0.01)

    @property
    def connected(self) -> bool:
        return self._ws is not None

    # --- frames to the server -------------------------------------------------

    def send(self, frame: dict) -> bool:
        """Send a frame on the socket; False when it is not connected (nothing is queued)."""
        ws = self._ws
        if ws is None:
            return False
        try:
            ws.write_message(json.dumps(frame))
        except tornado.websocket.WebSocketClosedError:
            return False
        return True

    def typing(self, state: str = "start", *, to_user_id: str | None = None, group_id: str | None = None) -> bool:
        """Tell the other participants the user is typing ("start") or stopped ("stop")."""
        frame: dict[str, Any] = {"type": "typing", "state": state}
        if group_id is not None:
            frame["group_id"] = group_id
        else:
            frame["to_user_id"] = to_user_id
        return self.send(frame)

    def subscribe_presence(self, user_ids: Iterable[str]) -> None:
        """Watch these users' presence (at most 200; [] ends it): one `presence` event per
        user at once, then one on every change. Kept, and asked again after a reconnect."""
        self._presence = list(user_ids)
        self.send({"type": "presence_subscribe", "user_ids": self._presence})

    # --- connecting -----------------------------------------------------------

    def _state(self, state: str) -> None:
        if self.on_state is not None:
            self.on_state(state)

    def _lost(self, ws: tornado.websocket.WebSocketClientConnection) -> None:
        """The socket closed: decide what comes next from its close code."""
        if self._ws is ws:
            self._ws = None
        code, reason = ws.close_code, ws.close_reason
        ws.close()  # lets go of its protocol (an unclosed one warns when collected)
        if self._closed:
            return
        self._state("disconnected")
        if time.monotonic() - self._opened_at >= self.stable_after:
            self._attempt = 0
        if code == CLOSE_TOKEN_EXPIRED:
            self._closed = True
            raise CourierError(401, "invalid_token", reason or "token expired or revoked: log in again")
        if code == CLOSE_CURSOR_EXPIRED:
            self._cursor_expired()
            return
        self._delay = backoff_delay(self._attempt, self.backoff_base, self.backoff_max)
        self._attempt += 1
        log.info("event stream closed (%s %s); reconnecting in %.2f s", code, reason or "", self._delay)

    def _cursor_expired(self) -> None:
        """The documented fallback: tell the caller, then take the retained log from its start."""
        log.warning("cursor %s expired: taking the retained log from its start", self._position)
        self._pending.append({"type": RESYNC, "expired_cursor": self._position})
        self._position, self._order = None, None
        self._mode = "start"
        self._delay = 0.0
        self.resyncs += 1

    async def _connect(self) -> None:
        while not self._closed:
            if self._delay > 0:
                await self._sleep(self._delay)
                self._delay = 0.0
                if self._closed:
                    return
            self._state("connecting")
            try:
                if self._mode == "live":
                    await self._find_end()
                ws = await self._open(self._position)
                if self._position is None:
                    # The socket's live position was fixed before it opened: the log from
                    # its start, read now, meets it (the overlap is taken once, by cursor).
                    try:
                        await self._read_log(None, queue=True)
                    except BaseException:
                        ws.close()
                        raise
                if self._closed:
                    ws.close()
                    return
            except CourierError as error:
                if error.status == 410:
                    self._cursor_expired()
                    if self._pending:
                        return  # the caller hears of it before anything else
                    continue
                if not is_retryable(error):
                    self._closed = True
                    raise
                self._delay = backoff_delay(self._attempt, self.backoff_base, self.backoff_max)
                if error.retry_after is not None:
                    self._delay = max(error.retry_after, 0.05)
                self._attempt += 1
                log.info("event stream: %s; retrying in %.2f s", error, self._delay)
                if self._pending:
                    return  # what was read is yielded while the retry waits
                continue
            self._mode = "resume"
            self._ws = ws
            self._opened_at = time.monotonic()
            self.connects += 1
            self._state("connected")
            if self._presence is not None:
                self.send({"type": "presence_subscribe", "user_ids": self._presence})
            return

    async def _sleep(self, delay: float) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except TimeoutError:
            pass

    async def _find_end(self) -> None:
        """A live start: read the log to its end, to start right after it."""
        while True:
            try:
                await self._read_log(None, queue=False)
                break
            except CourierError as error:
                if error.status != 410:  # trimmed while read: read again
                    raise
                self._position, self._order = None, None
        self.cursor = self._position
        self._mode = "resume" if self._position else "start"

    async def _read_log(self, cursor: str | None, *, queue: bool) -> None:
        """Page through GET /api/v1/events from `cursor`; each new event is queued to be
        yielded (or, not `queue`, only passed over)."""
        while True:
            page = await self._client.pull_events(cursor, limit=self.page_size)
            for event in page["events"]:
                if self._take(event) and queue:
                    self._pending.append(event)
            cursor = page.get("next_cursor") or cursor
            if not page.get("has_more") or not page["events"]:
                return

    async def _open(self, cursor: str | None) -> tornado.websocket.WebSocketClientConnection:
        client = self._client
        if client.token is None:
            raise CourierError(401, "unauthorized", "log in first (or give a token)")
        url = client.ws_url + "?events=1"
        if cursor:
            url += "&cursor=" + quote(cursor, safe="")
        request = tornado.httpclient.HTTPRequest(
            url, headers={"Authorization": "Bearer " + client.token},
            connect_timeout=client.connect_timeout, request_timeout=client.request_timeout)
        try:
            return await tornado.websocket.websocket_connect(
                request, ping_interval=self.ping_interval, ping_timeout=self.ping_timeout)
        except tornado.httpclient.HTTPClientError as e:
            response = e.response
            if response is not None and e.code != 599:
                raise error_from_answer(e.code, response.body, response.headers.get("Retry-After")) from e
            raise CourierConnectionError(f"{type(e).__name__}: {e}") from e
        except (OSError, tornado.websocket.WebSocketError) as e:
            raise CourierConnectionError(f"{type(e).__name__}: {e}") from e
