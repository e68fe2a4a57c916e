"""The names of the send path's keys and channels on a Redis Cluster (docs/design/redis-cluster.md,
sections 1 and 3): each carries the hash tag of its owner's bucket (adapters/redis/buckets.py),
so every script touches the keys of one bucket, one slot, and runs on one node.

- A user's log, `{t}:log:<user>`, is in the user's bucket, with the bucket's cursor generator,
  its gateways' registrations and its notification channels (SPUBLISH `n:{t}:<gateway>`): one
  script per bucket appends to the logs of its users and publishes, in cursor order.
- A conversation's seq counter, its persistence records, its sends still being appended
  (pending) and the record of each send by client_msg_id (sent) are in the conversation's
  bucket: the commit of a send is one script there.

One Redis keeps the names of adapters/redis/inbox.py: it runs the whole send as one script
(deliver.lua), which a cluster cannot, and its deployments keep their data."""
from __future__ import annotations

from adapters.redis.buckets import Buckets


class ClusterKeys:
    __slots__ = ("buckets",)

    def __init__(self, buckets: Buckets):
        self.buckets = buckets

    # -- a bucket's own ----------------------------------------------------------------------

    def bucket_of(self, owner: str) -> int:
        return self.buckets.of(owner)

    def generator(self, bucket: int) -> str:
        """The last log entry id handed out in the bucket (deliver.lua's stream:last-id)."""
        return self.buckets.tag(bucket) + ":last-id"

    def channel_prefix(self, bucket: int) -> str:
        """The bucket's notification channels, one per gateway: the prefix, then the gateway's
        id (sharded pub/sub: they live in the bucket's slot; bucket_gateways.lua)."""
        return "n:" + self.buckets.tag(bucket) + ":"

    def channel(self, bucket: int, gateway_id: str) -> str:
        return self.channel_prefix(bucket) + gateway_id

    def audience(self, bucket: int) -> str:
        """Who hears whom in the bucket: user id -> the gateways holding its sockets."""
        return self.buckets.tag(bucket) + ":at"

    def leases(self, bucket: int) -> str:
        """The leases of the gateways registered in the bucket: gateway id -> lease end (ms)."""
        return self.buckets.tag(bucket) + ":leases"

    def persist(self, bucket: int) -> str:
        """What the persister has not stored yet, of the conversations of the bucket."""
        return self.buckets.tag(bucket) + ":persist"

    def seq_complete(self, bucket: int) -> str:
        """Every conversation of the bucket with stored messages has a counter (seq:complete)."""
        return self.buckets.tag(bucket) + ":seq-complete"

    def seq_rebuilding(self, bucket: int, rebuild_id: str) -> str:
        """A rebuild of the counters under way (adapters/redis/seq_counters.py), one key per
        bucket: lost with the bucket's counters, it keeps the bucket's marker unset."""
        return self.buckets.tag(bucket) + ":seq-rebuilding:" + rebuild_id

    def outbox(self, bucket: int) -> str:
        """The sends of the bucket's conversations whose appends are not all made: a sorted
        set of '<conversation> <seq>' by the time of their commit (the relay's work list)."""
        return self.buckets.tag(bucket) + ":outbox"

    def appended(self, bucket: int, event_id: str) -> str:
        """An event was appended to the logs of the bucket (kept with the cursors it got)."""
        return self.buckets.tag(bucket) + ":appended:" + event_id

    # -- a user's ----------------------------------------------------------------------------

    def log(self, user_id: str) -> str:
        return self.buckets.tag_of(user_id) + ":log:" + user_id

    # -- a conversation's ----------------------------------------------------------------------

    def seq(self, conversation: str) -> str:
        return self.buckets.tag_of(conversation) + ":seq:" + conversation

    def seq_closed(self, conversation: str) -> str:
        """A large group's last small seq, kept when its counter was switched off ('L': the
        switch's first step, adapters/redis/cluster_switch.py)."""
        return self.buckets.tag_of(conversation) + ":seq-closed:" + conversation

    def pending(self, conversation: str) -> str:
        """The conversation's sends still being appended: seq -> what to append (a hash)."""
        return self.buckets.tag_of(conversation) + ":pending:" + conversation

    def sent(self, conversation: str, sender_id: str, digest: str) -> str:
        """A send by its client_msg_id's digest, in the conversation's slot (as a large
        group's lg:{G}:sent:...): a retry that took the sender's idempotency key after the
        first attempt died between its commit and its confirm finds the original here."""
        return self.buckets.tag_of(conversation) + ":sent:" + sender_id + ":" + digest
