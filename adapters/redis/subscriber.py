"""The gateway's end of the bus: SUBSCRIBE message_notifications, hand every
notification to the gateway in arrival order, and when the connection was
lost, reconnect and ask the gateway to read the gap from the inbox streams."""
from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.redis import envelope
from adapters.redis.inbox import NOTIFICATION_CHANNEL
from adapters.redis.support import NO_MAINTENANCE_NOTIFICATIONS
from application.ports import Notification, NotificationSubscriber

log = logging.getLogger("courier.redis.subscriber")


class SilentConnection(ConnectionError):
    """Nothing came back from Redis, not even the answer to a PING."""


class _LastHeard:
    """When the subscription was last heard from, how many replies it has given, and
    why the watchdog gave up on it. (A ping is known answered by the count, not by
    comparing times: uvloop's clock advances once per turn of the loop, in whole
    milliseconds, so a pong read in the same millisecond looks no later than its ping.)"""

    __slots__ = ("at", "replies", "failure")

    def __init__(self, at: float):
        self.at = at
        self.replies = 0
        self.failure: BaseException | None = None


parse_notification = envelope.parse  # the name the tests and the stage timer know


class RedisNotificationSubscriber(NotificationSubscriber):
    """`source` is a redis URL or a client to copy the connection settings from.

    The subscriber always talks through a client of its own, made with
    redis-py's retries turned off: redis-py would otherwise reconnect and
    resubscribe by itself on a dropped connection, and the notifications
    published in between would be lost without anyone calling on_resync.

    A connection that dies silently (a peer gone without a FIN or RST) is
    noticed by pinging after `ping_interval` seconds of silence: no answer
    within another `ping_interval` counts as a lost connection. TCP keepalive
    is on as well, for the kernel's own check."""

    def __init__(
        self,
        source: aioredis.Redis | str,
        channel: str = NOTIFICATION_CHANNEL,
        *,
        ping_interval: float = 5.0,
        min_backoff: float = 0.1,
        # At most a second between two tries: the pushes of what is accepted meanwhile
        # wait for the resync, so no longer than that once Redis is back.
        max_backoff: float = 1.0,
    ):
        self._source = source
        self._channel = channel
        self._ping_interval = ping_interval
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self.resubscriptions = 0  # subscriptions made after a lost connection, for metrics and tests
        self._resyncs: set[asyncio.Future] = set()  # under way (the loop keeps weak references only)

    async def run(
        self,
        on_notification: Callable[[Notification], None],
        on_resync: Callable[[], Awaitable[None]],
    ) -> None:
        client = self._client()
        try:
            await self._subscribe_forever(client, on_notification, on_resync)
        finally:
            for task in list(self._resyncs):
                task.cancel()
            await client.aclose()

    def _client(self) -> aioredis.Redis:
        overrides = dict(
            retry=Retry(NoBackoff(), 0),  # see the class docstring
            health_check_interval=0,  # we ping ourselves, and must see the answer
            socket_keepalive=True,
            decode_responses=False,
            client_name="courier-subscriber",  # easy to find in CLIENT LIST
            maint_notifications_config=NO_MAINTENANCE_NOTIFICATIONS,
        )
        if isinstance(self._source, str):
            return aioredis.Redis.from_url(self._source, **overrides)
        pool = self._source.connection_pool
        own_pool = aioredis.ConnectionPool(
            connection_class=pool.connection_class, max_connections=2, **{**pool.connection_kwargs, **overrides}
        )
        return aioredis.Redis.from_pool(own_pool)  # closing the client closes the pool

    async def _subscribe_forever(self, client, on_notification, on_resync) -> None:
        backoff = self._min_backoff
        lost_at: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                await self._confirmed(pubsub)
                if lost_at is not None:
                    self.resubscriptions += 1
                    log.warning("resubscribed to %s after %.1f s; resyncing open connections",
                                self._channel, loop.time() - lost_at)
                lost_at, backoff = None, self._min_backoff
                # Also at the first subscription: a socket attached before it was live
                # may have missed a notification. on_resync takes over at once (the
                # gateway holds every connection before it returns) and its replays
                # run on; notifications are handed over from now on, in order, and
                # wait per connection for its replay (the ports' contract).
                self._resync(on_resync)
                await self._listen(pubsub, on_notification)
            except Exception as e:  # noqa: BLE001 - any failure means: reconnect, never crash the gateway
                if lost_at is None:
                    lost_at = loop.time()
                    log.warning("lost the subscription to %s (%s: %s); reconnecting",
                                self._channel, type(e).__name__, e)
                else:
                    log.debug("still cannot subscribe to %s: %r", self._channel, e)
                # Jitter spreads the reconnects of many gateways after a Redis restart.
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self._max_backoff)
            finally:
                await pubsub.aclose()

    async def _confirmed(self, pubsub) -> None:
        """Wait for Redis to confirm the subscription: only from then on is every
        publish sure to reach us, so only then may a resync read the gap."""
        deadline = asyncio.get_running_loop().time() + 2 * self._ping_interval
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise SilentConnection("no confirmation of SUBSCRIBE")
            message = await pubsub.get_message(timeout=remaining)
            if message is not None and message["type"] == "subscribe":
                return

    def _resync(self, on_resync) -> None:
        try:
            task = asyncio.ensure_future(on_resync())
        except Exception:
            log.exception("resync after (re)subscribing failed")
            return
        self._resyncs.add(task)
        task.add_done_callback(self._resync_done)

    def _resync_done(self, task: asyncio.Future) -> None:
        self._resyncs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("resync after (re)subscribing failed", exc_info=task.exception())

    async def _listen(self, pubsub, on_notification) -> None:
        """Read the subscription's replies straight off its connection, with no timeout
        per read (redis-py's get_message() arms and cancels a timer for every message,
        and builds a dict of it): a watchdog beside the loop notices silence instead."""
        connection = pubsub.connection
        loop = asyncio.get_running_loop()
        heard = _LastHeard(loop.time())
        watchdog = asyncio.ensure_future(self._watch(pubsub, heard))
        try:
            while True:
                try:
                    # push_request: with RESP3 (redis-py 8's default) a published message is a
                    # push reply, which read_response() would otherwise pass on to a handler.
                    reply = await connection.read_response(timeout=math.inf, push_request=True)
                except Exception:
                    if heard.failure is not None:
                        raise heard.failure from None  # why the watchdog closed the connection
                    raise
                heard.at = loop.time()
                heard.replies += 1
                # Subscription replies: [b"message", channel, data], [b"pong", b""], ...
                if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                    self._dispatch(reply[2], on_notification)
        finally:
            watchdog.cancel()
            if watchdog.done() and not watchdog.cancelled():
                watchdog.exception()  # retrieved (it was raised above): no "never retrieved" log

    async def _watch(self, pubsub, heard: _LastHeard) -> None:
        """Ping after ping_interval of silence; no answer within another one: close the
        connection, which ends the read in _listen with the reason (SilentConnection)."""
        loop = asyncio.get_running_loop()
        pinged_at = None
        replies_at_ping = 0
        try:
            while True:
                await asyncio.sleep(self._ping_interval / 2)
                now = loop.time()
                if pinged_at is not None and heard.replies != replies_at_ping:
                    pinged_at = None  # something came after the ping: alive
                silence = now - heard.at
                if pinged_at is not None and silence >= 2 * self._ping_interval:
                    raise SilentConnection(f"no answer from redis for {silence:.1f} s")
                if pinged_at is None and silence >= self._ping_interval:
                    pinged_at, replies_at_ping = now, heard.replies
                    await pubsub.ping()  # the answer arrives as a "pong" reply
        except asyncio.CancelledError:
            raise
        except BaseException as failure:
            heard.failure = failure
            await pubsub.connection.disconnect(nowait=True)  # ends the read in _listen
            raise

    def _dispatch(self, data, on_notification) -> None:
        try:
            notification = parse_notification(data)
        except Exception as e:  # noqa: BLE001 - a bad message must not stop the others
            log.warning("skipped a malformed notification (%s): %.200r", e, data)
            return
        try:
            on_notification(notification)
        except Exception:
            log.exception("on_notification failed for event %s", notification.event.id)
