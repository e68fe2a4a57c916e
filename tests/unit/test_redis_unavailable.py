"""What a Redis error turns into (adapters/redis/support.py `unavailable`): an outage, or
a slot served elsewhere (MOVED / ASK: found on a Redis Cluster by issue 19, where login
and the socket upgrade answered 500), is a 503 the client retries; any other error
reply stays what it is."""
from __future__ import annotations

import pytest
import redis.exceptions as rx

from adapters.redis.support import unavailable
from domain.errors import ServiceUnavailable


@pytest.mark.parametrize("error", [
    rx.ConnectionError("gone"), rx.TimeoutError("slow"), rx.MovedError("3999 127.0.0.1:7001"),
    rx.AskError("3999 127.0.0.1:7002"), rx.TryAgainError("TRYAGAIN"), rx.ClusterDownError("CLUSTERDOWN"),
    rx.SlotNotCoveredError("slot 12 is not covered"), rx.ResponseError("MISCONF no snapshot"),
    rx.MasterDownError("MASTERDOWN Link with MASTER is down"), rx.ClusterError("TTL exhausted."),
    rx.MaxConnectionsError("Too many connections"),
], ids=lambda e: type(e).__name__)
def test_an_outage_or_a_slot_served_elsewhere_is_a_503(error):
    with pytest.raises(ServiceUnavailable), unavailable("test"):
        raise error


def test_another_error_reply_is_left_as_it_is():
    with pytest.raises(rx.ResponseError), unavailable("test"):
        raise rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")


def unreachable_cluster() -> rx.RedisClusterException:
    """What redis-py's cluster client raises when no startup node answers CLUSTER SLOTS."""
    try:
        raise rx.RedisClusterException("Redis Cluster cannot be connected. Please provide at least one "
                                       "reachable node: refused") from rx.ConnectionError("refused")
    except rx.RedisClusterException as error:
        return error


@pytest.mark.parametrize("error", [
    unreachable_cluster(),
    rx.RedisClusterException("All slots are not covered after query all startup_nodes. 10923 of 16384 covered..."),
], ids=["no-node-answers", "slots-not-covered"])
def test_a_cluster_whose_slots_cannot_be_read_is_a_503(error):
    with pytest.raises(ServiceUnavailable), unavailable("test"):
        raise error


def test_keys_in_several_slots_stay_a_bug_not_a_503():
    with pytest.raises(rx.RedisClusterException), unavailable("test"):
        raise rx.RedisClusterException("EVALSHA - all keys must map to the same key slot")
