"""Where the keys of the adapters that keep a user's state, or a gateway-wide one, live
(presence, socket counts, cursor checkpoints...): the layout each gets from the container
(Settings.redis_topology), so no adapter asks which client it was given.

- One Redis (SINGLE): the key names every deployment has today, unchanged, so existing
  data keeps being read.
- A Redis Cluster (ClusterLayout): a script or a MULTI may only touch keys of one slot.
  A user's keys then start with the hash tag of the user's bucket (adapters/redis/buckets.py,
  docs/design/redis-cluster.md section 1), and a service whose scripts touch keys they do
  not declare (presence: every user's hash from one script) keeps all its keys under one
  tag of its own, `{<service>}`: one slot, so one master serves all of it - a single-slot
  service on a cluster, which is what keeps its scripts atomic.
- One bucket of a Redis Cluster (BucketLayout): such a service spread over the users'
  buckets, one instance per bucket (adapters/redis/bucketed_presence.py,
  bucketed_sockets.py): each instance's keys start with `<bucket tag>:<name>:`, so its
  scripts stay within the bucket's slot, and a user's state is in its bucket's instance."""
from __future__ import annotations

from adapters.redis.buckets import Buckets


class KeyLayout:
    """One Redis: no tags."""

    def service(self, name: str) -> str:
        """The prefix of every key of a single-slot service: `<name>:`."""
        return name + ":"

    def user(self, user_id: str) -> str:
        """What a key owned by `user_id` starts with (before its own name): nothing."""
        return ""


class ClusterLayout(KeyLayout):
    """A Redis Cluster: a single-slot service's keys start with `{<name>}:`, a user's with
    `{t}:`, the tag of the user's bucket."""

    def __init__(self, buckets: Buckets):
        self._buckets = buckets

    def service(self, name: str) -> str:
        return "{" + name + "}:"

    def user(self, user_id: str) -> str:
        return self._buckets.tag_of(user_id) + ":"


class BucketLayout(KeyLayout):
    """A Redis Cluster, for the instance of a service that serves one bucket: its keys
    start with `<the bucket's tag>:<name>:` (`{t7}:presence:`), all in the bucket's slot.
    Only the users of that bucket may be given to that instance."""

    def __init__(self, buckets: Buckets, bucket: int):
        self.bucket = bucket
        self._tag = buckets.tag(bucket)

    def service(self, name: str) -> str:
        return self._tag + ":" + name + ":"

    def user(self, user_id: str) -> str:
        return self._tag + ":"  # the bucket's users only: theirs is this tag


SINGLE = KeyLayout()
