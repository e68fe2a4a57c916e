"""Every Redis adapter answers ServiceUnavailable (a 503) when Redis cannot be reached."""
from __future__ import annotations

import uuid

import pytest

from adapters.redis.idempotency import RedisIdempotencyKeys
from adapters.redis.inbox import RedisInbox
from adapters.redis.limits import RedisFailureThrottle, RedisRateLimiter
from adapters.redis.persist_queue import RedisPersistQueue
from domain.errors import ServiceUnavailable
from domain.events import MESSAGE_UPDATED, MessageChange
from domain.model import PRIVATE, Message

MESSAGE = Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id="a", to_user_id="b", content="x",
                  created_at=1_700_000_000)
EDIT = MessageChange(MESSAGE_UPDATED, str(uuid.uuid4()), Message(
    type=PRIVATE, id=MESSAGE.id, from_user_id="a", to_user_id="b", content="y", created_at=1_700_000_000, seq=1,
    edited_at=1_700_000_001))

CALLS = {
    "inbox.deliver": lambda c: RedisInbox(c).deliver(MESSAGE, ["b"]),
    "inbox.read": lambda c: RedisInbox(c).read("b", None, 10),
    "inbox.read after": lambda c: RedisInbox(c).read("b", "1-0", 10),
    "inbox.last_cursor": lambda c: RedisInbox(c).last_cursor("b"),
    "inbox.append (an edit)": lambda c: RedisInbox(c).append(EDIT, ["a", "b"]),
    "idempotency.remember": lambda c: RedisIdempotencyKeys(c).remember("a", "k", MESSAGE),
    "idempotency.confirm": lambda c: RedisIdempotencyKeys(c).confirm("a", "k", MESSAGE),
    "idempotency.forget": lambda c: RedisIdempotencyKeys(c).forget("a", "k", MESSAGE),
    "rate.take": lambda c: RedisRateLimiter(c, 1, 1).take("k"),
    "throttle.blocked_for": lambda c: RedisFailureThrottle(c, 3).blocked_for("k"),
    "throttle.record_failure": lambda c: RedisFailureThrottle(c, 3).record_failure("k"),
    "queue.take": lambda c: RedisPersistQueue(c).take("p", 10, 10),
    "queue.ack": lambda c: RedisPersistQueue(c).ack(["1-0"]),
    "queue.reject": lambda c: RedisPersistQueue(c).reject(["1-0"], "why"),
    "queue.backlog": lambda c: RedisPersistQueue(c).backlog(),
}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.gen_test
async def test_unreachable_redis_is_service_unavailable(down_client, call):
    with pytest.raises(ServiceUnavailable) as caught:
        await CALLS[call](down_client)
    assert caught.value.__cause__ is not None  # the driver's error is kept for the logs
