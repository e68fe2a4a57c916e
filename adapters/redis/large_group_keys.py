"""Where the large groups' keys outside a group's own slot live (docs/design/large-groups.md,
section 2.1; docs/design/redis-cluster.md, section 1):
- a user's large groups (a set of group ids): `lgm:<U>` on one Redis, in the user's bucket
  on a cluster (`{t}:lgm:<U>`), as every key a user owns;
- a stream number's group: one hash `lg:streams` (sno -> group id) on one Redis; on a
  cluster one hash per bucket of the number (`{t}:lg-streams`), so no key is global and
  the resolves of cursors (which name stream numbers) spread over the masters."""
from __future__ import annotations

from collections.abc import Iterable

from adapters.redis.cluster_keys import ClusterKeys

LARGE_GROUPS_OF = "lgm:{}"
STREAMS = "lg:streams"  # sno -> group id


class LargeGroupKeys:
    """One Redis's names (`cluster` None), or a cluster's by bucket."""

    __slots__ = ("_cluster",)

    def __init__(self, cluster: ClusterKeys | None = None):
        self._cluster = cluster

    def groups_of(self, user_id: str) -> str:
        if self._cluster is None:
            return LARGE_GROUPS_OF.format(user_id)
        return self._cluster.buckets.tag_of(user_id) + ":lgm:" + user_id

    def streams(self, stream: int) -> str:
        """The hash that names the group of this stream number."""
        if self._cluster is None:
            return STREAMS
        return self._cluster.buckets.tag_of(str(stream)) + ":lg-streams"

    def every_streams(self) -> list[str]:
        """Every such hash (the worker lists the large groups from them)."""
        if self._cluster is None:
            return [STREAMS]
        return [self._cluster.buckets.tag(bucket) + ":lg-streams" for bucket in range(self._cluster.buckets.count)]

    def by_hash(self, streams: Iterable[int]) -> dict[str, list[int]]:
        """Stream numbers grouped by the hash that names their groups."""
        grouped: dict[str, list[int]] = {}
        for stream in streams:
            grouped.setdefault(self.streams(stream), []).append(stream)
        return grouped
