"""The push side: which local connections belong to which user, and how a
connection gets every message exactly once across replay and live pushes.

Exactly once rests on one invariant of the Inbox port: for one recipient,
notifications arrive in cursor order. A connection remembers the last cursor
it was given; anything at or before it is a duplicate and is skipped. While
a connection replays from the inbox (resume, or after the bus was lost) live
notifications are held back and released after the replay, minus what the
replay already sent.

A push without a cursor (typing, presence: pushed, never stored, never replayed) goes
through push_cursorless, beside all of that: it touches no cursor and no replay.

Large groups (docs/design/large-groups.md, section 6), with a Timeline only: a
connection whose user is in one keeps a position per stream (VectorConnection), the
gateway keeps the group index (application/group_index.py) and follows the channel of
each group with a local member, and a replay reads through the Timeline. A join, a
switch or one's own member_added / member_removed makes the connection replay, which
first brings its memberships up to date from the streams. A connection whose cursor lists
12 groups gets a checkpoint written in the background; a push that would list a 17th
before it landed holds the connection until it has (section 6.4; _checkpoint_due).
Without a Timeline (no large groups yet: today's wiring) nothing of that runs."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable
from functools import partial
from typing import Any

from application.connection import MAX_HELD as MAX_HELD  # re-exported: the tests know it here
from application.connection import ClientChannel as ClientChannel
from application.connection import Connection
from application.frames import EncodeParts, Frames, parts_from
from application.group_arrivals import read_arrival
from application.group_index import GroupIndex
from application.ports import (
    JOIN,
    AnyNotification,
    GroupNotification,
    Inbox,
    MembershipNotification,
    Notification,
    NotificationAudience,
    NotificationSubscriber,
    SwitchNotification,
)
from application.timeline import Timeline
from application.vector_connection import VectorConnection
from domain import errors
from domain.cursor import Position, parse_cursor, stream_id
from domain.events import MEMBER_ADDED, MEMBER_REMOVED, Delivery, Event, GroupChange
from domain.model import Message, cursor_position, validate_cursor
from domain.vector import Interval, Slot, Vector

log = logging.getLogger("courier.gateway")

REPLAY_PAGE = 200
START = "0-0"  # before every cursor an inbox hands out
# How long a resync keeps reading through a store that is coming back (Redis
# still loading its data right after a restart answers reads with an error while
# it already accepts the subscription) before it closes a socket for resume.
RESYNC_RETRY_SECONDS = 5.0
RESYNC_FIRST_BACKOFF = 0.05
RESYNC_CONCURRENCY = 256  # replays of one resync running at once
MAX_LIVE_VECTORS = 10_000  # live_cursor's vectors kept for their attach (see live_cursor)


class Gateway:
    def __init__(
        self, inbox: Inbox, encode: Callable[[Delivery, str | None], bytes],
        resync_retry_seconds: float = RESYNC_RETRY_SECONDS, *,
        timeline: Timeline | None = None, subscriber: NotificationSubscriber | None = None,
        encode_parts: EncodeParts | None = None, audience: NotificationAudience | None = None,
    ):
        """encode(delivery, None) is the frame of a delivery for everyone; encode(delivery,
        user_id) its frame in the event view of `user_id` (Delivery.public_for).
        encode_parts: the same frame cut around its cursor (application/frames.py; by
        default cut from what `encode` writes).
        `timeline` and `subscriber` (both or neither): large groups, read through the
        timeline, their channels followed through the subscriber.
        `audience`: told of the users served here, where the bus needs it (a Redis Cluster)."""
        assert (timeline is None) == (subscriber is None), "large groups need both"
        self._inbox = inbox
        self._encode = encode
        self._frames = Frames(encode_parts or parts_from(encode))
        self._resync_retry_seconds = resync_retry_seconds
        self._by_user: dict[str, set[Connection]] = {}
        self._timeline = timeline
        self._by_group = GroupIndex(subscriber) if subscriber is not None else None
        self._audience = audience
        self._refreshes: set[asyncio.Future] = set()  # replays started by a notification
        self._replay_slots = asyncio.Semaphore(RESYNC_CONCURRENCY)
        # live_cursor's vectors by (user, cursor), until the socket's attach takes its own.
        self._live_vectors: dict[tuple[str, str], Vector] = {}
        # Checkpoints of live connections (section 6.4): those being written, and the
        # connections held until theirs lands (a push needed it).
        self._saving: set[Connection] = set()
        self._blocked: set[Connection] = set()
        if timeline is not None:
            self._frames.checkpoint_due = self._checkpoint_due
        self.pushed = 0  # frames handed to sockets, for metrics

    @property
    def connection_count(self) -> int:
        return sum(len(conns) for conns in self._by_user.values())

    def connections(self) -> list[Connection]:
        return [conn for conns in self._by_user.values() for conn in conns]

    def check_cursor(self, cursor: Any) -> str | None:
        """The cursor a client asked to resume from, if this gateway can read it (None:
        none asked); InvalidCursor otherwise. With large groups, any cursor form
        (domain/cursor.py); without, the own log's `<ms>-<n>` only."""
        if cursor is None or cursor == "" or self._timeline is None:
            return validate_cursor(cursor)
        parse_cursor(cursor)
        return str(cursor)

    async def live_cursor(self, user_id: str) -> str:
        """Where a connection without a cursor starts: the inbox's current end.
        Read it before the client learns its socket is open (before the 101), so
        every message accepted after that comes after this cursor and is sent."""
        if self._timeline is not None:
            vector = await self._timeline.live_vector(user_id)
            cursor = await self._timeline.text(user_id, vector)
            # Kept for the attach that follows (the socket's upgrade), which then need not
            # resolve the text again: one read of the memberships less per connect.
            if len(self._live_vectors) >= MAX_LIVE_VECTORS:
                self._live_vectors.clear()  # upgrades that never attached: forget them all
            self._live_vectors[user_id, cursor] = vector
            return cursor
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
        # Registered first, held as in a replay (live pushes wait for it): with a Timeline
        # the cursor is resolved (a read) before anything is known of the vector, and what
        # is pushed without a cursor (typing, presence) reaches the socket meanwhile.
        conn._replaying = True
        self._by_user.setdefault(user_id, set()).add(conn)
        try:
            if self._audience is not None:
                # Before the read: what it misses is published after this, and comes live.
                await self._audience.include(user_id)
            if self._timeline is not None:
                vector = self._live_vectors.pop((user_id, cursor), None) \
                    or await self._timeline.resolve(user_id, cursor)
                if vector.slots or vector.checkpoint is not None or vector.own is None:
                    conn = VectorConnection.of(conn, vector, self._frames)
                else:
                    conn.last_cursor = stream_id(vector.own)  # the legacy form, whichever the client sent
            caught_up = await self._read_up(conn)
        except BaseException:
            self._drop_hold(conn)
            self.detach(conn)
            raise
        self._end_replay(conn, caught_up)
        return conn

    def detach(self, conn: Connection) -> None:
        conns = self._by_user.get(conn.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_user[conn.user_id]
                if self._audience is not None:
                    self._audience.exclude(conn.user_id)
        if self._by_group is not None and isinstance(conn, VectorConnection):
            self._by_group.drop(conn)

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
        if self._timeline is not None:
            return await self._read_up_streams(conn)
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

    async def _read_up_streams(self, conn: Connection) -> bool:
        """_read_up through the Timeline: the own log and every large group's stream.
        Each round first brings the connection's memberships up to date (a group joined
        becomes a slot, and its channel is followed before its stream is read, so that
        nothing is missed between the read and the live pushes)."""
        assert self._timeline is not None and self._by_group is not None
        user_id = conn.user_id
        while True:
            conn._read_again = False
            if isinstance(conn, VectorConnection):
                vector = conn.vector
            else:
                vector = Vector(own=cursor_position(conn.last_cursor or START))
            newest = await self._timeline.refresh(user_id, vector)
            if vector.slots:
                conn = VectorConnection.of(conn, vector, self._frames)
                # Groups the connection has just entered: their newest ids are read again
                # now that it is in their index (held: it is replaying), since an entry
                # appended after `newest` was read and pushed before was neither sent to it
                # nor held, and the read below passes over a stream `newest` says is read.
                while await self._by_group.place(conn):
                    newest = await self._timeline.refresh(user_id, vector)
            # read_on moves the vector past each entry it reads, before the page is sent:
            # should a later read of the page fail, the vector goes back to where it was,
            # or the replay tried again would start after entries never sent.
            before = vector.own, {stream: slot.pos for stream, slot in vector.slots.items()}
            try:
                page, more = await self._timeline.read_on(user_id, vector, newest, REPLAY_PAGE,
                                                          partial(_shows, conn.events, user_id))
            except BaseException:
                vector.own = before[0]
                for stream, position in before[1].items():
                    vector.slots[stream].pos = position
                raise
            if not isinstance(conn, VectorConnection) and vector.own is not None:
                conn.last_cursor = stream_id(vector.own)
            for delivery in page:
                payload = self._encode(delivery, user_id if conn.events else None)
                if not conn.channel.send(payload):
                    return False
                self.pushed += 1
            if not more and not conn._read_again:
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
        if isinstance(conn, VectorConnection):
            self.pushed += conn.release()
            return
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
        if isinstance(conn, VectorConnection):
            conn.forget_prefix()  # the replay may have moved the vector

    def resync_all(self, user_ids: Collection[str] | None = None) -> asyncio.Future:
        """After the bus was lost: every connection reads the gap from its inbox - or only
        the connections of `user_ids`, when the bus lost only their notifications (a Redis
        Cluster's subscriber: the buckets of one node).

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
        if user_ids is None:
            concerned = self.connections()
        else:
            by_user = self._by_user
            concerned = [conn for user_id in user_ids for conn in by_user.get(user_id, ())]
        for conn in concerned:
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

    def on_notification(self, notification: AnyNotification) -> None:
        if notification.__class__ is not Notification:
            return self._on_group_notification(notification)
        assert isinstance(notification, Notification)
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
        if not is_message and self._timeline is not None:
            self._on_own_group_change(event)

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

    # Large groups (section 6.2) --------------------------------------------------------------
    def _on_group_notification(self, notification: AnyNotification) -> None:
        by_group = self._by_group
        if by_group is None:
            return  # a gateway without large groups follows no group: a switch is not for it
        if isinstance(notification, GroupNotification):
            self._push_group(notification)
        elif isinstance(notification, MembershipNotification):
            if notification.kind == JOIN:
                if notification.record is not None:
                    self._push_group(notification.record)  # the joiner's interval starts at it
                found = by_group.get(notification.group_id)
                if found is not None:  # it came on the group's channel: its stream is known
                    self._enter_together(notification.group_id, found[0], notification.position,
                                         notification.user_ids)
                else:
                    self._refresh_users(notification.user_ids)
                return
            # A leave: every entry up to it came before it on this channel, so the leavers
            # leave the index at once; then the others read the member_removed record.
            # A leave published again (the embedded mode publishes a change at each apply
            # that answers it: the announcer's, then a relay's) finds a rejoin's interval
            # open after it: it closes nothing, and the connection stays in the index.
            found = by_group.get(notification.group_id)
            if found is not None:
                stream, _ = found
                for user_id in notification.user_ids:
                    for conn in tuple(self._by_user.get(user_id, ())):
                        if isinstance(conn, VectorConnection):
                            conn.leave_at(stream, notification.position)
                            if notification.group_id not in conn.open_groups():
                                by_group.leave(conn, notification.group_id)
            if notification.record is not None:
                self._push_group(notification.record)
        elif isinstance(notification, SwitchNotification):
            # Every member starts at the floor; this comes after all of the group's
            # small-era notifications, so no post-switch entry overtakes a pre-switch one.
            self._enter_together(notification.group_id, notification.stream, notification.floor,
                                 notification.member_ids)

    def _push_group(self, notification: GroupNotification) -> None:
        assert self._by_group is not None
        found = self._by_group.get(notification.group_id)
        if found is None:
            return
        stream, conns = found
        position = notification.position
        # The entry's parts once for every socket here (encoded when the first one takes it).
        splice = self._frames.group(notification.event, stream, position)
        pushed = 0
        for conn in tuple(conns):
            pushed += conn.push_group(stream, position, splice)
        self.pushed += pushed

    def _on_own_group_change(self, event: Event) -> None:
        """One's own member_added or member_removed (in the own log, small group or large):
        the connections of that user bring their memberships up to date by a replay. (The
        record names no stream yet: step 6 adds `stream` and `at`, section 4.3.)"""
        if isinstance(event, GroupChange) and event.type in (MEMBER_ADDED, MEMBER_REMOVED) \
                and event.user_id is not None:
            self._refresh_users((event.user_id,))

    def _refresh_users(self, user_ids: Iterable[str]) -> None:
        by_user = self._by_user
        for user_id in user_ids:
            for conn in by_user.get(user_id, ()):
                self._refresh_soon(conn)

    def _refresh_soon(self, conn: Connection) -> None:
        """Replay `conn` in the background: its memberships first (a slot for a group
        joined, a leave closed), then the streams that are behind. Live pushes to it are
        held meanwhile, as in a resync; a replay under way is asked to read once more."""
        if conn._replaying:
            conn._read_again = True
            return
        conn._replaying = True
        self._replay_held(conn)

    def _replay_held(self, conn: Connection) -> None:
        """Replay a connection already held (conn._replaying), in the background, at most
        RESYNC_CONCURRENCY at a time (many at once would wait on the store's connections
        anyway, and some give up)."""
        async def replay() -> None:
            async with self._replay_slots:
                give_up_at = asyncio.get_running_loop().time() + self._resync_retry_seconds
                await self._resync_one(conn, give_up_at)

        self._track(asyncio.ensure_future(replay()))

    def _track(self, task: asyncio.Future) -> None:
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    # Local members entering a large group together (section 25) ------------------------------
    def _enter_together(self, group_id: str, stream: int, start: Position, user_ids: Iterable[str]) -> None:
        """The local connections of `user_ids` enter the group at `start` (its switch's
        floor, or their join): held at once, as a replay holds them, then given their slot from one read
        for all of them (application/group_arrivals.py). A connection replaying already
        reads its memberships again instead; one that knows the group replays alone."""
        arriving: list[Connection] = []
        for user_id in user_ids:
            for conn in self._by_user.get(user_id, ()):
                if conn._replaying:
                    conn._read_again = True
                elif isinstance(conn, VectorConnection) and stream in conn.vector.slots:
                    self._refresh_soon(conn)
                else:
                    conn._replaying = True
                    arriving.append(conn)
        if arriving:
            self._track(asyncio.ensure_future(self._enter(group_id, stream, start, arriving)))

    async def _enter(self, group_id: str, stream: int, start: Position, held: list[Connection]) -> None:
        assert self._timeline is not None and self._by_group is not None
        by_group = self._by_group
        # In the index first (held: live pushes wait), then the channel followed, then the
        # read: whatever the read misses was published after the follow, so it comes live.
        entering: list[VectorConnection] = []
        for conn in held:
            vector = conn.vector if isinstance(conn, VectorConnection) \
                else Vector(own=cursor_position(conn.last_cursor or START))
            vector.slots[stream] = Slot(group_id, stream, (Interval(start),), start)
            entering.append(vc := VectorConnection.of(conn, vector, self._frames))
            by_group.enter(vc, group_id, stream)
        try:
            await by_group.follow(group_id)
            arrival = await read_arrival(self._timeline.streams, group_id, start,
                                         [conn.user_id for conn in entering])
        except Exception as error:  # noqa: BLE001 - each connection's own replay retries, or closes it
            log.info("entering group %s together failed (%r): replaying one by one", group_id, error)
            arrival = None
        splices = [] if arrival is None else [
            (entry.position, self._frames.group(entry.event, stream, entry.position)) for entry in arrival.entries]
        for conn in entering:
            if conn not in self._by_user.get(conn.user_id, ()):
                continue  # gone meanwhile: detach took it out of the index
            intervals = None if arrival is None else arrival.intervals.get(conn.user_id)
            if intervals is None or intervals[0].join != start or conn._read_again:
                self._replay_held(conn)  # its own replay reads what it needs
                continue
            conn.vector.slots[stream].intervals = intervals
            conn.forget_prefix()
            if intervals[-1].leave is not None:
                by_group.leave(conn, group_id)
            # The stream's entries first (the replay's part), then what was held meanwhile:
            # release() takes both through the duplicate and interval tests, in that order.
            conn._held[:0] = [(stream, position, splice, None) for position, splice in splices]
            self.pushed += conn.release()

    # Checkpoints of live connections (section 6.4) ---------------------------------------------
    def _checkpoint_due(self, conn: Connection, urgent: bool) -> None:
        """A connection's cursor lists many groups: write a checkpoint of its vector in the
        background. `urgent`: a push was not sent because the cursor would not fit; the
        connection is held (as during a replay) until the write lands, then replayed from
        its vector, which sends that push and releases what was held."""
        assert isinstance(conn, VectorConnection)
        if urgent:
            conn._replaying = True
            self._blocked.add(conn)
        if conn in self._saving:
            return
        self._saving.add(conn)
        self._track(asyncio.ensure_future(self._save_checkpoint(conn)))

    async def _save_checkpoint(self, conn: VectorConnection) -> None:
        assert self._timeline is not None
        vector = conn.vector
        cut_from = vector.checkpoint
        moved = vector.moved()
        try:
            checkpoint = await self._timeline.checkpoints.save(conn.user_id, moved)
        except Exception as error:
            # The connection cannot be given a cursor that fits: it resumes from its last
            # one (still good; 1013), whose resume cuts the checkpoint.
            self._saving.discard(conn)
            self._blocked.discard(conn)
            if conn in self._by_user.get(conn.user_id, ()):
                self._close_for_resume(conn, error)
            return
        self._saving.discard(conn)
        if conn.vector is vector and vector.checkpoint == cut_from:
            # Not rebased meanwhile (a replay's Timeline may have cut a later one): the
            # cursor names it and lists only the groups that moved since `moved`.
            vector.rebase(checkpoint, moved)
            conn.forget_prefix()
        if conn in self._blocked:
            self._blocked.discard(conn)
            if conn in self._by_user.get(conn.user_id, ()):
                give_up_at = asyncio.get_running_loop().time() + self._resync_retry_seconds
                await self._resync_one(conn, give_up_at)
            else:
                self._drop_hold(conn)

    async def settled(self) -> None:
        """Wait until the replays that notifications started, and the unfollows, are done
        (for tests)."""
        while self._refreshes:
            await asyncio.gather(*self._refreshes)
        if self._by_group is not None:
            await self._by_group.settled()

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


def _shows(events: bool, user_id: str, event: Event) -> bool:
    """The gateway's views: every event, or messages from others (not even a note to
    oneself: the sender has it)."""
    return events or (isinstance(event, Message) and event.from_user_id != user_id)
