"""BatchedScript answers every waiting call whatever fails before its write
(adapters/redis/batched_script.py): a failure there must never leave a send waiting for
ever (issue 19 found a client without a connection pool - redis-py's cluster client -
whose attribute lookup raised outside the try)."""
from __future__ import annotations

import asyncio

import pytest

from adapters.redis.batched_script import BatchedScript


class _Script:
    sha = "0" * 40
    script = "return 1"


class NoPoolClient:
    """A client that registers scripts but has no connection_pool (as RedisCluster)."""

    def register_script(self, script: str) -> _Script:
        return _Script()

    @property
    def connection_pool(self):
        raise AttributeError("'RedisCluster' object has no attribute 'connection_pool'")


class RefusingPool:
    async def get_connection(self, *args):
        raise ConnectionRefusedError("no Redis here")


class RefusingClient(NoPoolClient):
    @property
    def connection_pool(self):
        return RefusingPool()


@pytest.mark.parametrize("client", [NoPoolClient(), RefusingClient()], ids=["no pool", "refused"])
@pytest.mark.gen_test(timeout=5)
async def test_every_waiting_call_is_answered_with_what_failed_before_the_write(client):
    script = BatchedScript(client, "return 1")  # type: ignore[arg-type]
    results = await asyncio.wait_for(
        asyncio.gather(*(script(0, []) for _ in range(3)), return_exceptions=True), 2)
    assert len(results) == 3 and all(isinstance(r, AttributeError | ConnectionRefusedError) for r in results)
