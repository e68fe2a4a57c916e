"""RedisIdempotencyKeys against a real Redis, and RedisInbox marking answers delivered."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.redis.idempotency import DEFAULT_TTL, RedisIdempotencyKeys, idempotency_key
from adapters.redis.inbox import RedisInbox
from application.ports import Answer
from domain import errors
from domain.model import PRIVATE, Message
from tests.services.redis import make_client
from tests.services.reply_dropper import ReplyDropper

pytestmark = pytest.mark.redis


def message(client_msg_id: str, content: str = "hello", sender: str = "a") -> Message:
    return Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id=sender, to_user_id="b", content=content,
                   created_at=1_700_000_000, client_msg_id=client_msg_id)


def pending(m: Message) -> Answer:
    return Answer(m, delivered=False)


def delivered(m: Message) -> Answer:
    return Answer(m, delivered=True)


@pytest.mark.gen_test
async def test_remember_twice_returns_the_original_pending_then_delivered(redis_client):
    keys = RedisIdempotencyKeys(redis_client)
    first, retry = message("k-1", "first 😀"), message("k-1", "retry")
    assert await keys.remember("a", "k-1", first) is None
    assert await keys.remember("a", "k-1", retry) == pending(first)
    await keys.confirm("a", "k-1", first)
    assert await keys.remember("a", "k-1", retry) == delivered(first)
    # Another sender, or another client_msg_id, is another key.
    assert await keys.remember("z", "k-1", retry) is None
    assert await keys.remember("a", "k-2", message("k-2")) is None


@pytest.mark.gen_test
async def test_a_pending_answer_expires_quickly_and_a_delivered_one_is_kept(redis_client):
    keys = RedisIdempotencyKeys(redis_client, pending_ttl=30)
    first = message("k")
    await keys.remember("a", "k", first)
    assert 29_000 < await redis_client.pttl(idempotency_key("a", "k")) <= 30_000
    await keys.confirm("a", "k", first)
    assert DEFAULT_TTL - 10 < await redis_client.ttl(idempotency_key("a", "k")) <= DEFAULT_TTL

    short = RedisIdempotencyKeys(redis_client, pending_ttl=0.2)
    dead = message("d")
    await short.remember("a", "d", dead)  # its sender never confirms nor forgets
    assert await short.remember("a", "d", message("d")) == pending(dead)
    await asyncio.sleep(0.3)
    again = message("d")
    assert await short.remember("a", "d", again) is None  # a retry may send anew
    assert await short.remember("a", "d", message("d")) == pending(again)


@pytest.mark.gen_test
async def test_forget_drops_only_its_own_pending_answer(redis_client):
    keys = RedisIdempotencyKeys(redis_client)
    first = message("k")
    await keys.remember("a", "k", first)
    await keys.forget("a", "k", message("k"))  # another message's: left alone
    assert await keys.remember("a", "k", message("k")) == pending(first)
    await keys.forget("a", "k", first)
    again = message("k")
    assert await keys.remember("a", "k", again) is None
    await keys.confirm("a", "k", again)
    await keys.forget("a", "k", again)  # delivered: kept
    assert await keys.remember("a", "k", message("k")) == delivered(again)
    await keys.forget("a", "never-seen", again)  # harmless


@pytest.mark.gen_test
async def test_confirm_never_overwrites_the_answer_of_another_message(redis_client):
    keys = RedisIdempotencyKeys(redis_client, pending_ttl=0.1)
    slow, retry = message("k", "slow"), message("k", "retry")
    await keys.remember("a", "k", slow)
    await asyncio.sleep(0.2)  # the slow attempt's pending answer expired
    assert await keys.remember("a", "k", retry) is None
    await keys.confirm("a", "k", slow)
    await keys.forget("a", "k", slow)
    assert await keys.remember("a", "k", message("k")) == pending(retry)
    # A free key is taken by the confirmed message.
    await keys.confirm("a", "free", slow)
    assert await keys.remember("a", "free", message("free")) == delivered(slow)


@pytest.mark.gen_test
async def test_odd_client_msg_ids_are_safe(redis_client):
    keys = RedisIdempotencyKeys(redis_client, ttl_seconds=3600)
    odd = "idem:a:x \n 你好 😀 " + "z" * 100
    first = message(odd)
    await keys.remember("a", odd, first)
    key = idempotency_key("a", odd)
    assert key.isascii() and len(key) < 60
    await keys.confirm("a", odd, first)
    assert 3500 < await redis_client.ttl(key) <= 3600
    assert (await keys.remember("a", odd, message(odd))).message.client_msg_id == odd


# RedisInbox.deliver marks the answer delivered in its own script -------------------


@pytest.mark.gen_test
async def test_deliver_marks_the_pending_answer_delivered(redis_client, channel):
    keys = RedisIdempotencyKeys(redis_client)
    inbox = RedisInbox(redis_client, channel=channel, idempotency_ttl=3600)
    first = message("k", "once 😀")
    await keys.remember("a", "k", first)
    first = (await inbox.deliver(first, ["b"])).message  # as accepted, with its seq
    assert first.seq == 1
    # The gateway died here, before its confirm(): the answer is delivered all the same.
    assert await keys.remember("a", "k", message("k")) == delivered(first)
    assert 3500 < await redis_client.ttl(idempotency_key("a", "k")) <= 3600
    # A delivery whose reply was lost answers 503, and the use case forgets the key:
    # the answer stays delivered, so the client's retry gets the original back.
    await keys.forget("a", "k", first)
    assert await keys.remember("a", "k", message("k")) == delivered(first)
    [entry] = await inbox.read("b", None, 10)
    assert entry.event.id == first.id


@pytest.mark.gen_test
async def test_a_late_first_attempt_whose_key_a_retry_took_appends_nothing(redis_client, channel):
    """The first attempt's pending answer expired while it was slow, and the retry took the
    key: the retry delivers the message; the late attempt must not send a second copy."""
    keys = RedisIdempotencyKeys(redis_client, pending_ttl=0.1)
    inbox = RedisInbox(redis_client, channel=channel)
    late, retry = message("k", "a late first attempt"), message("k", "the retry's")
    await keys.remember("a", "k", late)
    await asyncio.sleep(0.2)
    assert await keys.remember("a", "k", retry) is None  # the retry holds the key, pending
    with pytest.raises(errors.SendSuperseded):
        await inbox.deliver(late, ["b"])
    assert await redis_client.xlen("stream:persist") == 0 and await inbox.read("b", None, 10) == []
    assert await keys.remember("a", "k", message("k")) == pending(retry)  # left alone
    retry = (await inbox.deliver(retry, ["b"])).message
    with pytest.raises(errors.SendSuperseded):  # and once the retry delivered, still nothing
        await inbox.deliver(late, ["b"])
    assert [d.event.id for d in await inbox.read("b", None, 10)] == [retry.id]
    assert await keys.remember("a", "k", message("k")) == delivered(retry)


@pytest.mark.gen_test
async def test_deliver_marks_a_free_key_and_leaves_messages_without_one_alone(redis_client, channel):
    keys = RedisIdempotencyKeys(redis_client)
    inbox = RedisInbox(redis_client, channel=channel)
    # A free key (its pending answer expired) is marked with the delivered message.
    free = (await inbox.deliver(message("free"), ["b"])).message
    assert await keys.remember("a", "free", message("free")) == delivered(free)
    # Without a client_msg_id there is no key at all.
    plain = Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id="a", to_user_id="b", content="x",
                    created_at=1_700_000_000)
    before = sorted([k async for k in redis_client.scan_iter("idem:*")])
    assert set(await inbox.deliver(plain, ["b", "c"])) == {"b", "c"}
    assert sorted([k async for k in redis_client.scan_iter("idem:*")]) == before
    assert [d.event.id for d in await inbox.read("c", None, 10)] == [plain.id]


@pytest.mark.gen_test(timeout=15)
async def test_a_remember_sent_again_after_its_reply_was_lost_holds_the_key(private_redis):
    """redis-py resends SET NX GET when its reply is lost: the second one finds the first
    one's pending answer, which is the message's own - the key is held, not in use."""
    proxy = ReplyDropper(private_redis.port, command=b"SET")
    client = make_client(await proxy.start(), retry=Retry(NoBackoff(), 3))
    try:
        keys = RedisIdempotencyKeys(client)
        first = message("k")
        await keys.remember("a", "warm-up", message("warm-up"))  # connected
        proxy.armed = True
        assert await keys.remember("a", "k", first) is None  # its reply lost, resent, still ours
        assert await keys.remember("a", "k", message("k")) == pending(first)  # a real retry waits
    finally:
        await client.aclose()
        await proxy.close()
