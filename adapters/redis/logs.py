"""Reading a user's log, a Redis stream (RedisInbox's stream:private:<user>, or its bucket's
{t}:log:<user> on a cluster): a page after a cursor, with the retention checks that tell a
trimmed cursor (CursorExpired) and a made-up one (CursorUnknown) apart, each message laid
over with its state after an edit or a deletion (MessageStates), and the newest cursor."""
from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from adapters.redis.message_states import CHANGED_TTL, MessageStates
from adapters.redis.support import lua, text, unavailable
from domain import errors
from domain.events import Delivery, event_from_record
from domain.model import Message, cursor_position

_MAX_ID_PART = 2**64 - 1  # a stream id is two unsigned 64-bit integers


class RedisLogs:
    def __init__(self, client: aioredis.Redis, changed_ttl: int = CHANGED_TTL):
        self._client = client
        self._states = MessageStates(client, changed_ttl)
        self._read = client.register_script(lua("read.lua"))

    async def read(self, key: str, after: str | None, limit: int) -> list[Delivery]:
        """Up to `limit` entries of the log `key` after cursor `after` (Inbox.read)."""
        if limit <= 0:
            return []
        if after is None:
            start, position = "-", None
        else:
            position = cursor_position(after)  # InvalidCursor for anything malformed
            if max(position) > _MAX_ID_PART:
                raise errors.InvalidCursor()
            if position == (_MAX_ID_PART, _MAX_ID_PART):
                raise errors.CursorUnknown()  # the largest id: no entry ever gets it
            start = "(" + after
        with unavailable("read"):
            first_retained, max_deleted, entries, newest = await self._read(
                keys=[key], args=[start, limit, "1" if after is not None else "0"]
            )
        if position is not None:
            if position < _retained_from(text(first_retained), text(max_deleted)):
                raise errors.CursorExpired()
            if not entries and position > (cursor_position(text(newest)) if newest else (0, 0)):
                raise errors.CursorUnknown()
        # Each edited or deleted message as it is now (its changed: key).
        return await self._states.lay_over([_delivery(entry) for entry in entries], _event_of, _with_event)

    async def last_cursor(self, key: str) -> str | None:
        with unavailable("last_cursor"):
            newest = await self._client.xrevrange(key, count=1)
        return text(newest[0][0]) if newest else None


def _retained_from(first_retained: str, max_deleted: str) -> tuple[int, int]:
    """The oldest cursor that has lost nothing after it.

    Trimming only removes the oldest entries; Redis does not keep the id of the
    newest one it trimmed, only the first it kept. So a cursor before the first
    retained entry counts as expired, even the one cursor (the last trimmed
    entry) that in fact lost nothing: a client told to fall back to history
    needlessly, never one that silently misses a message."""
    boundary = (0, 0)
    if first_retained:
        boundary = cursor_position(first_retained)
    if max_deleted:
        boundary = max(boundary, cursor_position(max_deleted))
    return boundary


def _event_of(delivery: Delivery):
    return delivery.event


def _with_event(delivery: Delivery, message: Message) -> Delivery:
    return Delivery(message, delivery.cursor)


def _delivery(entry) -> Delivery:
    entry_id, fields = entry
    # The script returns the raw reply: fields as a flat [name, value, ...] list.
    values = dict(zip(fields[::2], fields[1::2], strict=True)) if isinstance(fields, list) else fields
    record = values.get(b"m", values.get("m"))
    return Delivery(event_from_record(orjson.loads(record)), text(entry_id))
