"""Presence (issue 16 point 2): who is online, told to those who asked.

PresenceTracker tells the store when a user's first socket opens on this gateway and when
its last one here closes, and publishes what changed - also the expiries it finds (grace
periods that ran out, gateways that died). PresenceWatch keeps what each socket asked to
watch (presence_subscribe), answers it at once, and pushes every change of a watched user
to the sockets that watch it. A change reaches only the gateways watching that user
(PresenceBus), and on a gateway only the sockets that asked: one change costs
O(subscribers of that user), never O(users who could see someone).

What others see of a user who hides its presence: offline, never seen. It is applied
where a status leaves for others: when a change is published, and when a subscription
or GET /users/{id}/presence is answered."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from application.ports import Clock, PresenceBus, PresencePreferences, PresenceStore, UserRepository
from domain import errors
from domain.model import validate_id
from domain.presence import PresenceStatus, error_frame, parse_presence_subscription

log = logging.getLogger("courier.presence")

EXPIRE_EVERY = 2.0  # seconds between two looks for grace periods that ran out
RETRY_FIRST, RETRY_MAX = 0.2, 5.0  # backoff while the store refuses an arrival or a leave
WATCH_CHUNK = 500  # user ids per statuses() call when reading everything watched again
PUBLISH_CHUNK = 100  # changes per preferences query and per bus call
# Arrivals or leaves per store call: in production one script, during which Redis serves
# nobody else (5000 sockets closing at once made one of 21 ms: docs/perf-notes.md).
APPLY_CHUNK = 100

Encode = Callable[[dict], bytes]


class PresenceSocket(Protocol):
    """A client's open socket, as presence sees it."""

    @property
    def user_id(self) -> str: ...

    def send(self, payload: bytes) -> bool:
        """Queue a frame; False when the socket is gone."""


@dataclass
class PresencePublisher:
    """Publishes status changes as others see them."""

    bus: PresenceBus
    preferences: PresencePreferences

    async def publish(self, statuses: Sequence[PresenceStatus]) -> None:
        """In chunks of PUBLISH_CHUNK: an expiry look may publish thousands of changes
        (everyone a stopped gateway held), and the loop serves its sockets between two.
        Only the changes of users someone watches are published (and only their
        preferences read): the changes are stored already, and a watch that starts later
        reads them (PresenceBus.watched_among). A mass arrival or departure of users
        nobody watches costs no query and no message."""
        for start in range(0, len(statuses), PUBLISH_CHUNK):
            chunk = statuses[start:start + PUBLISH_CHUNK]
            watched = await self.bus.watched_among([s.user_id for s in chunk])
            chunk = [status for status in chunk if status.user_id in watched]
            if not chunk:
                continue
            hidden = await self.preferences.hidden_among([s.user_id for s in chunk])
            await self.bus.publish([status.seen_by_others(status.user_id not in hidden) for status in chunk])


class PresenceTracker:
    """This gateway's sockets, counted per user: the store hears of a user's first socket
    here and of its last, in the order they happened (one task drains them, in batches)."""

    def __init__(self, store: PresenceStore, publisher: PresencePublisher, expire_every: float = EXPIRE_EVERY):
        self._store = store
        self._publisher = publisher
        self._expire_every = expire_every
        self._sockets: dict[str, int] = {}
        self._pending: list[tuple[bool, str]] = []  # (arrived, user_id), oldest first
        self._draining: asyncio.Task | None = None

    def socket_opened(self, socket: PresenceSocket) -> None:
        user_id = socket.user_id
        count = self._sockets.get(user_id, 0)
        self._sockets[user_id] = count + 1
        if count == 0:
            self._queue(True, user_id)

    def socket_closed(self, socket: PresenceSocket) -> None:
        user_id = socket.user_id
        count = self._sockets.get(user_id, 0) - 1
        if count > 0:
            self._sockets[user_id] = count
            return
        if self._sockets.pop(user_id, None) is not None:
            self._queue(False, user_id)

    def is_here(self, user_id: str) -> bool:
        return user_id in self._sockets

    def _queue(self, arrived: bool, user_id: str) -> None:
        self._pending.append((arrived, user_id))
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        backoff = RETRY_FIRST
        try:
            while self._pending:
                arrived = self._pending[0][0]
                batch: list[str] = []
                for kind, user_id in self._pending:
                    if kind != arrived or len(batch) == APPLY_CHUNK:
                        break
                    batch.append(user_id)
                try:
                    if arrived:
                        changed = await self._store.arrived(batch)
                    else:
                        await self._store.left(batch)
                except errors.ServiceUnavailable as error:
                    # Kept, in order, and told again: the store must hear of every
                    # arrival and leave, or a user could stay online for good.
                    log.warning("presence store unavailable (%s): retrying in %.1f s", error, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(2 * backoff, RETRY_MAX)
                    continue
                backoff = RETRY_FIRST
                del self._pending[:len(batch)]
                if arrived:
                    await self._publish(changed)
        finally:
            self._draining = None

    async def _publish(self, statuses: Sequence[PresenceStatus]) -> None:
        try:
            await self._publisher.publish(statuses)
        except errors.CourierError as error:
            # Watchers read statuses again when their bus comes back (PresenceWatch.resync).
            log.warning("could not publish %d presence change(s): %s", len(statuses), error)

    async def run(self) -> None:
        """Until cancelled: keep this gateway alive in the store, and publish the
        changes of users whose grace ran out."""
        keep_alive = asyncio.ensure_future(self._store.keep_alive())
        try:
            while True:
                await asyncio.sleep(self._expire_every)
                try:
                    changed = await self._store.expire()
                except errors.ServiceUnavailable as error:
                    log.warning("could not look for presence expiries: %s", error)
                    continue
                await self._publish(changed)
        finally:
            keep_alive.cancel()

    async def close(self) -> None:
        """The gateway stops: its users leave (offline after their grace, unless back
        on another gateway)."""
        if self._draining is not None:
            self._draining.cancel()
        try:
            await self._store.close()
        except errors.ServiceUnavailable as error:
            log.warning("could not tell the presence store this gateway stops (its lease runs out): %s", error)

    async def preference_changed(self, user_id: str) -> None:
        """What others see of the user changed (show_presence): tell its watchers."""
        await self._publish([await self._store.touch(user_id)])


class PresenceWatch:
    """presence_subscribe frames, and the changes pushed to the sockets that asked."""

    def __init__(self, store: PresenceStore, bus: PresenceBus, preferences: PresencePreferences, clock: Clock,
                 encode: Encode):
        self._store = store
        self._bus = bus
        self._preferences = preferences
        self._clock = clock
        self._encode = encode
        self._by_socket: dict[Any, tuple[str, ...]] = {}
        self._watchers: dict[str, set[Any]] = {}
        # The latest status (as others see it) of each watched user, by version: of a
        # snapshot and a change that cross, the later one wins.
        self._current: dict[str, PresenceStatus] = {}
        self._unwatching: set[asyncio.Task] = set()
        self._watch_pending: dict[str, asyncio.Future] = {}  # user -> its bus.watch under way
        # Sockets whose subscription is being answered (how many answers under way): a
        # change meanwhile is not pushed to them, the answer shows it (_latest), once.
        self._answering: dict[Any, int] = {}

    @property
    def subscription_count(self) -> int:
        return sum(len(ids) for ids in self._by_socket.values())

    @property
    def watched_count(self) -> int:
        return len(self._watchers)

    async def subscribe(self, socket: PresenceSocket, frame: dict) -> None:
        """{"type": "presence_subscribe", "user_ids": [...]}: replaces the socket's set,
        and answers one presence frame per id at once."""
        try:
            user_ids = parse_presence_subscription(frame)
        except errors.CourierError as error:
            socket.send(self._encode(error_frame(error)))
            return
        added, removed = self._replace(socket, tuple(user_ids))
        self._answering[socket] = self._answering.get(socket, 0) + 1
        try:
            # The bus hears of what _replace decided in the order it was decided: the new
            # users first, before anything here waits. Were the unwatch awaited first, a
            # close meanwhile would unwatch the new users before they were watched, and
            # the bus would keep them watched for good (a channel nobody here listens to).
            # Before the snapshot, every user asked for is watched - also those another
            # socket started watching a moment ago, whose watch may not be confirmed yet:
            # no change falls between.
            confirming = self._confirming_of(user_ids, added)
            if added:
                await self._watch(added)
            if confirming:
                await asyncio.gather(*confirming)
            if removed:
                await self._bus.unwatch(removed)
            statuses = await self._store.statuses(user_ids)
            hidden = await self._preferences.hidden_among(user_ids)
        except errors.CourierError as error:
            socket.send(self._encode(error_frame(error)))
            return
        finally:
            self._answered(socket)
        if self._by_socket.get(socket) != tuple(user_ids):
            return  # closed, or subscribed again, meanwhile: that answer is the one
        now = self._clock.now()
        for status in statuses:
            shown = self._latest(status.seen_by_others(status.user_id not in hidden))
            socket.send(self._encode(shown.public(now)))

    async def _watch(self, user_ids: list[str]) -> None:
        """bus.watch, with each user's watch known as under way until it returns."""
        done = asyncio.get_running_loop().create_future()
        for user_id in user_ids:
            self._watch_pending[user_id] = done
        try:
            await self._bus.watch(user_ids)
        finally:
            for user_id in user_ids:
                if self._watch_pending.get(user_id) is done:
                    del self._watch_pending[user_id]
            done.set_result(None)

    def _confirming_of(self, user_ids: list[str], added: list[str]) -> list[asyncio.Future]:
        """The watches under way (started by other subscriptions) of these users."""
        new = set(added)
        pending = {id(f): f for u in user_ids if u not in new and (f := self._watch_pending.get(u)) is not None}
        return list(pending.values())

    def on_change(self, status: PresenceStatus) -> None:
        """A change from the bus (already as others see it): to every socket watching."""
        watchers = self._watchers.get(status.user_id)
        if not watchers:
            return
        current = self._current.get(status.user_id)
        if current is not None and status.version <= current.version:
            return  # older than what was shown
        self._current[status.user_id] = status
        payload = self._encode(status.public(self._clock.now()))
        answering = self._answering
        for socket in tuple(watchers):
            if socket not in answering:
                socket.send(payload)

    def _answered(self, socket: Any) -> None:
        left = self._answering.pop(socket, 1) - 1
        if left:
            self._answering[socket] = left

    async def resync(self) -> None:
        """The bus was lost and is back: changes may have been missed. Read every
        watched user's status again; what changed meanwhile is pushed."""
        user_ids = list(self._watchers)
        for start in range(0, len(user_ids), WATCH_CHUNK):
            chunk = user_ids[start:start + WATCH_CHUNK]
            try:
                statuses = await self._store.statuses(chunk)
                hidden = await self._preferences.hidden_among(chunk)
            except errors.CourierError as error:
                log.warning("could not read presence again after the bus came back: %s", error)
                return
            for status in statuses:
                self.on_change(status.seen_by_others(status.user_id not in hidden))

    def socket_closed(self, socket: PresenceSocket) -> None:
        _, removed = self._replace(socket, ())
        if removed:
            task = asyncio.ensure_future(self._unwatch(removed))
            self._unwatching.add(task)
            task.add_done_callback(self._unwatching.discard)

    async def _unwatch(self, user_ids: list[str]) -> None:
        try:
            await self._bus.unwatch(user_ids)
        except errors.CourierError as error:
            log.warning("could not stop watching %d user(s): %s", len(user_ids), error)

    def _latest(self, status: PresenceStatus) -> PresenceStatus:
        current = self._current.get(status.user_id)
        if current is not None and current.version > status.version:
            return current
        if status.user_id in self._watchers:
            self._current[status.user_id] = status
        return status

    def _replace(self, socket: PresenceSocket, user_ids: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """The socket now watches `user_ids`: the users this gateway starts watching,
        and those nobody here watches any more."""
        old = self._by_socket.pop(socket, ())
        if user_ids:
            self._by_socket[socket] = user_ids
        new = set(user_ids)
        removed = []
        for user_id in old:
            if user_id in new:
                continue
            watchers = self._watchers.get(user_id)
            if watchers is not None:
                watchers.discard(socket)
                if not watchers:
                    del self._watchers[user_id]
                    self._current.pop(user_id, None)
                    removed.append(user_id)
        added = []
        for user_id in user_ids:
            watchers = self._watchers.get(user_id)
            if watchers is None:
                watchers = self._watchers[user_id] = set()
                added.append(user_id)
            watchers.add(socket)
        return added, removed


@dataclass
class GetPresence:
    """GET /api/v1/users/{user_id}/presence: the presence frame's object."""

    store: PresenceStore
    preferences: PresencePreferences
    users: UserRepository
    clock: Clock

    async def __call__(self, user_id: Any) -> dict:
        user_id = validate_id(user_id, "user_id")
        if await self.users.get(user_id) is None:
            raise errors.UserNotFound()
        [status] = await self.store.statuses([user_id])
        hidden = await self.preferences.hidden_among([user_id])
        return status.seen_by_others(user_id not in hidden).public(self.clock.now())
