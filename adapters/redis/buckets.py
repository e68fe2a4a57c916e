"""User buckets: where a user's keys live on a Redis Cluster (docs/design/redis-cluster.md, §2).

Users (and conversations) hash into a fixed number of buckets; every key of bucket i carries
the hash tag of bucket i, so all of a bucket's keys are in one slot and a script that touches
only one bucket's keys runs on one node. The tags are chosen so that bucket i's slot lies in
[i * 16384 / count, (i + 1) * 16384 / count): the buckets cover the slots evenly, and the
usual even split of slots over masters gives each master its share of buckets.

Both functions are part of the data layout: changing either moves every key of a deployment,
so the unit tests pin their values. On one Redis the tags are harmless (hash tags are only
key names there)."""
from __future__ import annotations

import zlib
from itertools import count as counting

from redis.crc import REDIS_CLUSTER_HASH_SLOTS as SLOTS
from redis.crc import key_slot

DEFAULT_BUCKETS = 256


def _tags(buckets: int) -> tuple[str, ...]:
    """For each bucket, the first tag "t<n>" (n = 0, 1, ...) whose slot is in the bucket's
    range (about buckets * ln(buckets) tries in all)."""
    found: list[str | None] = [None] * buckets
    missing = buckets
    for n in counting():
        tag = f"t{n}"
        bucket = key_slot(tag.encode()) * buckets // SLOTS
        if found[bucket] is None:
            found[bucket] = tag
            missing -= 1
            if not missing:
                return tuple(tag for tag in found if tag is not None)
    raise AssertionError("unreachable")


class Buckets:
    """The buckets of one deployment (COURIER_REDIS_BUCKETS, fixed once data exists)."""

    __slots__ = ("count", "_tags")

    def __init__(self, count: int = DEFAULT_BUCKETS):
        if not 1 <= count <= SLOTS:
            raise ValueError(f"the number of buckets must be 1 to {SLOTS}, not {count}")
        self.count = count
        self._tags = _tags(count)

    def of(self, owner: str) -> int:
        """The bucket of a user id (or a conversation key)."""
        return zlib.crc32(owner.encode()) % self.count

    def tag(self, bucket: int) -> str:
        """The hash tag, braces included, that every key of `bucket` starts with."""
        return "{" + self._tags[bucket] + "}"

    def tag_of(self, owner: str) -> str:
        return self.tag(self.of(owner))
