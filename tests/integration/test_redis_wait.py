"""COURIER_REDIS_WAIT_REPLICAS (docs/design/redis-cluster.md, section 7): a send's writes are
followed by WAIT on the connection that made them, and the send is answered only once that
many replicas acknowledged them. Fewer within the timeout: ServiceUnavailable (503), though
the master ran the scripts - a retry with the same client_msg_id then gets the original,
never a second copy. On the local cluster (one replica per master) and on one Redis (none)."""
from __future__ import annotations

import dataclasses
import uuid

import pytest

from adapters.redis.buckets import Buckets
from adapters.redis.cluster_inbox import RedisClusterInbox
from adapters.redis.idempotency import RedisIdempotencyKeys
from adapters.redis.inbox import RedisInbox
from domain.errors import ServiceUnavailable
from domain.model import PRIVATE, Message

pytestmark = pytest.mark.redis


def private(sender: str, to: str, content: str, **kw) -> Message:
    return Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id=sender, to_user_id=to, content=content,
                   created_at=1_700_000_000, **kw)


@pytest.mark.gen_test(timeout=30)
async def test_a_cluster_send_waits_for_its_replica_and_answers_503_when_too_few_acknowledge(redis_cluster_client):
    client = redis_cluster_client
    await client.initialize()
    keys = RedisIdempotencyKeys(client)
    waiting = RedisClusterInbox(client, Buckets(), keys, wait_replicas=1)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    accepted = await waiting.deliver(private(a, b, "replicated"), [b, a])
    assert accepted.message.seq == 1
    assert [d.event.content for d in await waiting.read(b, None, 10)] == ["replicated"]
    # Two replicas asked of masters that have one: not acknowledged in time.
    demanding = RedisClusterInbox(client, Buckets(), keys, wait_replicas=2, wait_timeout_ms=50)
    first = private(a, b, "unconfirmed", client_msg_id="w-1")
    assert await keys.remember(a, "w-1", first) is None
    with pytest.raises(ServiceUnavailable):
        await demanding.deliver(first, [b, a])
    await keys.forget(a, "w-1", first)  # as the Dispatcher does after a failed delivery
    # The client retries: the commit ran, so the retry gets it, once.
    retry = dataclasses.replace(first, id=str(uuid.uuid4()))
    assert await keys.remember(a, "w-1", retry) is None
    again = await waiting.deliver(retry, [b, a])
    assert (again.message.id, again.message.seq) == (first.id, 2)
    assert [d.event.content for d in await waiting.read(b, None, 10)] == ["replicated", "unconfirmed"]


@pytest.mark.gen_test(timeout=30)
async def test_on_one_redis_without_a_replica_a_waiting_send_answers_503(redis_client):
    await redis_client.set("seq:complete", "1")
    inbox = RedisInbox(redis_client, wait_replicas=1, wait_timeout_ms=20)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    with pytest.raises(ServiceUnavailable):
        await inbox.deliver(private(a, b, "nobody to acknowledge"), [b, a])
    assert await RedisInbox(redis_client).deliver(private(a, b, "no wait"), [b, a])
