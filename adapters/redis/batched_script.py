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
"""
from __future__ import annotations

import asyncio
import math

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.redis import resp

_Call = tuple[int, list[bytes], asyncio.Future]
_EVALSHA = resp.bulk("EVALSHA")


class BatchedScript:
    def __init__(self, client: aioredis.Redis, script: str):
        self._client = client
        self._script = client.register_script(script)  # for its SHA and text; sends nothing
        self._waiting: list[_Call] = []
        self._scheduled = False
        self._sending: set[asyncio.Task] = set()  # the event loop keeps only weak references

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
        try:
            # Inside the try: whatever fails before the write (a client without a pool, as
            # a cluster client is; a refused connection) answers every waiting call.
            pool = self._client.connection_pool
            connection = await pool.get_connection()
        except BaseException as error:
            _fail(calls, error)  # the callers raise it
            if not isinstance(error, Exception):
                raise
            return
        try:
            unloaded = await self._write_and_read(connection, calls)
            if unloaded:
                await connection.send_command("SCRIPT", "LOAD", self._script.script)
                await connection.read_response()
                unloaded = await self._write_and_read(connection, unloaded)
                _fail(unloaded, NoScriptError("the script is still not loaded"))
        except BaseException as error:
            _fail(calls, error)
            if not isinstance(error, ResponseError):
                # A reply may still be on its way (timeout, cancellation): never reuse this socket.
                await connection.disconnect()
            if not isinstance(error, Exception):
                raise
        finally:
            await pool.release(connection)

    async def _write_and_read(self, connection, calls: list[_Call]) -> list[_Call]:
        """Write every call, read every reply in order; answer each call's future.
        Returns the calls Redis answered NOSCRIPT (it ran none of them)."""
        sha = resp.bulk(self._script.sha)
        commands = [
            resp.command((_EVALSHA, sha, resp.bulk(numkeys), *arguments), 3 + len(arguments))
            for numkeys, arguments, _ in calls
        ]
        await connection.send_packed_command(b"".join(commands))
        unloaded = []
        try:
            # One deadline for the batch's replies (the connection's socket_timeout), not
            # a timer armed and cancelled for every reply.
            async with asyncio.timeout(connection.socket_timeout):
                for call in calls:
                    if not await self._read_reply(connection, call):
                        unloaded.append(call)
        except TimeoutError:
            raise RedisTimeoutError("timeout reading the replies of a deliver batch") from None
        return unloaded

    @staticmethod
    async def _read_reply(connection, call: _Call) -> bool:
        """Answer the call's future with its reply; False when the reply was NOSCRIPT."""
        future = call[2]
        try:
            reply = await connection.read_response(timeout=math.inf)
        except NoScriptError:
            return False
        except ResponseError as error:  # an error reply: this call's alone
            if not future.done():
                future.set_exception(error)
            return True
        if not future.done():
            future.set_result(reply)
        return True


def _fail(calls: list[_Call], error: BaseException) -> None:
    for _, _, future in calls:
        if future.done():
            continue
        if isinstance(error, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(error)
