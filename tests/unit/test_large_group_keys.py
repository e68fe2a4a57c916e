"""Where a user's large groups and the stream numbers' groups are kept (adapters/redis/
large_group_keys.py): one Redis's names unchanged; on a cluster, no global key - a user's
list in the user's bucket slot, the stream numbers' hashes one per bucket."""
from __future__ import annotations

import uuid

from redis.crc import key_slot

from adapters.redis.buckets import Buckets
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.large_group_keys import LargeGroupKeys


def test_one_redis_keeps_its_names():
    names = LargeGroupKeys()
    assert names.groups_of("u1") == "lgm:u1"
    assert names.streams(7) == names.streams(8) == "lg:streams"
    assert names.every_streams() == ["lg:streams"]
    assert names.by_hash([3, 1, 2]) == {"lg:streams": [3, 1, 2]}


def test_on_a_cluster_a_users_list_is_in_its_bucket_and_the_stream_numbers_spread():
    buckets = Buckets(16)
    names = LargeGroupKeys(ClusterKeys(buckets))
    for _ in range(50):
        user = str(uuid.uuid4())
        assert key_slot(names.groups_of(user).encode()) == key_slot(buckets.tag_of(user).encode())
    hashes = {names.streams(stream) for stream in range(1, 500)}
    assert hashes == set(names.every_streams()) and len(hashes) == buckets.count
    grouped = names.by_hash(range(1, 50))
    assert sorted(stream for streams in grouped.values() for stream in streams) == list(range(1, 50))
    assert all(names.streams(stream) == key for key, streams in grouped.items() for stream in streams)
