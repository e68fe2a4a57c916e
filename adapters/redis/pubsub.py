"""What every pub/sub reader of Courier's shares (the notification subscriber, the
presence and typing buses): a client of its own with redis-py's retries off, the read
loop straight off the connection with a watchdog that pings a silent one, and the
resyncs launched after a (re)subscription."""
from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from adapters.redis.support import NO_MAINTENANCE_NOTIFICATIONS

log = logging.getLogger("courier.redis.pubsub")


class SilentConnection(ConnectionError):
    """Nothing came back from Redis, not even the answer to a PING."""


def own_client(source: aioredis.Redis | str, client_name: str) -> aioredis.Redis:
    """A client for one subscription, from a redis URL or a client to copy the connection
    settings from, with redis-py's retries turned off: redis-py would otherwise reconnect
    and resubscribe by itself on a dropped connection, and what was published in between
    would be lost without anyone noticing. TCP keepalive is on, for the kernel's own check."""
    overrides = _own_settings(client_name)
    if isinstance(source, str):
        return aioredis.Redis.from_url(source, **overrides)
    pool = source.connection_pool
    own_pool = aioredis.ConnectionPool(
        connection_class=pool.connection_class, max_connections=2, **{**pool.connection_kwargs, **overrides}
    )
    return aioredis.Redis.from_pool(own_pool)  # closing the client closes the pool


def own_node_client(node: Any, client_name: str) -> aioredis.Redis:
    """own_client for one node of a Redis Cluster (a redis.asyncio.cluster.ClusterNode): its
    address and the cluster client's settings (password, TLS), with retries off as above."""
    own_pool = aioredis.ConnectionPool(
        connection_class=node.connection_class, max_connections=2,
        **{**node.connection_kwargs, **_own_settings(client_name)},
    )
    return aioredis.Redis.from_pool(own_pool)


def _own_settings(client_name: str) -> dict[str, Any]:
    return dict(
        retry=Retry(NoBackoff(), 0),  # see own_client
        health_check_interval=0,  # the watchdog pings, and must see the answer
        socket_keepalive=True,
        decode_responses=False,
        client_name=client_name,  # easy to find in CLIENT LIST
        maint_notifications_config=NO_MAINTENANCE_NOTIFICATIONS,
    )


async def own_client_anywhere(source: aioredis.Redis | RedisCluster | str, client_name: str) -> aioredis.Redis:
    """own_client, or on a Redis Cluster own_node_client of any of its nodes: classic pub/sub
    (PUBLISH, SUBSCRIBE) reaches every node of a cluster, so any one will do."""
    if isinstance(source, RedisCluster):
        await source.initialize()
        return own_node_client(source.get_default_node(), client_name)
    return own_client(source, client_name)


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


async def read_replies(connection, on_reply: Callable[[Any], None], ping_interval: float,
                       ping: Callable[[], Awaitable[Any]] | None = None,
                       on_error_reply: Callable[[ResponseError], None] | None = None) -> None:
    """Until the connection fails: every reply to on_reply, read straight off the
    connection with no timeout per read (redis-py's get_message() arms and cancels a
    timer for every message, and builds a dict of it). A watchdog beside the loop pings
    after `ping_interval` of silence; no answer within another one closes the connection,
    and this raises SilentConnection. `ping` sends the PING (default: on the connection).
    An error reply (redis-py raises it) ends the reading, unless `on_error_reply` takes it
    (it may raise to end it): the connection itself is still good after one."""
    _hand_back_push_replies(connection)
    loop = asyncio.get_running_loop()
    heard = _LastHeard(loop.time())
    watchdog = asyncio.ensure_future(_watch(connection, heard, ping_interval, ping))
    try:
        while True:
            try:
                # push_request: with RESP3 (redis-py 8's default) a published message is a
                # push reply, which read_response() would otherwise pass on to a handler.
                reply = await connection.read_response(timeout=math.inf, push_request=True)
            except ResponseError as error:
                if on_error_reply is None:
                    raise
                heard.at = loop.time()
                on_error_reply(error)
                continue
            except Exception:
                if heard.failure is not None:
                    raise heard.failure from None  # why the watchdog closed the connection
                raise
            heard.at = loop.time()
            heard.replies += 1
            on_reply(reply)
    finally:
        watchdog.cancel()
        if watchdog.done() and not watchdog.cancelled():
            watchdog.exception()  # retrieved (it was raised above): no "never retrieved" log


def _hand_back_push_replies(connection) -> None:
    """With RESP3 every published message is a push reply, which redis-py gives to its
    parser's pub/sub push handler before read_response() returns it. redis-py's own
    handler logs it at debug level and builds that line - str() of [b"message", channel,
    data] - whether or not the logger shows it, for every notification (docs/perf-notes.md,
    twenty-fifth round). Ours hands the reply back as it is. (A RESP2 parser has no push
    handler: nothing to do.)"""
    parser = getattr(connection, "_parser", None)
    if hasattr(parser, "set_pubsub_push_handler"):
        parser.set_pubsub_push_handler(_push_reply_as_is)


async def _push_reply_as_is(reply: Any) -> Any:
    return reply


async def _watch(connection, heard: _LastHeard, ping_interval: float, ping) -> None:
    loop = asyncio.get_running_loop()
    pinged_at = None
    replies_at_ping = 0
    try:
        while True:
            await asyncio.sleep(ping_interval / 2)
            now = loop.time()
            if pinged_at is not None and heard.replies != replies_at_ping:
                pinged_at = None  # something came after the ping: alive
            silence = now - heard.at
            if pinged_at is not None and silence >= 2 * ping_interval:
                raise SilentConnection(f"no answer from redis for {silence:.1f} s")
            if pinged_at is None and silence >= ping_interval:
                pinged_at, replies_at_ping = now, heard.replies
                if ping is not None:
                    await ping()
                else:
                    await connection.send_command("PING", check_health=False)  # answered as a reply
    except asyncio.CancelledError:
        raise
    except BaseException as failure:
        heard.failure = failure
        await connection.disconnect(nowait=True)  # ends the read in read_replies
        raise


class Resyncs:
    """The on_resync calls launched after (re)subscribing: they run on beside the reading
    (so no message waits for them), are logged when they fail, and stop with the reader."""

    def __init__(self) -> None:
        self._running: set[asyncio.Future] = set()  # the loop keeps weak references only

    def launch(self, on_resync: Callable[[], Awaitable[None]]) -> None:
        try:
            task = asyncio.ensure_future(on_resync())
        except Exception:
            log.exception("resync after (re)subscribing failed")
            return
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("resync after (re)subscribing failed", exc_info=task.exception())

    def cancel(self) -> None:
        for task in list(self._running):
            task.cancel()
