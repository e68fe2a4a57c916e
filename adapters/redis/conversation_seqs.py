"""The conversations' last seqs as deliver.lua hands them out (its counters seq:<conversation>):
known at once, while the worker may not have stored the newest messages yet. A large
group's counter moved into its state at the switch (lg:{G} seq, lg_deliver.lua's), and
its old counter holds 'L' (docs/design/large-groups.md, section 4.2): read there then.
On a Redis Cluster (given its `keys`) the counters are commit.lua's, {t}:seq:<conversation>
in the conversation's bucket; a large group's state is in {G} there too."""
from __future__ import annotations

import redis.asyncio as aioredis

from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.group_streams import STATE
from adapters.redis.inbox import SEQ_COUNTER
from adapters.redis.support import unavailable
from application.ports import ConversationSeqs

_SWITCHED = (b"L", "L")  # 'L' as the client gives it back (bytes, or str when it decodes)


class RedisConversationSeqs(ConversationSeqs):
    def __init__(self, client: aioredis.Redis, keys: ClusterKeys | None = None):
        self._client = client
        self._keys = keys

    def _counter(self, conversation: str) -> str:
        return SEQ_COUNTER.format(conversation) if self._keys is None else self._keys.seq(conversation)

    async def last_seq(self, conversation: str) -> int | None:
        with unavailable("seq counters"):
            value = await self._client.get(self._counter(conversation))
            if value in _SWITCHED and conversation.startswith("g:"):
                value = await self._client.hget(STATE.format(conversation[2:]), "seq")
        if value is None or value in _SWITCHED:
            return None  # a switched group whose state is gone (a loss of Redis): ask the store
        return int(value)
