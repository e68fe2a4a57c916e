"""The production Inbox: one Redis stream per user, its log (stream:private:{user_id}),
the persistence stream (stream:persist) and the pub/sub notification (envelope.py),
all written by one Lua script per event (deliver.lua says why), which also marks the
sender's idempotency answer delivered (adapters/redis/idempotency.py).

A log entry is never rewritten: a message's entry keeps the record it was sent with.
An edit or deletion (a MessageChange) also keeps the message's state now in a key of
its own, changed:{message_id} (CHANGED_KEY), and read() lays it over the entry, so a
pull or a resume shows the message as it is now - edited, or a tombstone - as the
embedded log does (it reads the message table)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from adapters.redis import envelope, resp
from adapters.redis.batched_script import BatchedScript
from adapters.redis.idempotency import DEFAULT_TTL as IDEMPOTENCY_TTL
from adapters.redis.idempotency import idempotency_key
from adapters.redis.logs import RedisLogs
from adapters.redis.message_states import CHANGED_KEY, CHANGED_TTL, MessageStates  # noqa: F401 - CHANGED_KEY: its home was here
from adapters.redis.support import lua, text, unavailable
from application.ports import Accepted, Inbox
from domain import errors
from domain.events import Appended, Delivery, MessageChange
from domain.model import Message

INBOX_KEY = "stream:private:{}"
PERSIST_STREAM = "stream:persist"
CURSOR_GENERATOR = "stream:last-id"  # the last inbox entry id deliver.lua handed out
NOTIFICATION_CHANNEL = "message_notifications"
SEQ_COUNTER = "seq:{}"  # a conversation's last Message.seq (Message.conversation), deliver.lua's INCR
# Set by `courier worker` once every conversation with stored messages has a counter: a
# missing counter then starts from 0 (adapters/redis/seq_counters.py).
SEQ_COMPLETE = "seq:complete"


class RedisInbox(Inbox):
    """`max_length` bounds each inbox; older entries are trimmed and a cursor
    before them answers CursorExpired. Trimming is approximate by default
    (Redis drops whole macro nodes, so an inbox may hold up to ~100 entries
    more than max_length); `exact_trim=True` trims to the entry, at some cost.

    `last_seq` (MessageStore.last_seq) tells the highest seq the database holds for a
    conversation: deliver.lua starts a missing counter from it (a Redis that lost its
    data, or a conversation older than seqs) while seq:complete is missing; with the
    marker (adapters/redis/seq_counters.py) a missing counter starts from 0 without
    asking, so a first message into a conversation is accepted while the database is
    down. Without `last_seq` a missing counter starts at 0, which suits a test with an
    empty database only.

    `changed_ttl` is how long an edited or deleted message's state is laid over its
    entries (CHANGED_TTL). `wait_replicas`: a send waits for that many replicas to
    acknowledge it (WAIT, at most wait_timeout_ms; then 503: BatchedScript)."""

    def __init__(
        self,
        client: aioredis.Redis,
        max_length: int = 10_000,
        *,
        exact_trim: bool = False,
        persist_stream: str = PERSIST_STREAM,
        channel: str = NOTIFICATION_CHANNEL,
        idempotency_ttl: int = IDEMPOTENCY_TTL,
        last_seq: Callable[[str], Awaitable[int]] | None = None,
        changed_ttl: int = CHANGED_TTL,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ):
        self._client = client
        self._states = MessageStates(client, changed_ttl)  # kept by append(), laid over by the reads
        self._last_seq = last_seq
        # The deliver script's fixed arguments, packed once (resp.py says why).
        self._persist_key = resp.bulk(persist_stream)
        self._generator_key = resp.bulk(CURSOR_GENERATOR)
        self._complete_key = resp.bulk(SEQ_COMPLETE)
        self._max_length_arg = resp.bulk(int(max_length))
        self._trim_arg = resp.bulk("=" if exact_trim else "~")
        self._trim_every_arg = resp.bulk(trim_every(max_length, exact_trim))
        self._channel_arg = resp.bulk(channel)
        self._ttl_arg = resp.bulk(int(idempotency_ttl))
        self._inbox_keys = resp.PackedCache(_inbox_key)
        self._json_ids = resp.PackedCache(_json_id)
        # Scripts are sent by their SHA and loaded again after a Redis restart
        # (NOSCRIPT), so nothing is sent here. The deliver script is sent at most once
        # per message (BatchedScript says why), with the other sends of the same turn.
        self._deliver = BatchedScript(client, lua("deliver.lua"), wait_replicas=wait_replicas,
                                      wait_timeout_ms=wait_timeout_ms)
        self._logs = RedisLogs(client, changed_ttl)

    async def deliver(self, message: Message, recipient_ids: Sequence[str]) -> Accepted:
        recipients = list(dict.fromkeys(recipient_ids))  # one entry per recipient, even if listed twice
        # Inbox entries carry the public record: client_msg_id belongs to the sender
        # alone, whose own entry (and the persister's, and the envelope) has the full one.
        compact = orjson.dumps(message.public())
        full = compact if message.record_is_public else orjson.dumps(message.to_record())
        sender = recipients.index(message.from_user_id) + 1 if message.from_user_id in recipients else 0
        key = None
        if message.client_msg_id is not None:
            key = idempotency_key(message.from_user_id, message.client_msg_id)
        counter = resp.bulk(SEQ_COUNTER.format(message.conversation))
        try:
            try:
                cursors, seq = await self._append(recipients, compact, full, full, sender, key, message.id,
                                                  counter, _EMPTY_ARG)
            except ResponseError as error:
                if not str(error).startswith("NOSEED"):
                    raise
                # The script changed nothing: call it again, with the counter's start.
                seed = resp.bulk(await self._seed(message.conversation))
                cursors, seq = await self._append(recipients, compact, full, full, sender, key, message.id,
                                                  counter, seed)
        except ResponseError as error:
            if str(error).startswith("SUPERSEDED"):
                raise errors.SendSuperseded() from None
            if str(error).startswith("LARGE"):
                raise errors.GroupIsLarge() from None  # nothing was written (deliver.lua)
            raise
        return Accepted(message.with_seq(int(seq)), cursors)

    async def append(self, change: Appended, recipient_ids: Sequence[str]) -> dict[str, str]:
        if isinstance(change, MessageChange):
            # The message's state first: should this fail, nothing is appended and the
            # announcement's relay does both again (each is idempotent). Should the append
            # fail after it, a read shows the change before its event: as history does.
            await self._states.keep(change)
        recipients = list(dict.fromkeys(recipient_ids))
        record = orjson.dumps(change.to_record())
        cursors, _ = await self._append(recipients, record, record, None, 0, None, change.id,
                                        _NO_COUNTER, _NO_SEQ, marker=APPENDED_MARKER.format(change.id))
        return cursors if any(cursors.values()) else {}

    async def _append(self, recipients: list[str], record: bytes, envelope_record: bytes, persisted: bytes | None,
                      sender: int, idempotency: str | None, event_id: str, counter: bytes,
                      seed: bytes, marker: str | None = None) -> tuple[dict[str, str], bytes]:
        """One run of deliver.lua: `record` into every recipient's log (the full
        `persisted` record into the sender's, at 1-based position `sender`, 0: none),
        `persisted` into stream:persist (None: not persisted), the answer of
        `idempotency` marked delivered, the envelope published; a message takes its seq
        from `counter` (`seed`: deliver.lua's ARGV[9]); an event with a `marker` key is
        appended once only. Each recipient's cursor ('' for each, when the marker said it
        was appended before), and the seq."""
        bulk = resp.bulk_bytes
        keys = [self._persist_key, self._generator_key, counter, self._complete_key]
        args = [self._max_length_arg, self._trim_arg, bulk(record),
                _EMPTY_ARG if persisted is None else bulk(persisted), self._channel_arg]
        if idempotency is None:
            args += [_EMPTY_ARG, self._ttl_arg]
            if marker is not None:
                keys.append(resp.bulk(marker))
        else:
            # The script marks the sender's idempotency answer delivered with the append.
            keys.append(resp.bulk(idempotency))
            args += [resp.bulk(event_id), self._ttl_arg]
        args += [self._trim_every_arg, seed]
        args.append(bulk(envelope.head(envelope_record, map(self._json_ids, recipients))))
        args.append(_POSITIONS[sender] if sender < len(_POSITIONS) else resp.bulk(sender))
        args.append(_EMPTY_ARG if marker is None else _MARKER_TTL)
        keys += map(self._inbox_keys, recipients)
        with unavailable("deliver"):
            shared, own, seq = await self._deliver(len(keys), keys + args)
        # One cursor for all (deliver.lua), but for the few inboxes that needed their own.
        cursors = dict.fromkeys(recipients, text(shared))
        for position, cursor in zip(own[::2], own[1::2], strict=True):
            cursors[recipients[int(position) - 1]] = text(cursor)
        return cursors, seq

    async def _seed(self, conversation: str) -> int:
        """Where a missing seq counter starts: the highest seq the database holds for the
        conversation. A counter is lost with Redis's data, and stream:persist with it: the
        database then holds every seq that is left (an older snapshot of Redis is the
        exception: the persister numbers anew a message whose seq is taken)."""
        return await self._last_seq(conversation) if self._last_seq is not None else 0

    async def read(self, user_id: str, after: str | None, limit: int) -> list[Delivery]:
        return await self._logs.read(INBOX_KEY.format(user_id), after, limit)

    async def last_cursor(self, user_id: str) -> str | None:
        return await self._logs.last_cursor(INBOX_KEY.format(user_id))


_EMPTY_ARG = resp.bulk(b"")
_POSITIONS = [resp.bulk(n) for n in range(64)]  # the sender's place among the recipients, packed
_NO_SEQ = resp.bulk(b"-")
# A group change's marker: appended once per id, remembered for a week (a relay comes
# within seconds; application/group_events.py).
APPENDED_MARKER = "appended:{}"
_MARKER_TTL = resp.bulk(7 * 24 * 3600)  # deliver.lua's ARGV[9] for an event that takes no seq
_NO_COUNTER = resp.bulk(SEQ_COUNTER.format("none"))  # its KEYS[3], never touched then
MAX_TRIM_EVERY = 16


def trim_every(max_length: int, exact: bool) -> int:
    """On one append in how many deliver.lua trims an inbox: every one when trimming
    is exact; else often enough that an inbox outgrows its bound by ~1% between two
    trims (a MAXLEN under 200 trims on every append), and at most one in 16."""
    if exact:
        return 1
    return max(1, min(MAX_TRIM_EVERY, max_length // 100))


def _inbox_key(user_id: str) -> bytes:
    return resp.bulk(INBOX_KEY.format(user_id))


def _json_id(user_id: str) -> bytes:
    # A user id as a JSON string, for the envelope's list of recipients.
    return orjson.dumps(user_id)
