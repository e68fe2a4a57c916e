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
], ids=lambda e: type(e).__name__)
def test_an_outage_or_a_slot_served_elsewhere_is_a_503(error):
    with pytest.raises(ServiceUnavailable), unavailable("test"):
        raise error


def test_another_error_reply_is_left_as_it_is():
    with pytest.raises(rx.ResponseError), unavailable("test"):
        raise rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
