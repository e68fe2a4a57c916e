"""Who is online, shared by every gateway through Redis (PresenceStore, production).

The layout (all times on Redis' clock, read by TIME inside the scripts):
- presence:user:{user_id}, a hash: online (1/0: the status last answered), version,
  last_seen (Unix seconds), gateways (how many live gateways hold its sockets);
- presence:gw:{name}, a set: the users whose sockets a gateway holds;
- presence:gateways, a sorted set: gateway name -> lease end (ms);
- presence:sweeping: gateways found dead whose users are still being taken off;
- presence:leaving, a sorted set: user -> end of its grace (ms).

The prefix `presence:` is the layout's (KeyLayout.service): the scripts read and write
users' hashes and gateways' sets they cannot declare (a sweep finds them as it goes), and
on a Redis Cluster a script's keys must all be in one slot, so one store keeps all its keys
under one hash tag - `{presence}:...` (ClusterLayout: a single-slot service), or a user
bucket's `{t7}:presence:...` (BucketLayout). The container gives a cluster one store per
bucket (adapters/redis/bucketed_presence.py), each holding the users of its bucket only.

A gateway writes under a name of its own, `gateway_id:random`, renewed each time it
finds that it was swept as dead (its lease ran out: it was stopped, or cut off from Redis,
for longer than a lease): the sweep of the old name then runs on undisturbed while the
gateway announces its users again under the new one. It renews its lease every lease/4
(keep_alive). Any gateway's expire() takes the users of dead gateways off and sends
offline those whose grace ran out: a gateway killed with kill -9 has its users offline
about lease + grace (+ the expire interval) after its last renewal.

This gateway's arrivals and departures are written in the order they were made, by one
writer at a time (those that come meanwhile go out together in its next call): sent
concurrently, a socket's close could overtake its own open and leave a user online for
good. The adapter remembers who is here (arrived minus left): that is what it says
again when it was swept, and after a call that failed (Redis may or may not have run it),
at the next renewal."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from adapters.redis.layout import SINGLE, KeyLayout
from adapters.redis.support import lua, text, unavailable
from application.ports import PresenceStore
from domain.errors import ServiceUnavailable
from domain.presence import PresenceStatus

log = logging.getLogger("courier.redis.presence")

LEASE_SECONDS = 12.0
# Per expire script: Redis serves nobody else while a script runs, so a big sweep (a dead
# gateway's ten thousand users, or thousands whose grace ends together) is done in many
# short calls rather than one long one, and sends go on between them.
EXPIRE_LIMIT = 100
EXPIRE_ROUNDS = 200  # calls at most per expire(): the rest waits for the next one

ARRIVE, LEAVE, SYNC, CLOSE, RENEW = "a", "l", "s", "c", "r"


class PresenceKeys:
    """The store's key names: the module's constants on one Redis, under `{presence}` on a cluster."""

    __slots__ = ("gateways", "sweeping", "leaving", "users", "gateway_sets")

    def __init__(self, layout: KeyLayout = SINGLE):
        prefix = layout.service("presence")
        self.gateways, self.sweeping, self.leaving = prefix + "gateways", prefix + "sweeping", prefix + "leaving"
        self.users, self.gateway_sets = prefix + "user:", prefix + "gw:"

    def user(self, user_id: str) -> str:
        return self.users + user_id


@dataclass
class _Entry:
    kind: str
    users: Sequence[str]
    future: asyncio.Future
    changed: list[PresenceStatus] = field(default_factory=list)


class RedisPresenceStore(PresenceStore):
    def __init__(self, client: aioredis.Redis | RedisCluster, grace: float, gateway_id: str | None = None,
                 lease: float = LEASE_SECONDS, layout: KeyLayout = SINGLE,
                 limit: asyncio.Semaphore | None = None):
        self._client = client
        # Calls to Redis in flight at once, when several stores share a client
        # (BucketedPresenceStore: one per bucket); None: no bound but the writer's.
        self._limit: contextlib.AbstractAsyncContextManager = limit or contextlib.nullcontext()
        self.keys = PresenceKeys(layout)
        self._grace_ms = int(grace * 1000)
        self.gateway_id = gateway_id or uuid.uuid4().hex
        self._lease = lease
        self._apply = client.register_script(lua("presence_apply.lua"))
        self._expire = client.register_script(lua("presence_expire.lua"))
        self._name = self._new_name()
        self._registered = False  # a call under this name succeeded: its lease exists unless swept
        self._here: set[str] = set()  # users whose first socket here opened, and last not yet closed
        self._queue: list[_Entry] = []
        self._writer: asyncio.Task | None = None
        self._unsure = False  # a write failed: say again who is here at the next renewal
        self._unanswered: list[PresenceStatus] = []  # changes made by keep_alive, for expire() to answer
        self._closed = False

    @property
    def name(self) -> str:
        """This gateway's current name in Redis (tests, logs)."""
        return self._name

    def _new_name(self) -> str:
        # Random, so a gateway restarted with the same id never inherits its former self's users.
        return f"{self.gateway_id}:{secrets.token_hex(4)}"

    # --- the port -------------------------------------------------------------

    async def arrived(self, user_ids: Sequence[str]) -> list[PresenceStatus]:
        if not user_ids or self._closed:
            return []
        self._here.update(user_ids)
        return await self._write(ARRIVE, list(user_ids))

    async def left(self, user_ids: Sequence[str]) -> None:
        if not user_ids or self._closed:
            return
        self._here.difference_update(user_ids)
        await self._write(LEAVE, list(user_ids))

    async def expire(self) -> list[PresenceStatus]:
        changed: list[PresenceStatus] = []
        for _ in range(EXPIRE_ROUNDS):
            async with self._limit:
                with unavailable("presence"):
                    reply = await self._expire(
                        keys=[self.keys.gateways, self.keys.sweeping, self.keys.leaving],
                        args=[self.keys.users, self.keys.gateway_sets, EXPIRE_LIMIT, self._grace_ms],
                    )
            for i in range(1, len(reply), 3):
                changed.append(PresenceStatus(text(reply[i]), False, _seconds(reply[i + 2]), int(reply[i + 1])))
            if not int(reply[0]):
                break
        changed[:0], self._unanswered = self._unanswered, []
        return changed

    async def statuses(self, user_ids: Sequence[str]) -> list[PresenceStatus]:
        if not user_ids:
            return []
        async with self._limit:
            with unavailable("presence"):
                async with self._client.pipeline(transaction=False) as pipe:
                    for user_id in user_ids:
                        pipe.hmget(self.keys.user(user_id), "online", "last_seen", "version")
                    rows = await pipe.execute()
        return [_status(user_id, row) for user_id, row in zip(user_ids, rows, strict=True)]

    async def touch(self, user_id: str) -> PresenceStatus:
        async with self._limit:
            with unavailable("presence"):
                async with self._client.pipeline(transaction=True) as pipe:
                    pipe.hincrby(self.keys.user(user_id), "version", 1)
                    pipe.hmget(self.keys.user(user_id), "online", "last_seen", "version")
                    _, row = await pipe.execute()
        return _status(user_id, row)

    async def keep_alive(self) -> None:
        """Renew the lease every lease/4 (so three renewals may be lost before it runs
        out); after a failed write, say again who is here."""
        while not self._closed:
            await self.renew()
            await asyncio.sleep(self._lease / 4)

    async def renew(self) -> None:
        """One renewal of keep_alive's (a failure is logged: the next one tries again).
        BucketedPresenceStore renews its buckets' stores with it, in one loop."""
        if self._closed:
            return
        try:
            if self._unsure:
                self._unsure = False  # set again if this fails too
                await self._write(SYNC, list(self._here))
            else:
                await self._write(RENEW, [])
        except ServiceUnavailable as error:
            log.warning("could not renew this gateway's presence lease: %s", error)

    async def close(self) -> None:
        if self._closed:
            return
        self._here.clear()
        try:
            await self._write(CLOSE, [])
        except ServiceUnavailable as error:
            log.warning("could not take this gateway's users off (its lease runs out by itself): %s", error)
        self._closed = True

    # --- the writer -----------------------------------------------------------

    async def _write(self, kind: str, users: list[str]) -> list[PresenceStatus]:
        entry = _Entry(kind, users, asyncio.get_running_loop().create_future())
        self._queue.append(entry)
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._drain())
        return await entry.future

    async def _drain(self) -> None:
        try:
            while self._queue:
                entries, self._queue = self._queue, []
                try:
                    await self._send(entries)
                except Exception as error:  # noqa: BLE001 - each caller gets it; the writer goes on
                    self._unsure = True
                    for entry in entries:
                        if not entry.future.done():
                            entry.future.set_exception(error)
                else:
                    for entry in entries:
                        if not entry.future.done():
                            entry.future.set_result(entry.changed)
        finally:
            self._writer = None
            for entry in self._queue:  # only when cancelled (the loop is closing)
                entry.future.cancel()
            self._queue = []

    async def _send(self, entries: list[_Entry]) -> None:
        reply = await self._call(entries)
        if text(reply[0]) == "swept":
            log.warning("this gateway's presence lease ran out and it was swept; announcing its %d users again",
                        len(self._here))
            self._name, self._registered = self._new_name(), False
            # Who is here now (the entries still queued are in it already: they change nothing
            # more when they come), then a close if one was asked for.
            redo = [_Entry(SYNC, list(self._here), asyncio.get_running_loop().create_future())]
            redo += [entry for entry in entries if entry.kind == CLOSE]
            reply = await self._call(redo)
            self._registered = True
            self._hand_out(reply, redo, entries)
            return
        self._registered = True
        self._hand_out(reply, entries, entries)

    async def _call(self, entries: list[_Entry]):
        args: list[str | int] = [self._name, int(self._lease * 1000), self._grace_ms,
                                 "1" if self._registered else "0", self.keys.users]
        for entry in entries:
            args += [entry.kind, len(entry.users), *entry.users]
        async with self._limit:
            with unavailable("presence"):
                return await self._apply(
                    keys=[self.keys.gateways, self.keys.leaving, self.keys.gateway_sets + self._name], args=args,
                )

    def _hand_out(self, reply, sent: list[_Entry], asked: list[_Entry]) -> None:
        """Each arrival gets the changes of its own users; a change nobody asked for (a
        renewal's, a resync's) is answered by the next expire()."""
        arrivals = {user: entry for entry in asked if entry.kind == ARRIVE for user in entry.users}
        for i in range(1, len(reply), 4):
            user = text(reply[i + 1])
            status = PresenceStatus(user, True, _seconds(reply[i + 3]), int(reply[i + 2]))
            own = sent[int(reply[i])]
            if own.kind != ARRIVE:
                own = arrivals.get(user, own)
            if own.kind == ARRIVE:
                own.changed.append(status)
            else:
                self._unanswered.append(status)


def _seconds(value) -> int | None:
    return int(value) if value not in (None, b"", "") else None


def _status(user_id: str, row) -> PresenceStatus:
    online, last_seen, version = row
    return PresenceStatus(user_id, online is not None and text(online) == "1", _seconds(last_seen),
                          int(version) if version is not None else 0)
