"""BatchedScript keeps the connection of a clean batch for the next one, on one Redis
(adapters/redis/batched_script.py): one checkout from the pool for a run of batches, and
a kept connection the server has closed meanwhile is never written to (the batch goes
through the pool's checkout, which reconnects), so that no send fails for it."""
from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from adapters.redis import resp
from adapters.redis.batched_script import BatchedScript
from tests.services.waiting import until

pytestmark = pytest.mark.redis

ECHO = "return ARGV[1]"


class CountingCheckouts:
    """Counts the pool's checkouts and releases (wraps the client's pool in place)."""

    def __init__(self, pool):
        self.checkouts = 0
        self.releases = 0
        get_connection, release = pool.get_connection, pool.release

        async def counted_get_connection(*args, **kwargs):
            self.checkouts += 1
            return await get_connection(*args, **kwargs)

        async def counted_release(connection):
            self.releases += 1
            await release(connection)

        pool.get_connection, pool.release = counted_get_connection, counted_release


async def echo(script: BatchedScript, value: str):
    return await script(0, [resp.bulk(value)])


@pytest.mark.gen_test(timeout=10)
async def test_batches_one_after_another_check_one_connection_out(redis_client):
    script = BatchedScript(redis_client, ECHO)
    counts = CountingCheckouts(redis_client.connection_pool)

    assert [await echo(script, f"v{i}") for i in range(5)] == [f"v{i}".encode() for i in range(5)]

    assert counts.checkouts == 1 and counts.releases == 0


@pytest.mark.gen_test(timeout=10)
async def test_a_kept_connection_the_server_closed_is_not_written_to(redis_client):
    script = BatchedScript(redis_client, ECHO)
    assert await echo(script, "before") == b"before"
    kept = script._kept
    assert kept is not None
    await redis_client.client_kill_filter(_id=await _client_id(kept))
    await until(lambda: kept._reader.at_eof())  # the close has reached our side

    counts = CountingCheckouts(redis_client.connection_pool)
    assert await echo(script, "after") == b"after"  # not a ConnectionError
    assert counts.checkouts == 1 and counts.releases == 1  # the closed one went back to the pool
    assert script._kept is not None and script._kept.is_connected


@pytest.mark.gen_test(timeout=10)
async def test_a_failed_batch_gives_its_connection_back(redis_client):
    script = BatchedScript(redis_client, "return redis.call('INCR', KEYS[1])")
    await redis_client.set("not-a-number", "x")
    counts = CountingCheckouts(redis_client.connection_pool)

    with pytest.raises(Exception, match="not an integer"):
        await script(1, [resp.bulk("not-a-number")])
    assert await script(1, [resp.bulk("counter")]) == 1  # an error reply: the connection is clean, kept
    assert counts.checkouts == 1 and counts.releases == 0

    script._kept._writer.transport.abort()  # the next write or read fails
    await until(lambda: script._kept._reader.at_eof())
    script._kept, broken = None, script._kept
    await _broken_batch(script, broken)
    assert counts.releases == 1 and script._kept is None  # not kept after a failure


async def _broken_batch(script: BatchedScript, connection) -> None:
    """A batch whose connection breaks once written (as if the server died mid-batch)."""
    calls = [(1, [resp.bulk("counter")], asyncio.get_running_loop().create_future())]
    script._kept = connection
    connection.can_read = _nothing_to_read  # passes the check: the break comes after the write
    await script._send(calls)
    with pytest.raises(redis.exceptions.ConnectionError):
        calls[0][2].result()


async def _nothing_to_read() -> bool:
    return False


async def _client_id(connection) -> int:
    await connection.send_command("CLIENT", "ID")
    return int(await connection.read_response())
