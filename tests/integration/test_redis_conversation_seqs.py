"""RedisConversationSeqs against a real Redis: a conversation's last seq from its counter,
and a large group's from its state once the switch left 'L' in the old counter (a read
marker in a large group was a 500 before: int('L'))."""
from __future__ import annotations

import uuid

import pytest

from adapters.redis.buckets import Buckets
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.conversation_seqs import RedisConversationSeqs

pytestmark = pytest.mark.redis


@pytest.mark.gen_test(timeout=20)
async def test_a_counter_and_a_switched_groups_state(redis_client):
    seqs = RedisConversationSeqs(redis_client)
    small, large, lost = (str(uuid.uuid4()) for _ in range(3))
    await redis_client.set(f"seq:g:{small}", 7)
    await redis_client.set(f"seq:g:{large}", "L")
    await redis_client.hset(f"lg:{{{large}}}", "seq", 12)
    await redis_client.set(f"seq:g:{lost}", "L")  # switched, its state gone: the store answers
    assert [await seqs.last_seq(f"g:{g}") for g in (small, large, lost)] == [7, 12, None]
    assert await seqs.last_seq(f"g:{uuid.uuid4()}") is None


@pytest.mark.gen_test(timeout=20)
async def test_a_counter_and_a_switched_groups_state_on_the_cluster(redis_cluster_client):
    # The cluster's counters are commit.lua's, in each conversation's bucket.
    keys = ClusterKeys(Buckets())
    seqs = RedisConversationSeqs(redis_cluster_client, keys)
    small, large, lost, private = (str(uuid.uuid4()) for _ in range(4))
    await redis_cluster_client.set(keys.seq(f"g:{small}"), 7)
    await redis_cluster_client.set(keys.seq(f"g:{large}"), "L")
    await redis_cluster_client.hset(f"lg:{{{large}}}", "seq", 12)
    await redis_cluster_client.set(keys.seq(f"g:{lost}"), "L")
    await redis_cluster_client.set(keys.seq(f"p:{private}"), 3)
    await redis_cluster_client.set(f"seq:g:{small}", 99)  # one Redis's name: not the cluster's counter
    assert [await seqs.last_seq(f"g:{g}") for g in (small, large, lost)] == [7, 12, None]
    assert await seqs.last_seq(f"p:{private}") == 3
    assert await seqs.last_seq(f"g:{uuid.uuid4()}") is None
