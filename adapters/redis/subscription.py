"""A set of pub/sub channels that changes while it is read, kept subscribed across lost
connections (the presence bus's, one channel per watched user; the typing bus's one).

Redis routes a message only to the connections subscribed to its channel, so a gateway
is sent only what it subscribed to. Commands go out on the connection the reader reads:
Redis answers them in order, so each SUBSCRIBE's confirmation is matched to its sender,
which returns only once it came (from then on every publish on the channel reaches us)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from adapters.redis.pubsub import Resyncs, SilentConnection, own_client_anywhere, read_replies

log = logging.getLogger("courier.redis.subscription")

CHUNK = 1000  # channels per SUBSCRIBE: a resubscription of many is many short commands


class Subscription:
    def __init__(self, source: aioredis.Redis | RedisCluster | str, client_name: str, channels: Iterable[bytes] = (), *,
                 ping_interval: float = 5.0, min_backoff: float = 0.1, max_backoff: float = 1.0):
        self._source = source
        self._client_name = client_name
        self._ping_interval = ping_interval
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._channels: set[bytes] = set(channels)
        self._connection = None  # the reader's, while it is up
        # SUBSCRIBEs sent and not yet confirmed, per channel, in the order sent.
        self._unconfirmed: dict[bytes, deque[asyncio.Future]] = {}
        self.resubscriptions = 0  # subscriptions made after a lost connection, for tests and logs

    @property
    def channels(self) -> set[bytes]:
        return set(self._channels)

    async def add(self, channels: list[bytes]) -> None:
        """Subscribe to these; returns once Redis confirmed each of them. While the
        connection is down this returns at once: every channel is subscribed again when
        it is back, and on_resync follows."""
        new = [channel for channel in dict.fromkeys(channels) if channel not in self._channels]
        self._channels.update(new)
        connection = self._connection
        if connection is not None and new:
            await self._send(connection, "SUBSCRIBE", new)
        waits = [self._unconfirmed[channel][-1] for channel in channels if self._unconfirmed.get(channel)]
        if waits:
            # asyncio.wait: a caller cancelled meanwhile must not cancel a confirmation others wait for.
            await asyncio.wait(waits)

    async def remove(self, channels: list[bytes]) -> None:
        gone = [channel for channel in dict.fromkeys(channels) if channel in self._channels]
        self._channels.difference_update(gone)
        connection = self._connection
        if connection is not None and gone:
            await self._send(connection, "UNSUBSCRIBE", gone)

    async def _send(self, connection, command: str, channels: list[bytes]) -> None:
        for start in range(0, len(channels), CHUNK):
            if connection is not self._connection or not connection.is_connected:
                return  # lost meanwhile (never reconnect it here): the reader resubscribes everything
            part = channels[start:start + CHUNK]
            if command == "SUBSCRIBE":
                # A resubscription's long list: not those removed while it went out.
                part = [channel for channel in part if channel in self._channels]
                if not part:
                    continue
                loop = asyncio.get_running_loop()
                for channel in part:
                    self._unconfirmed.setdefault(channel, deque()).append(loop.create_future())
            try:
                await connection.send_command(command, *part, check_health=False)
            except Exception as error:  # noqa: BLE001 - the reader sees the loss and starts over
                log.debug("could not %s (%r); the resubscription will", command, error)
                return

    async def run(self, on_message: Callable[[bytes, bytes], None],
                  on_resync: Callable[[], Awaitable[None]] | None = None) -> None:
        """Until cancelled: every message of a subscribed channel to on_message(channel,
        data); after each (re)subscription, on_resync is launched (runs on beside the reading)."""
        client = await own_client_anywhere(self._source, self._client_name)
        resyncs = Resyncs()
        loop = asyncio.get_running_loop()
        backoff = self._min_backoff
        lost_at: float | None = None
        try:
            while True:
                connection = reader = None
                try:
                    connection = await client.connection_pool.get_connection()
                    reader = asyncio.ensure_future(read_replies(
                        connection, lambda reply: self._on_reply(reply, on_message), self._ping_interval))
                    self._connection = connection
                    await self._resubscribe(connection, reader)
                    if lost_at is not None:
                        self.resubscriptions += 1
                        log.warning("%s: resubscribed to %d channels after %.1f s", self._client_name,
                                    len(self._channels), loop.time() - lost_at)
                    lost_at, backoff = None, self._min_backoff
                    if on_resync is not None:
                        resyncs.launch(on_resync)
                    await reader
                except Exception as e:  # noqa: BLE001 - any failure means: reconnect, never crash the gateway
                    if lost_at is None:
                        lost_at = loop.time()
                        log.warning("%s: lost the subscription (%s: %s); reconnecting",
                                    self._client_name, type(e).__name__, e)
                    else:
                        log.debug("%s: still cannot subscribe: %r", self._client_name, e)
                    # Jitter spreads the reconnects of many gateways after a Redis restart.
                    await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                    backoff = min(backoff * 2, self._max_backoff)
                finally:
                    await self._lost(client, connection, reader)
        finally:
            resyncs.cancel()
            await client.aclose()

    async def _resubscribe(self, connection, reader: asyncio.Future) -> None:
        """Subscribe every channel again and wait for the confirmations."""
        await self._send(connection, "SUBSCRIBE", list(self._channels))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self._ping_interval
        waiting = {pending[-1] for pending in self._unconfirmed.values() if pending}
        while waiting:
            timeout = deadline - loop.time()
            if timeout <= 0:
                raise SilentConnection("no confirmation of SUBSCRIBE")
            done, _ = await asyncio.wait([*waiting, reader], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                reader.result()  # raises why it ended
                raise ConnectionError("the subscription ended")
            waiting -= done

    async def _lost(self, client, connection, reader) -> None:
        self._connection = None
        # Whoever waits for a confirmation returns: on_resync covers what it may miss.
        for pending in self._unconfirmed.values():
            for future in pending:
                if not future.done():
                    future.set_result(None)
        self._unconfirmed.clear()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        if connection is not None:
            await connection.disconnect()
            await client.connection_pool.release(connection)

    def _on_reply(self, reply, on_message: Callable[[bytes, bytes], None]) -> None:
        # Subscription replies: [b"message", channel, data], [b"subscribe", channel, count], ...
        if not isinstance(reply, list) or len(reply) != 3:
            return
        kind, channel = reply[0], reply[1]
        if kind == b"message":
            if channel in self._channels:  # not one unsubscribed while its message was on the way
                try:
                    on_message(channel, reply[2])
                except Exception:
                    log.exception("%s: a message's handler failed", self._client_name)
        elif kind == b"subscribe":
            pending = self._unconfirmed.get(channel)
            if pending:
                future = pending.popleft()
                if not pending:
                    del self._unconfirmed[channel]
                if not future.done():
                    future.set_result(None)
