"""What every Redis adapter shares: mapping driver failures to the domain's
ServiceUnavailable, and reading replies whatever the client's decode setting."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redis import exceptions as rx
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.maint_notifications import MaintNotificationsConfig

from domain.errors import ServiceUnavailable


# Failures that say "Redis cannot serve this right now", not "this request is wrong":
# the connection (refused, reset, timed out, still loading its data set), a replica
# that became read-only in a failover, a full memory, a cluster that is down.
class NotReplicated(rx.RedisError):
    """WAIT timed out before enough replicas acknowledged a write (BatchedScript's
    wait_replicas): it ran on the master, which may yet lose it in a failover. Answered 503:
    a retry with the same client_msg_id finds the send if it survived, and makes it if not."""


_UNAVAILABLE = (
    rx.ConnectionError,  # includes BusyLoadingError, AuthenticationError, MaxConnectionsError
    rx.TimeoutError,
    rx.ReadOnlyError,
    rx.OutOfMemoryError,
    rx.TryAgainError,
    # CLUSTERDOWN and MASTERDOWN (a failover under way), and the cluster client's own
    # "TTL exhausted" after as many redirections as it allows: the slot has no node yet.
    rx.ClusterError,  # includes ClusterDownError, MasterDownError
    # A key's slot is served elsewhere (a plain client on a cluster node, or a slot on its
    # way to another node): nothing was done, and a retry may find it.
    rx.AskError,  # includes MovedError
    rx.SlotNotCoveredError,
    NotReplicated,
)


# Every pool of Courier's is made with this. redis-py 8 turns "maintenance notifications"
# (a Redis Enterprise / Cloud feature) on in "auto" mode for RESP3 pools, and while it is
# on, the pool skips its check that a pooled connection is still open before handing it
# out (ensure_connection tests `not maint_notifications_enabled()`, which is the string
# "auto"): after a Redis restart the first command went out on a connection the server
# had closed, and failed - a deliver then answers 503, as it is never sent twice.
NO_MAINTENANCE_NOTIFICATIONS = MaintNotificationsConfig(enabled=False)


@contextmanager
def unavailable(what: str) -> Iterator[None]:
    """Turn a Redis outage into ServiceUnavailable (the HTTP layer answers 503)."""
    try:
        yield
    except _UNAVAILABLE as e:
        raise ServiceUnavailable(f"redis is unavailable ({what})") from e
    except rx.RedisClusterException as e:
        # The cluster client raises its own exception (not a RedisError) when it cannot
        # read the slots: no startup node answers, or not every slot is served (a master
        # lost and its replica not yet promoted). Any other one is a bug (CROSSSLOT keys).
        if not _cluster_unreachable(e):
            raise
        raise ServiceUnavailable(f"redis cluster is unavailable ({what})") from e
    except rx.ResponseError as e:
        # MISCONF: Redis refuses writes because it cannot save its snapshot.
        if str(e).startswith("MISCONF"):
            raise ServiceUnavailable(f"redis refuses writes ({what})") from e
        raise


def _cluster_unreachable(error: rx.RedisClusterException) -> bool:
    if isinstance(error.__cause__, _UNAVAILABLE):
        return True
    return str(error).startswith(("Redis Cluster cannot be connected", "All slots are not covered"))


def text(value: bytes | str) -> str:
    """A reply as str: the adapters work with clients made with or without decode_responses."""
    return value.decode() if isinstance(value, bytes) else value


def lua(name: str) -> str:
    """The source of a Lua script kept beside this module (packaged as *.lua)."""
    return (Path(__file__).parent / name).read_text(encoding="utf-8")


def bucket_lua(name: str) -> str:
    """A script that publishes a bucket's notifications on a Redis Cluster: its source after
    the functions it shares with the others (bucket_gateways.lua)."""
    source = lua(name)
    first, _, rest = source.partition("\n")
    shebang = first + "\n" if first.startswith("#!") else ""
    return shebang + lua("bucket_gateways.lua") + (rest if shebang else source)


async def get_many(client: Redis | RedisCluster, keys: list[str]) -> list[Any]:
    """MGET, on one Redis or a cluster: a cluster refuses an MGET of keys in several slots
    (CROSSSLOT), so its client splits them by slot (one MGET per slot, answers in the
    keys' order; not atomic across slots, which no reader here needs)."""
    if isinstance(client, RedisCluster):
        return await client.mget_nonatomic(keys)
    return await client.mget(keys)


async def subscriber_counts(client: Redis | RedisCluster, channels: list[bytes]) -> list[tuple[bytes, int]]:
    """PUBSUB NUMSUB: (channel, subscribers) for each channel. A classic subscription lives
    on the one node it was made on (a gateway subscribes on any node of a cluster, while a
    PUBLISH reaches them all), so on a cluster every node is asked and the counts summed."""
    if isinstance(client, RedisCluster):
        return await client.pubsub_numsub(*channels, target_nodes=RedisCluster.ALL_NODES)
    return await client.pubsub_numsub(*channels)


# Publishes ARGV[1] on ARGV[2], ARGV[3] on ARGV[4]...: in order, in one step.
_PUBLISH_ALL = """
for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return 1
"""


async def publish(client: Redis | RedisCluster, channel: bytes | str, data: bytes | str) -> None:
    """PUBLISH. On a cluster, on the client's default node, as publish_all and the classic
    Subscriptions (pubsub.own_client_anywhere) do: a classic PUBLISH reaches every node, but
    through the cluster bus, so two publishes sent to two nodes may arrive in either order;
    from one node they keep theirs."""
    if isinstance(client, RedisCluster):
        await client.execute_command("PUBLISH", channel, data, target_nodes=client.get_default_node())
        return
    await client.publish(channel, data)


async def publish_all(client: Redis | RedisCluster, messages: list[tuple[bytes, bytes]]) -> None:
    """PUBLISH each (channel, data) in order, in one round trip: a pipeline on one Redis. A
    cluster's pipeline refuses PUBLISH (it has no key to route by), so there one script
    with no keys publishes them all, on the default node (see publish)."""
    if isinstance(client, RedisCluster):
        await client.execute_command("EVAL", _PUBLISH_ALL, 0, *(part for message in messages for part in message),
                                     target_nodes=client.get_default_node())
        return
    async with client.pipeline(transaction=False) as pipe:
        for channel, data in messages:
            pipe.publish(channel, data)
        await pipe.execute()
