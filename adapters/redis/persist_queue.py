"""stream:persist read through a consumer group: the queue between an accepted
message and its row in the database. At least once: an entry is pending until
its persister acks it after the commit; entries a dead persister left pending
are claimed by another after `claim_idle_ms`."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from adapters.redis.inbox import PERSIST_STREAM
from adapters.redis.support import text, unavailable
from application.ports import PersistQueue
from domain.model import Message, cursor_position

log = logging.getLogger("courier.redis.persist_queue")

# A consumer is forgotten only with nothing pending, in one atomic step: an entry handed
# to it meanwhile would otherwise lose its pending record and never be handed out again.
_LEAVE = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) >= 0 and 1 or 0
"""
ORDER_SEQ_BITS = 20  # an order fits a signed 64-bit integer until the year 2248
ORDER_SEQ_MASK = (1 << ORDER_SEQ_BITS) - 1


class RedisPersistQueue(PersistQueue):
    """`delete_acked` XDELs entries once acked, so the stream holds exactly the
    backlog; turn it off if another consumer group also reads the stream.
    Entries that cannot be decoded, or that the store refuses, go to
    `dead_stream` (default: stream:persist:dead) with the reason.

    The client's socket_timeout must be longer than the block_ms given to take()."""

    def __init__(
        self,
        client: aioredis.Redis,
        group: str = "persisters",
        stream: str = PERSIST_STREAM,
        claim_idle_ms: int = 30_000,
        *,
        dead_stream: str | None = None,
        delete_acked: bool = True,
    ):
        self._client = client
        self._group = group
        self._stream = stream
        self._claim_idle_ms = int(claim_idle_ms)
        self._dead_stream = dead_stream or stream + ":dead"
        self._delete_acked = delete_acked
        self._group_ready = False
        self._leave = client.register_script(_LEAVE)
        self._recovered: set[str] = set()  # consumers whose own old pending entries were read
        self._claim_start = "0-0"  # where the XAUTOCLAIM scan of the pending list resumes
        self._next_claim_at = 0.0

    async def take(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, Message]]:
        with unavailable("persist queue"):
            try:
                await self._ensure_group()
                entries = await self._take(consumer, count, block_ms)
            except ResponseError as e:
                if not str(e).startswith("NOGROUP"):
                    raise
                # Redis lost its data set (restarted without persistence): make the group again.
                self._group_ready = False
                return []
            except BaseException:
                # The reply may have been lost after Redis moved entries to this consumer's
                # pending list: the next take reads that list first (see _once).
                self._recovered.discard(consumer)
                raise
            return await self._decode(entries)

    def acceptance_order(self, entry_id: str) -> int:
        """deliver.lua appends to stream:persist in the same atomic step as the inbox
        entries, so the entry ids (<ms>-<n>, increasing) are the order of acceptance;
        packed into one integer, n in the low ORDER_SEQ_BITS (Redis appends far fewer
        than a million entries within one millisecond)."""
        ms, n = cursor_position(entry_id)
        return (ms << ORDER_SEQ_BITS) | min(n, ORDER_SEQ_MASK)

    async def ack(self, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        with unavailable("persist queue"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.xack(self._stream, self._group, *entry_ids)
                if self._delete_acked:
                    pipe.xdel(self._stream, *entry_ids)
                await pipe.execute()

    async def reject(self, entry_ids: Sequence[str], reason: str) -> None:
        with unavailable("persist queue"):
            for entry_id in entry_ids:
                found = await self._client.xrange(self._stream, entry_id, entry_id)
                await self._move_aside(entry_id, found[0][1] if found else {}, reason)

    async def backlog(self) -> int:
        with unavailable("persist queue"):
            await self._ensure_group()
            groups = await self._client.xinfo_groups(self._stream)
            for info in groups:
                info = {text(k): v for k, v in info.items()}
                if text(info["name"]) == self._group:
                    lag = info.get("lag")
                    if lag is None:  # Redis cannot always tell (deletions ahead of the group)
                        return await self._client.xlen(self._stream)
                    return int(info["pending"]) + int(lag)
            return 0

    async def leave(self, consumer: str) -> bool:
        """Consumers are named per process (hostname-pid), so without this the group
        would list every persister that ever ran."""
        with unavailable("persist queue"):
            try:
                return bool(await self._leave(keys=[self._stream], args=[self._group, consumer]))
            except ResponseError as e:
                if str(e).startswith("NOGROUP"):
                    return True  # no group (Redis lost its data): nothing to forget
                raise

    # --- internals ----------------------------------------------------------
    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From id 0, so entries appended before the first persister ever started count too.
            await self._client.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as e:
            if not str(e).startswith("BUSYGROUP"):
                raise
        self._group_ready = True

    async def _take(self, consumer: str, count: int, block_ms: int) -> list:
        if consumer not in self._recovered:
            # A persister restarted under the same name first finishes what it had taken.
            reply = await self._once("XREADGROUP", "GROUP", self._group, consumer, "COUNT", count,
                                     "STREAMS", self._stream, "0")
            entries = _entries(reply)
            if entries:
                return entries
            self._recovered.add(consumer)
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_claim_at:
            next_start, claimed, *_ = await self._once(
                "XAUTOCLAIM", self._stream, self._group, consumer, self._claim_idle_ms, self._claim_start,
                "COUNT", count,
            )
            self._claim_start = text(next_start)
            if self._claim_start == "0-0":
                # The whole pending list was scanned: look again when entries could have gone idle.
                self._next_claim_at = loop.time() + self._claim_idle_ms / 2000
            if claimed:
                log.warning("claimed %d entries left pending by another persister", len(claimed))
                return claimed
        # Always with COUNT: a blocking XREADGROUP without it may move a whole backlog to pending.
        block = ("BLOCK", block_ms) if block_ms > 0 else ()
        reply = await self._once("XREADGROUP", "GROUP", self._group, consumer, "COUNT", count, *block,
                                 "STREAMS", self._stream, ">")
        return _entries(reply)

    async def _once(self, *command):
        """Send a command that moves entries to this consumer's pending list exactly once,
        on a connection of the pool, and parse its reply as the client would. redis-py's
        retries would send it again when its reply is lost (a reset, Redis restarting):
        the entries the first one moved would then wait claim_idle_ms for a claim. Here
        the error reaches take(), and the next take reads the pending list first."""
        if isinstance(self._client, RedisCluster):
            return await self._once_on_node(self._client.get_node_from_key(self._stream), command)
        pool = self._client.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_command(*command)
            return await self._client.parse_response(connection, command[0])
        except BaseException:
            await connection.disconnect()  # a reply may still be on its way: never reuse it
            raise
        finally:
            await pool.release(connection)

    @staticmethod
    async def _once_on_node(node, command):
        """_once on a Redis Cluster: on a connection of the node that serves the stream (should
        its slot have moved, the MOVED error reaches take() as any failure does)."""
        await node.disconnect_if_needed(connection := node.acquire_connection())
        try:
            await connection.send_command(*command)
            return await node.parse_response(connection, command[0])
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            node.release(connection)

    async def _decode(self, entries: list) -> list[tuple[str, Message]]:
        decoded: list[tuple[str, Message]] = []
        for raw_id, fields in entries:
            entry_id = text(raw_id)
            if not fields:  # deleted while pending: nothing left to store
                await self.ack([entry_id])
                continue
            try:
                values = {text(k): v for k, v in fields.items()}
                decoded.append((entry_id, Message.from_record(orjson.loads(values["m"]))))
            except Exception as e:  # noqa: BLE001 - a poison entry must not block the queue
                log.error("moved undecodable entry %s aside to %s: %r", entry_id, self._dead_stream, e)
                await self._move_aside(entry_id, fields, f"undecodable: {e!r}")
        return decoded

    async def _move_aside(self, entry_id: str, fields: dict, reason: str) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xadd(self._dead_stream, {**fields, "entry_id": entry_id, "reason": reason[:1000]})
            pipe.xack(self._stream, self._group, entry_id)
            pipe.xdel(self._stream, entry_id)
            await pipe.execute()


def _entries(reply) -> list:
    """XREADGROUP answers {stream: [entries]} (RESP3) or [[stream, [entries]]] (RESP2)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [entry for entries in reply.values() for entry in (entries[0] if _nested(entries) else entries)]
    return [entry for _, entries in reply for entry in entries]


def _nested(entries) -> bool:
    # redis-py's RESP3 reply is {stream: [[entries]]}
    return bool(entries) and isinstance(entries[0], list) and entries[0] and isinstance(entries[0][0], list | tuple)
