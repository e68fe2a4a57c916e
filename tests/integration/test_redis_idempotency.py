"""RedisIdempotencyKeys against a real Redis."""
from __future__ import annotations

import uuid

import pytest

from adapters.redis.idempotency import RedisIdempotencyKeys, idempotency_key
from domain.model import PRIVATE, Message

pytestmark = pytest.mark.redis


def message(client_msg_id: str, content: str = "hello") -> Message:
    return Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id="a", to_user_id="b", content=content,
                   created_at=1_700_000_000, client_msg_id=client_msg_id)


@pytest.mark.gen_test
async def test_remember_twice_returns_the_original(redis_client):
    keys = RedisIdempotencyKeys(redis_client)
    first, retry = message("k-1", "first 😀"), message("k-1", "retry")
    assert await keys.remember("a", "k-1", first) is None
    assert await keys.remember("a", "k-1", retry) == first
    # Another sender, or another client_msg_id, is another key.
    assert await keys.remember("z", "k-1", retry) is None
    assert await keys.remember("a", "k-2", message("k-2")) is None


@pytest.mark.gen_test
async def test_forget_lets_a_retry_through(redis_client):
    keys = RedisIdempotencyKeys(redis_client)
    await keys.remember("a", "k", message("k"))
    await keys.forget("a", "k")
    again = message("k")
    assert await keys.remember("a", "k", again) is None
    assert await keys.remember("a", "k", message("k")) == again
    await keys.forget("a", "never-seen")  # harmless


@pytest.mark.gen_test
async def test_keys_expire_after_the_ttl_and_odd_ids_are_safe(redis_client):
    keys = RedisIdempotencyKeys(redis_client, ttl_seconds=3600)
    odd = "idem:a:x \n 你好 😀 " + "z" * 100
    await keys.remember("a", odd, message(odd))
    key = idempotency_key("a", odd)
    assert key.isascii() and len(key) < 60
    assert 3500 < await redis_client.ttl(key) <= 3600
    assert (await keys.remember("a", odd, message(odd))).client_msg_id == odd
