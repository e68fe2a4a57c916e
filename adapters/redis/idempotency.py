"""Send idempotency shared by every gateway: the answer to (sender, client_msg_id)
in Redis, one string key each, pending then delivered (see ports.IdempotencyKeys).

The value is '<state>:<message id>:<record JSON>', state 'p' (pending, kept
`pending_ttl` seconds: a gateway that died mid-send blocks the key no longer)
or 'd' (delivered, kept a week: the contract promises at least 24 hours).
RedisInbox's deliver.lua marks the answer delivered in the same script as the
append, so no crash between the two can leave a delivered message pending
(and let a retry after the pending TTL deliver it twice): that is the send's
confirm step (ports.Inbox.deliver); confirm() does the same on its own."""
from __future__ import annotations

import hashlib

import orjson
import redis.asyncio as aioredis

from adapters.redis.support import lua, unavailable
from application.ports import Answer, IdempotencyKeys
from domain.model import Message

DEFAULT_TTL = 7 * 86400
PENDING_TTL = 30.0
PENDING, DELIVERED = b"p", b"d"


def idempotency_digest(client_msg_id: str) -> str:
    # client_msg_id is any text of up to 128 characters (colons, spaces, emoji...):
    # a digest keeps keys short, printable and unambiguous.
    return hashlib.blake2b(client_msg_id.encode("utf-8"), digest_size=16).hexdigest()


def idempotency_key(sender_id: str, client_msg_id: str) -> str:
    return f"idem:{sender_id}:{idempotency_digest(client_msg_id)}"


def parse_answer(value: bytes | str) -> Answer:
    """A key's value as an Answer. (Message ids are UUIDs: no colon in them.)"""
    raw = value.encode() if isinstance(value, str) else value
    state, _message_id, record = raw.split(b":", 2)
    return Answer(Message.from_record(orjson.loads(record)), delivered=state == DELIVERED)


class RedisIdempotencyKeys(IdempotencyKeys):
    def __init__(self, client: aioredis.Redis, ttl_seconds: int = DEFAULT_TTL, pending_ttl: float = PENDING_TTL):
        self._client = client
        self._ttl = int(ttl_seconds)
        self._pending_ms = max(1, int(pending_ttl * 1000))
        self._script = client.register_script(lua("idempotency.lua"))

    async def remember(self, sender_id: str, client_msg_id: str, message: Message) -> Answer | None:
        key = idempotency_key(sender_id, client_msg_id)
        value = b"p:" + message.id.encode() + b":" + orjson.dumps(message.to_record())
        # SET NX GET (Redis 7): store ours unless a value exists, and return that value,
        # in one atomic step - two gateways racing on the same key agree on one answer.
        with unavailable("idempotency"):
            previous = await self._client.set(key, value, nx=True, px=self._pending_ms, get=True)
        if previous is None:
            return None
        answer = parse_answer(previous)
        if answer.message.id == message.id and not answer.delivered:
            # Our own pending answer: redis-py sent the SET again after its first reply
            # was lost. The key is ours; reading it as another send's would make every
            # retry of the client wait for it (409) until the pending answer expired.
            return None
        return answer

    async def confirm(self, sender_id: str, client_msg_id: str, message: Message) -> None:
        record = orjson.dumps(message.to_record())
        with unavailable("idempotency"):
            await self._script(
                keys=[idempotency_key(sender_id, client_msg_id)], args=["confirm", message.id, record, self._ttl]
            )

    async def forget(self, sender_id: str, client_msg_id: str, message: Message) -> None:
        with unavailable("idempotency"):
            await self._script(keys=[idempotency_key(sender_id, client_msg_id)], args=["forget", message.id, "", 0])
