"""Two gateways' send paths on the session's Redis Cluster (tests/services/redis_cluster.py),
each with a cluster client, idempotency keys and a RedisClusterInbox of its own: the fixture
`gateways` of the cluster inbox's and subscriber's integration tests."""
from __future__ import annotations

import pytest

from adapters.redis.buckets import Buckets
from adapters.redis.cluster_inbox import RedisClusterInbox
from adapters.redis.idempotency import RedisIdempotencyKeys
from domain.model import Message
from tests.services.redis_cluster import cluster_client

BUCKETS = Buckets(16)  # few buckets: several users share one, as in a deployment


class Gateway:
    """What one gateway process holds: its own cluster client, keys and inbox."""

    def __init__(self, io_loop, url: str):
        self.client = cluster_client(io_loop, url)
        self.keys = RedisIdempotencyKeys(self.client)
        self.inbox = RedisClusterInbox(self.client, BUCKETS, self.keys, exact_trim=True)

    async def send(self, message: Message, recipients: list[str]) -> Message:
        """As Dispatcher.dispatch: take the key (or get the original), then deliver."""
        if message.client_msg_id is not None:
            answer = await self.keys.remember(message.from_user_id, message.client_msg_id, message)
            if answer is not None:
                return answer.message
        return (await self.inbox.deliver(message, recipients)).message


@pytest.fixture
def gateways(io_loop, redis_cluster):
    made = [Gateway(io_loop, redis_cluster.url), Gateway(io_loop, redis_cluster.url)]
    yield made
    for gateway in made:
        io_loop.run_sync(gateway.client.aclose)
