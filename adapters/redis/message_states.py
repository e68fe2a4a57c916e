"""A message's state after its latest edit or deletion, changed:{message_id} (CHANGED_KEY),
kept beside the logs: a log entry is never rewritten, so a read lays the state over a
message's entry - in an own log (RedisInbox) and in a large group's stream
(RedisGroupStreams) alike - to show the message as it is now, edited or a tombstone, as
history does. changed.lua keeps the latest state, whatever order changes come in."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import orjson
import redis.asyncio as aioredis

from adapters.redis.support import get_many, lua, unavailable
from domain.events import Event, MessageChange
from domain.model import Message

# A message's state after its latest edit or deletion: {"content", "edited_at",
# "deleted_at"} (changed.lua keeps the latest of them).
CHANGED_KEY = "changed:{}"
# How long that state is kept (seconds) - 30 days: a message edited more than that ago
# and still in a log (not trimmed yet) then reads as it was sent again in a pull or a
# resume. History (the MessageStore) always shows it as it is now.
CHANGED_TTL = 30 * 24 * 3600

T = TypeVar("T")


class MessageStates:
    def __init__(self, client: aioredis.Redis, ttl: int = CHANGED_TTL):
        self._client = client
        self._ttl = int(ttl)
        self._keep = client.register_script(lua("changed.lua"))

    async def keep(self, change: MessageChange, operation: str = "append") -> None:
        """Keep the changed message's state (unless a later one is kept already)."""
        message = change.message
        deleted = message.deleted_at is not None
        # A deleted message's content is gone: none is kept here either.
        state = {"content": "" if deleted else message.content, "edited_at": None if deleted else message.edited_at,
                 "deleted_at": message.deleted_at}
        at = message.deleted_at if deleted else message.edited_at
        with unavailable(operation):
            await self._keep(keys=[CHANGED_KEY.format(message.id)],
                             args=[orjson.dumps(state), 1 if deleted else 0, at or 0, self._ttl])

    async def lay_over(self, page: Sequence[T], event_of, with_event) -> list[T]:
        """The page with each edited or deleted message as it is now: one MGET for the
        page's messages (one per slot on a cluster; the live push never needs it). `event_of(item)` is an item's
        event, `with_event(item, message)` the item with the message as changed."""
        ids = list(dict.fromkeys(event.id for event in map(event_of, page) if isinstance(event, Message)))
        if not ids:
            return list(page)
        with unavailable("read"):
            states = await get_many(self._client, [CHANGED_KEY.format(message_id) for message_id in ids])
        changed = {message_id: orjson.loads(state) for message_id, state in zip(ids, states, strict=True)
                   if state is not None}
        if not changed:
            return list(page)
        return [_changed(item, event_of(item), changed, with_event) for item in page]


def _changed(item, event: Event, changed: dict[str, dict], with_event):
    if not isinstance(event, Message) or event.id not in changed:
        return item
    state = changed[event.id]
    return with_event(item, event.with_change(state.get("content") or "", state.get("edited_at"),
                                              state.get("deleted_at")))
