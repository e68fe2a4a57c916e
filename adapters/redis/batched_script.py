"""A Lua script called by many coroutines at once, each call sent at most once,
the calls of one turn of the event loop written together.

Under load many sends arrive in one turn of the loop. Each used to check a
connection out of the pool (with its health check, a system call), write its
EVALSHA, wait for the reply (one more wake-up) and give the connection back.
Here the calls gathered during one turn go out in one write on one connection
and their replies are read in order: one checkout, one write and about one
wake-up for the lot. Nothing waits longer than the current turn of the loop.

At most once: a redis-py client with retries (Redis(host, port) retries by
default) writes a command again when its reply timed out or its connection
broke; for a script that appends and publishes a message that would be done
twice. Here a command, once written, is never written again: a failure after
the write is final for every call still waiting for its reply, whether or not
Redis ran it. The one exception is NOSCRIPT (Redis restarted or flushed its
scripts): Redis ran nothing, so those calls are sent again after SCRIPT LOAD.
Getting the connection (connect, health check) may retry: nothing was sent yet.

On one Redis the connection of a batch that went well is kept for the next batch
instead of going back to the pool: redis-py's checkout and release (its lock and
condition, health check, event dispatch and observability hooks) cost more than the
rest of a batch of one call. A kept connection is checked before it is written to
(closed, or data nobody asked for: then it goes back to the pool, whose checkout
reconnects it); a batch that failed gives its connection back to the pool. The kept
connection stays in the pool's in-use set, so closing the client closes it too.

On a Redis Cluster (redis-py's RedisCluster, which has no single connection pool) the
calls of a turn are grouped by the node that serves their first key's slot, and each
group goes out as above on a connection of that node. A call answered MOVED or ASK (its
slot has moved: Redis ran nothing) is sent once more after the client has read the
cluster's slots again; answered so a second time, it fails (the caller answers 503).
"""
from __future__ import annotations

import asyncio
import math
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AskError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.redis import resp
from adapters.redis.support import NotReplicated

_Call = tuple[int, list[bytes], asyncio.Future]
_EVALSHA = resp.bulk("EVALSHA")


class BatchedScript:
    """`wait_replicas`: after each batch, WAIT for that many replicas to acknowledge its
    writes (at most `wait_timeout_ms`), on the connection that wrote them (WAIT covers the
    writes of its own connection), before any call of the batch is answered
    (COURIER_REDIS_WAIT_REPLICAS, docs/design/redis-cluster.md section 7)."""

    def __init__(self, client: aioredis.Redis | RedisCluster, script: str, *, wait_replicas: int = 0,
                 wait_timeout_ms: int = 1000):
        self._client = client
        self._wait = resp.command((resp.bulk("WAIT"), resp.bulk(wait_replicas), resp.bulk(wait_timeout_ms)), 3) \
            if wait_replicas > 0 else b""
        self._wait_replicas = wait_replicas
        self._script = client.register_script(script)  # for its SHA and text; sends nothing
        self._waiting: list[_Call] = []
        self._scheduled = False
        self._sending: set[asyncio.Task] = set()  # the event loop keeps only weak references
        self._kept: Any = None  # one Redis: the last clean batch's connection, not yet back in the pool

    async def __call__(self, numkeys: int, arguments: list[bytes]):
        """EVALSHA the script with `numkeys` keys; `arguments` are the keys, then the
        other arguments, each already packed with resp.bulk()."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((numkeys, arguments, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._send_waiting)
        return await future

    def _send_waiting(self) -> None:
        self._scheduled = False
        calls, self._waiting = self._waiting, []
        task = asyncio.ensure_future(self._send(calls))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, calls: list[_Call]) -> None:
        if isinstance(self._client, RedisCluster):
            await self._send_by_node(self._client, calls, moved_again=False)
            return
        connection, self._kept = self._kept, None
        try:
            # Inside the try: whatever fails before the write (a refused connection, a
            # client without a pool) answers every waiting call.
            pool = self._client.connection_pool
            if connection is not None and not await _ready_to_write(connection):
                connection, stale = None, connection
                await pool.release(stale)
            if connection is None:
                connection = await pool.get_connection()
        except BaseException as error:
            _fail(calls, error)  # the callers raise it
            if not isinstance(error, Exception):
                raise
            return
        clean = False
        try:
            clean = await self._send_on(connection, calls)
        finally:
            if clean and self._kept is None:
                self._kept = connection
            else:
                await pool.release(connection)

    async def _send_by_node(self, client: RedisCluster, calls: list[_Call], moved_again: bool) -> None:
        try:
            await client.initialize()  # nothing once done; again after a failure asked for it
            by_node: dict[str, tuple[Any, list[_Call]]] = {}
            for call in calls:
                node = client.get_node_from_key(resp.unbulk(call[1][0]))
                by_node.setdefault(node.name, (node, []))[1].append(call)
        except BaseException as error:
            _fail(calls, error)
            if not isinstance(error, Exception):
                raise
            return
        # A MOVED or ASK reply the first time (Redis ran nothing) is kept aside, not answered.
        moved: list[_Call] | None = None if moved_again else []
        await asyncio.gather(*(self._send_to_node(node, node_calls, moved) for node, node_calls in by_node.values()))
        moved = [call for call in moved or () if not call[2].done()]  # (not one answered meanwhile)
        if moved:
            try:
                await client.nodes_manager.initialize()  # the slots again, then once more
            except BaseException as error:
                _fail(moved, error)
                if not isinstance(error, Exception):
                    raise
                return
            await self._send_by_node(client, moved, moved_again=True)

    async def _send_to_node(self, node: Any, calls: list[_Call], moved: list[_Call] | None) -> None:
        try:
            connection = node.acquire_connection()
        except BaseException as error:
            _fail(calls, error)
            if not isinstance(error, Exception):
                raise
            return
        try:
            await self._send_on(connection, calls, moved)
        finally:
            node.release(connection)

    async def _send_on(self, connection: Any, calls: list[_Call], moved: list[_Call] | None = None) -> bool:
        """True when the connection is left clean: every reply read, nothing failed."""
        try:
            unloaded = await self._write_and_read(connection, calls, moved)
            if unloaded:
                await connection.send_command("SCRIPT", "LOAD", self._script.script)
                await connection.read_response()
                unloaded = await self._write_and_read(connection, unloaded, moved)
                _fail(unloaded, NoScriptError("the script is still not loaded"))
        except BaseException as error:
            _fail(calls, error)
            if not isinstance(error, ResponseError):
                # A reply may still be on its way (timeout, cancellation): never reuse this socket.
                await connection.disconnect()
            if not isinstance(error, Exception):
                raise
            return False
        return True

    async def _write_and_read(self, connection: Any, calls: list[_Call], moved: list[_Call] | None) -> list[_Call]:
        """Write every call, read every reply in order; answer each call's future.
        Returns the calls Redis answered NOSCRIPT (it ran none of them); those answered
        MOVED or ASK go to `moved` when it is a list (else they fail with that error)."""
        sha = resp.bulk(self._script.sha)
        commands = [
            resp.command((_EVALSHA, sha, resp.bulk(numkeys), *arguments), 3 + len(arguments))
            for numkeys, arguments, _ in calls
        ]
        await connection.send_packed_command(b"".join(commands) + self._wait)
        unloaded = []
        replies: list[tuple[asyncio.Future, Any]] = []  # answered once WAIT said so, if it is asked
        try:
            # One deadline for the batch's replies (the connection's socket_timeout), not
            # a timer armed and cancelled for every reply.
            async with asyncio.timeout(connection.socket_timeout):
                held = replies if self._wait else None
                for call in calls:
                    if not await self._read_reply(connection, call, moved, held):
                        unloaded.append(call)
                if self._wait:
                    acknowledged = await connection.read_response(timeout=math.inf)
                    if int(acknowledged) < self._wait_replicas:
                        error = NotReplicated(f"{acknowledged} of {self._wait_replicas} replicas acknowledged")
                        replies = [(future, error) for future, _ in replies]
        except TimeoutError:
            raise RedisTimeoutError("timeout reading the replies of a deliver batch") from None
        for future, reply in replies:
            if not future.done():
                if isinstance(reply, BaseException):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        return unloaded

    @staticmethod
    async def _read_reply(connection: Any, call: _Call, moved: list[_Call] | None,
                          held: list[tuple[asyncio.Future, Any]] | None) -> bool:
        """Answer the call's future with its reply, or keep it in `held` (until WAIT's
        answer); False when the reply was NOSCRIPT."""
        future = call[2]
        try:
            reply = await connection.read_response(timeout=math.inf)
        except NoScriptError:
            return False
        except AskError as error:  # includes MovedError: the slot is served elsewhere
            if moved is not None:
                moved.append(call)
            elif not future.done():
                future.set_exception(error)
            return True
        except ResponseError as error:  # an error reply: this call's alone
            if not future.done():
                future.set_exception(error)
            return True
        if held is not None:
            held.append((future, reply))
        elif not future.done():
            future.set_result(reply)
        return True


async def _ready_to_write(connection: Any) -> bool:
    """Connected, and nothing unread on it (a reply nobody waits for, or the server's close)."""
    try:
        return connection.is_connected and not await connection.can_read()
    except Exception:  # closed by the server, a reset: the pool's checkout reconnects it
        return False


def _fail(calls: list[_Call], error: BaseException) -> None:
    for _, _, future in calls:
        if future.done():
            continue
        if isinstance(error, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(error)
