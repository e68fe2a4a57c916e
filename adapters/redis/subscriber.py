"""The gateway's end of the bus: SUBSCRIBE message_notifications, hand every
notification to the gateway in arrival order, and when the connection was
lost, reconnect and ask the gateway to read the gap from the inbox streams.

Beside it, the channels of the large groups the gateway follows (lg:{G}:n, one per
group with a local member: docs/design/large-groups.md, section 6.1), on a
Subscription of their own, which resubscribes them all and asks for a resync in
the same way when its connection is lost."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Collection

import redis.asyncio as aioredis

from adapters.redis import envelope
from adapters.redis.group_streams import CHANNEL as GROUP_CHANNEL
from adapters.redis.inbox import NOTIFICATION_CHANNEL
from adapters.redis.pubsub import Resyncs, SilentConnection, own_client, read_replies
from adapters.redis.subscription import Subscription
from application.ports import AnyNotification, NotificationSubscriber

log = logging.getLogger("courier.redis.subscriber")


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
        self._resyncs = Resyncs()
        self.groups = Subscription(source, "courier-groups", ping_interval=ping_interval,
                                   min_backoff=min_backoff, max_backoff=max_backoff)

    async def follow(self, group_ids: Collection[str]) -> None:
        await self.groups.add([group_channel(group_id) for group_id in group_ids])

    async def unfollow(self, group_ids: Collection[str]) -> None:
        await self.groups.remove([group_channel(group_id) for group_id in group_ids])

    async def run(
        self,
        on_notification: Callable[[AnyNotification], None],
        on_resync: Callable[[], Awaitable[None]],
    ) -> None:
        client = own_client(self._source, "courier-subscriber")
        # The groups' channels come in on their own connection: a message there is in
        # order with the rest of its group (one script per group publishes it), which is
        # all the gateway needs; across channels Redis promises no order anyway.
        async def on_groups_resync() -> None:
            # A (re)subscription of the groups' channels closes a gap only when a group
            # is followed: with none, nothing could be missed there.
            if self.groups.channels:
                await on_resync()

        groups = asyncio.ensure_future(self.groups.run(
            lambda channel, data: self._dispatch(data, on_notification), on_groups_resync))
        try:
            await self._subscribe_forever(client, on_notification, on_resync)
        finally:
            groups.cancel()
            with contextlib.suppress(BaseException):
                await groups
            self._resyncs.cancel()
            await client.aclose()

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
                self._resyncs.launch(on_resync)
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

    async def _listen(self, pubsub, on_notification) -> None:
        def on_reply(reply) -> None:
            # Subscription replies: [b"message", channel, data], [b"pong", b""], ...
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                self._dispatch(reply[2], on_notification)

        await read_replies(pubsub.connection, on_reply, self._ping_interval, ping=pubsub.ping)

    def _dispatch(self, data, on_notification) -> None:
        dispatch(data, on_notification)


def dispatch(data, on_notification) -> None:
    """A published envelope to on_notification (also the cluster's subscriber's): neither a
    malformed message nor a failing handler stops the messages after it."""
    try:
        notification = parse_notification(data)
    except Exception as e:  # noqa: BLE001 - a bad message must not stop the others
        log.warning("skipped a malformed notification (%s): %.200r", e, data)
        return
    try:
        on_notification(notification)
    except Exception:
        log.exception("on_notification failed for %r", notification)


def group_channel(group_id: str) -> bytes:
    return GROUP_CHANNEL.format(group_id).encode()
