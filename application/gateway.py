"""The push side: which local connections belong to which user, and how a
connection gets every message exactly once across replay and live pushes.

Exactly once rests on one invariant of the Inbox port: for one recipient,
notifications arrive in cursor order. A connection remembers the last cursor
it was given; anything at or before it is a duplicate and is skipped. While
a connection replays from the inbox (resume, or after the bus was lost) live
notifications are held back and released after the replay, minus what the
replay already sent.

A push without a cursor (typing, presence: pushed, never stored, never replayed) goes
through push_cursorless, beside all of that: it touches no cursor and no replay."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from application.ports import Inbox, Notification
from domain import errors
from domain.events import Delivery
from domain.model import Message, cursor_position

log = logging.getLogger("courier.gateway")

REPLAY_PAGE = 200
MAX_HELD = 1000  # live pushes kept back during one connection's replay
START = "0-0"  # before every cursor an inbox hands out
# How long a resync keeps reading through a store that is coming back (Redis
# still loading its data right after a restart answers reads with an error while
# it already accepts the subscription) before it closes a socket for resume.
RESYNC_RETRY_SECONDS = 5.0
RESYNC_FIRST_BACKOFF = 0.05
RESYNC_CONCURRENCY = 256  # replays of one resync running at once


class ClientChannel(Protocol):
    """One client's open socket, as the gateway sees it."""

    def send(self, payload: bytes) -> bool:
        """Queue a frame; False when the connection is gone (closed, or dropped as too slow)."""

    async def drain(self) -> None:
        """Wait until the queued frames have been handed to the network (a replay
        paces itself on this, so a large backlog never outgrows the buffer)."""

    def resume_later(self, cursor_expired: bool) -> None:
        """Close the connection so the client resumes from its last cursor
        (telling it when that cursor has expired)."""


_NOWHERE = (-1, -1)  # before every position: a connection without a cursor takes anything


class Connection:
    """One socket of a user. `events` chooses its view of the user's log (domain.events):
    True, every event (own sends, group changes); False, the original view: messages
    from others (never one's own, not even a note to oneself: the sender has it)."""

    __slots__ = ("user_id", "channel", "events", "_last_cursor", "_last_position", "_replaying", "_read_again",
                 "_held")

    def __init__(self, user_id: str, channel: ClientChannel, last_cursor: str | None, events: bool = False):
        self.user_id = user_id
        self.channel = channel
        self.events = events
        self.last_cursor = last_cursor
        self._replaying = False
        self._read_again = False
        self._held: list[tuple[Delivery, tuple[int, int], bytes]] = []

    @property
    def last_cursor(self) -> str | None:
        return self._last_cursor

    @last_cursor.setter
    def last_cursor(self, cursor: str | None) -> None:
        # The position is kept beside the cursor (parsed at the next push) so that a
        # push compares two tuples instead of parsing two cursors per socket.
        self._last_cursor = cursor
        self._last_position: tuple[int, int] | None = None

    def push(self, delivery: Delivery, payload: bytes, position: tuple[int, int] | None = None) -> bool:
        """`position` is cursor_position(delivery.cursor), when the caller has it already."""
        if position is None:
            position = cursor_position(delivery.cursor)
        if self._replaying:
            if len(self._held) < MAX_HELD:
                self._held.append((delivery, position, payload))
            else:
                # Everything held is in the inbox too: let the replay read it
                # from there instead of holding an unbounded list in memory.
                self._held.clear()
                self._read_again = True
            return False
        last = self._last_position
        if last is None:
            cursor = self._last_cursor
            last = self._last_position = _NOWHERE if cursor is None else cursor_position(cursor)
        if position <= last:
            return False  # already sent by a replay
        self._last_cursor = delivery.cursor
        self._last_position = position
        return self.channel.send(payload)


class Gateway:
    def __init__(
        self, inbox: Inbox, encode: Callable[[Delivery, str | None], bytes],
        resync_retry_seconds: float = RESYNC_RETRY_SECONDS,
    ):
        """encode(delivery, None) is the frame of a delivery for everyone; encode(delivery,
        user_id) its frame in the event view of `user_id` (Delivery.public_for)."""
        self._inbox = inbox
        self._encode = encode
        self._resync_retry_seconds = resync_retry_seconds
        self._by_user: dict[str, set[Connection]] = {}
        self.pushed = 0  # frames handed to sockets, for metrics

    @property
    def connection_count(self) -> int:
        return sum(len(conns) for conns in self._by_user.values())

    def connections(self) -> list[Connection]:
        return [conn for conns in self._by_user.values() for conn in conns]

    async def live_cursor(self, user_id: str) -> str:
        """Where a connection without a cursor starts: the inbox's current end.
        Read it before the client learns its socket is open (before the 101), so
        every message accepted after that comes after this cursor and is sent."""
        return await self._inbox.last_cursor(user_id) or START

    async def attach(self, user_id: str, channel: ClientChannel, cursor: str | None,
                     events: bool = False) -> Connection:
        """Register a connection, then replay what came after `cursor`.
        Registering first is what closes the gap between replay and live.
        Without a cursor the connection starts at the inbox's current end, so
        it still has a position to resync from if the bus is ever lost."""
        if cursor is None:
            cursor = await self.live_cursor(user_id)
        conn = Connection(user_id, channel, cursor, events)
        self._by_user.setdefault(user_id, set()).add(conn)
        try:
            await self.replay(conn)
        except BaseException:
            self.detach(conn)
            raise
        return conn

    def detach(self, conn: Connection) -> None:
        conns = self._by_user.get(conn.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_user[conn.user_id]

    async def replay(self, conn: Connection) -> None:
        """Send everything after conn.last_cursor from the inbox, then release
        held live pushes that came after it. Raises what Inbox.read raises
        (CursorExpired, ServiceUnavailable); the caller closes the socket then."""
        if conn._replaying:
            # A replay of this connection is under way (attach's, or an earlier
            # resync's). A second one beside it would read from the same cursor
            # and send the same messages again; instead the running one is asked
            # to read once more after its current page, which covers the gap.
            conn._read_again = True
            return
        conn._replaying = True
        try:
            caught_up = await self._read_up(conn)
        except BaseException:
            self._drop_hold(conn)
            raise
        self._end_replay(conn, caught_up)

    async def _read_up(self, conn: Connection) -> bool:
        """Send what the inbox holds after conn.last_cursor, page by page, pacing on the
        socket draining; False when the socket went away meanwhile. The connection is
        held (conn._replaying) by the caller, who releases it after."""
        while True:
            conn._read_again = False
            page = await self._inbox.read(conn.user_id, conn.last_cursor, REPLAY_PAGE)
            for delivery in page:
                conn.last_cursor = delivery.cursor
                if conn.events:
                    payload = self._encode(delivery, conn.user_id)
                elif isinstance(delivery.event, Message) and delivery.event.from_user_id != conn.user_id:
                    payload = self._encode(delivery, None)
                else:
                    continue  # not in the original view: one's own send, a group change
                if not conn.channel.send(payload):
                    return False
                self.pushed += 1
            if len(page) < REPLAY_PAGE and not conn._read_again:
                return True
            await conn.channel.drain()

    def _end_replay(self, conn: Connection, caught_up: bool) -> None:
        if caught_up:
            self._release(conn)
        else:
            self._drop_hold(conn)  # the socket is gone: nothing to hand over

    def _release(self, conn: Connection) -> None:
        """The replay has caught up: hand over the live pushes held meanwhile (those the
        replay sent already are skipped by their position)."""
        conn._replaying = False
        held, conn._held = conn._held, []
        for delivery, position, payload in held:
            if conn.push(delivery, payload, position):
                self.pushed += 1

    @staticmethod
    def _drop_hold(conn: Connection) -> None:
        # The replay failed: what was held is in the inbox, for whoever reads it next.
        conn._replaying = False
        conn._held = []

    def resync_all(self) -> asyncio.Future:
        """After the bus was lost: every connection reads the gap from its inbox.

        Every connection is held at once, before this returns (live pushes to it wait
        for its replay, as in attach), so the caller may hand notifications over
        straight away: none can overtake a gap. The replays then run side by side, at
        most RESYNC_CONCURRENCY at a time, so a socket that does not drain (a stalled
        reader) holds up its own replay and nobody else's pushes; with thousands of
        sockets the gaps are read in a fraction of the time one by one took. A read
        the store refuses for now (ServiceUnavailable) is tried again, with backoff,
        for up to resync_retry_seconds; a connection whose gap cannot be read is
        closed for resume. The returned future is done when every replay is."""
        held = []
        for conn in self.connections():
            if conn._replaying:
                conn._read_again = True  # the replay under way reads once more (see replay)
            else:
                conn._replaying = True
                held.append(conn)
        return asyncio.ensure_future(self._resync(held))

    async def _resync(self, held: list[Connection]) -> None:
        give_up_at = asyncio.get_running_loop().time() + self._resync_retry_seconds
        slots = asyncio.Semaphore(RESYNC_CONCURRENCY)

        async def resync(conn: Connection) -> None:
            async with slots:
                await self._resync_one(conn, give_up_at)

        await asyncio.gather(*(resync(conn) for conn in held))

    async def _resync_one(self, conn: Connection, give_up_at: float) -> None:
        loop = asyncio.get_running_loop()
        backoff = RESYNC_FIRST_BACKOFF
        while True:
            try:
                caught_up = await self._read_up(conn)
            except errors.ServiceUnavailable as error:
                if loop.time() + backoff > give_up_at:
                    return self._close_for_resume(conn, error)
                await asyncio.sleep(backoff)  # still held: nothing overtakes the gap meanwhile
                backoff = min(2 * backoff, 1.0)
                continue
            except Exception as error:
                return self._close_for_resume(conn, error)
            except BaseException:
                self._drop_hold(conn)
                raise
            return self._end_replay(conn, caught_up)

    def _close_for_resume(self, conn: Connection, error: Exception) -> None:
        # The gap could not be read: pushing on would skip it for good. Close
        # instead; the client resumes from its cursor, where the resume either
        # fills the gap or says the cursor expired.
        cause = f" ({error.__cause__!r})" if error.__cause__ is not None else ""
        log.warning("resync failed for a connection of user %s: %r%s", conn.user_id, error, cause)
        self._drop_hold(conn)
        self.detach(conn)
        conn.channel.resume_later(cursor_expired=isinstance(error, errors.CursorExpired))

    def on_notification(self, notification: Notification) -> None:
        event = notification.event
        by_user = self._by_user
        log_pushes = log.isEnabledFor(logging.INFO)  # asked once: no work per push at warning
        # Recipients that share a cursor (one id for a whole group message) share one
        # Delivery and one encoded payload, so every socket gets the very same bytes.
        prepared: dict[str, tuple[Delivery, tuple[int, int], bytes]] = {}
        pushed = 0
        # Who does not see it in the original view: a group change, nobody; a message,
        # its sender (the one recipient whose sockets are looked at one by one below).
        is_message = isinstance(event, Message)
        sender_id = event.from_user_id if isinstance(event, Message) else None
        cursor_of_ready = None
        for user_id, cursor in notification.cursors.items():
            conns = by_user.get(user_id)
            if not conns:
                continue
            if cursor is not cursor_of_ready:  # the same str object for all who share it
                ready = prepared.get(cursor)
                if ready is None:
                    delivery = Delivery(event, cursor)
                    ready = prepared[cursor] = (delivery, cursor_position(cursor), self._encode(delivery, None))
                delivery, position, payload = ready
                cursor_of_ready = cursor
            if user_id == sender_id or not is_message:
                pushed += self._push_to_event_views(conns, delivery, position, user_id == sender_id, payload)
                continue
            for conn in tuple(conns):  # a failed send detaches the connection
                if conn.push(delivery, payload, position):
                    pushed += 1
                    if log_pushes:
                        log.info("Message pushed to user %s via WebSocket", user_id)
        self.pushed += pushed

    def _push_to_event_views(self, conns: set[Connection], delivery: Delivery, position: tuple[int, int],
                             own: bool, payload: bytes) -> int:
        """An event outside the original view (one's own send, a group change) goes to the
        sockets in the event view only; one's own send with its client_msg_id."""
        pushed = 0
        for conn in tuple(conns):
            if conn.events:
                if own:
                    payload = self._encode(delivery, conn.user_id)
                    own = False  # every socket here is of the same user: encoded once
                if conn.push(delivery, payload, position):
                    pushed += 1
        return pushed

    def push_cursorless(self, user_ids: Iterable[str], payload: bytes, events_only: bool = False) -> int:
        """Hand `payload` (a whole frame, encoded) as it is to every local socket of
        `user_ids`; the number of sockets that took it. It has no cursor, so it is outside
        the bookkeeping of exactly once: it moves no connection's cursor, is neither held
        during a replay nor skipped as a duplicate, and is never replayed; a user with no
        socket here, or whose socket is gone, simply misses it. For events that are only
        pushed (typing, presence), never for stored ones. The caller leaves out whoever
        should not get it (the sender of a typing event, say). `events_only`: to the
        sockets on the event view only (typing: the original view never sees it)."""
        by_user = self._by_user
        pushed = 0
        for user_id in user_ids:
            conns = by_user.get(user_id)
            if conns:
                for conn in tuple(conns):  # as in on_notification: a failed send may detach it
                    if (conn.events or not events_only) and conn.channel.send(payload):
                        pushed += 1
        self.pushed += pushed
        return pushed
