"""The production Inbox on a Redis Cluster (docs/design/redis-cluster.md, section 3): the
users' logs spread over the buckets (adapters/redis/cluster_keys.py), a send made of
scripts of one slot each, where one Redis runs it as one script (RedisInbox, deliver.lua).

A send:
1. its commit (commit.lua), in the conversation's slot: the seq, the persistence record,
   the record of the send by client_msg_id, and its promise (pending and outbox);
2. its appends (bucket_append.lua), one script per bucket holding a recipient or the
   sender, each once (a marker per event and bucket), sent together to each node
   (BatchedScript), each publishing the bucket's notification;
3. the sender's idempotency answer confirmed (its key is in the sender's bucket, another
   slot), and the promise removed (finish.lua).
The 201 follows step 3: an accepted message is committed and in every recipient's log.
Should the gateway die after step 1, the next send into the conversation makes the missing
appends before its own (commit.lua answers the sends still pending: in every log a
conversation's messages stay in seq order), and so does the worker's relay (finish_stale)
for a conversation that goes quiet; a retry with the same client_msg_id finds the commit's
record and gets the original message, its appends made, as a first 201 would.

An event that is not a message (a group change, an edit, a read marker: Inbox.append) has
no seq and no commit: its appends alone, once per bucket by the same markers."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from adapters.redis import envelope, resp
from adapters.redis.batched_script import BatchedScript
from adapters.redis.buckets import Buckets
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.idempotency import DEFAULT_TTL as IDEMPOTENCY_TTL
from adapters.redis.idempotency import idempotency_digest, idempotency_key, parse_answer
from adapters.redis.inbox import trim_every
from adapters.redis.logs import RedisLogs
from adapters.redis.message_states import CHANGED_TTL, MessageStates
from adapters.redis.support import bucket_lua, lua, text, unavailable
from application.ports import Accepted, IdempotencyKeys, Inbox
from domain import errors
from domain.events import Appended, Delivery, MessageChange
from domain.model import Message

log = logging.getLogger("courier.redis.cluster")

Committed = tuple[int, list[tuple[int, "Work"]]]  # the seq, and the earlier sends still pending by seq
MARKER_TTL = 7 * 24 * 3600  # an event's marker per bucket: a relay comes within seconds
STALE_AFTER_MS = 5_000  # a promise older than this is the relay's (its gateway died or is stuck)
HELP_AFTER = 0.25  # seconds a send waits for the earlier pending sends' own gateways (_still_pending)


@dataclass(frozen=True)
class Work:
    """What a send's appends need, kept in its promise (commit.lua's ARGV[5]) for whoever
    makes them: the logs' record, the sender's own, the recipients, the sender (None when
    not among them). Records are orjson's, which has no raw newline: lines separate them."""

    event_id: str
    record: bytes
    own_record: bytes
    recipients: tuple[str, ...]
    sender: str | None

    def encode(self) -> bytes:
        return b"\n".join((self.event_id.encode(), self.record, self.own_record, ",".join(self.recipients).encode(),
                           (self.sender or "").encode()))

    @classmethod
    def decode(cls, data: bytes) -> Work:
        event_id, record, own_record, recipients, sender = data.split(b"\n")
        return cls(event_id.decode(), record, own_record, tuple(recipients.decode().split(",")) if recipients else (),
                   sender.decode() or None)


class RedisClusterInbox(Inbox):
    """As RedisInbox (max_length, exact_trim, last_seq, changed_ttl, wait_replicas), on a RedisCluster whose
    users hash into `buckets`. `idempotency` holds the senders' keys, confirmed here after
    the appends (Inbox.deliver: the inbox takes the confirm step)."""

    def __init__(
        self,
        client: RedisCluster,
        buckets: Buckets,
        idempotency: IdempotencyKeys,
        max_length: int = 10_000,
        *,
        exact_trim: bool = False,
        idempotency_ttl: int = IDEMPOTENCY_TTL,
        last_seq: Callable[[str], Awaitable[int]] | None = None,
        changed_ttl: int = CHANGED_TTL,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ):
        self._client = client
        self._keys = ClusterKeys(buckets)
        self._idempotency = idempotency
        self._idempotency_ttl = int(idempotency_ttl)
        self._last_seq = last_seq
        self._states = MessageStates(client, changed_ttl)  # type: ignore[arg-type]
        self._logs = RedisLogs(client, changed_ttl)  # type: ignore[arg-type]
        self._max_length_arg = resp.bulk(int(max_length))
        self._trim_arg = resp.bulk("=" if exact_trim else "~")
        self._trim_every_arg = resp.bulk(trim_every(max_length, exact_trim))
        self._marker_ttl_arg = resp.bulk(MARKER_TTL)
        # The commit and each append wait for the replicas when asked (RedisInbox says how).
        waiting = dict(wait_replicas=wait_replicas, wait_timeout_ms=wait_timeout_ms)
        self._commit = BatchedScript(client, lua("commit.lua"), **waiting)
        self._append_bucket = BatchedScript(client, bucket_lua("bucket_append.lua"), **waiting)
        self._finish = BatchedScript(client, lua("finish.lua"))

    # -- a message ---------------------------------------------------------------------------

    async def deliver(self, message: Message, recipient_ids: Sequence[str]) -> Accepted:
        recipients = tuple(dict.fromkeys(recipient_ids))
        sender = message.from_user_id if message.from_user_id in recipients else None
        compact = orjson.dumps(message.public())
        full = compact if message.record_is_public else orjson.dumps(message.to_record())
        work = Work(message.id, compact, full, recipients, sender)
        if message.client_msg_id is not None:
            await self._check_key(message)
        committed = await self._committed(message, full, work)
        if isinstance(committed, Message):  # committed before, under this client_msg_id
            await self._finish_pending(message.conversation, committed.seq)
            await self._confirm(committed, message)
            return Accepted(committed, {})
        seq, earlier = committed
        # The sends committed before this one and not finished: their appends first.
        if earlier:
            earlier = await self._still_pending(message.conversation, earlier)
        for earlier_seq, earlier_work in earlier:
            await self._append_work(earlier_work, earlier_seq)
        cursors = await self._append_work(work, seq)
        await self._finish_all(message.conversation, [earlier_seq for earlier_seq, _ in earlier] + [seq])
        accepted = message.with_seq(seq)
        await self._confirm(accepted, None)
        return Accepted(accepted, cursors)

    async def _still_pending(self, conversation: str, earlier: list[tuple[int, Work]]) -> list[tuple[int, Work]]:
        """Of the earlier sends a commit found pending, those still pending after their own
        gateways had HELP_AFTER seconds to finish them. They are most likely being appended
        right now: waiting a few milliseconds for them costs less than making their appends
        again - every sender of a busy conversation helping every earlier send made the
        appends O(n^2) (seen with 8 sends at once into one group). What is left after
        HELP_AFTER is made here (its gateway died, or is stuck)."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + HELP_AFTER
        pause = 0.001
        pending = self._keys.pending(conversation)
        while True:
            with unavailable("deliver"):  # the seqs only: not the works again
                present = {int(text(field)) for field in await self._client.hkeys(pending)}
            earlier = [entry for entry in earlier if entry[0] in present]
            if not earlier or loop.time() >= give_up_at:
                return earlier
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.02)

    async def _check_key(self, message: Message) -> None:
        """SendSuperseded when another message holds the sender's key (deliver.lua checks it
        in its script; here it is another slot): the retry that took it delivers. Between
        this check and the commit a retry may still take the key: both then commit under one
        sent: record, and the later gets the earlier's message (DUP), never a second copy."""
        assert message.client_msg_id is not None
        key = idempotency_key(message.from_user_id, message.client_msg_id)
        with unavailable("deliver"):
            holder = await self._client.get(key)
        if holder is not None and parse_answer(holder).message.id != message.id:
            raise errors.SendSuperseded()

    async def _committed(self, message: Message, full: bytes, work: Work) -> Message | Committed:
        """commit.lua, seeding a missing counter as RedisInbox does: (seq, the earlier sends
        still pending, by seq), or the message committed before under the client_msg_id."""
        try:
            try:
                reply = await self._run_commit(message, full, work, b"")
            except ResponseError as error:
                if not str(error).startswith("NOSEED"):
                    raise
                seed = await self._last_seq(message.conversation) if self._last_seq is not None else 0
                reply = await self._run_commit(message, full, work, str(seed).encode())
        except ResponseError as error:
            if str(error).startswith("LARGE"):
                raise errors.GroupIsLarge() from None  # nothing was written (commit.lua)
            raise
        if reply[0] == b"DUP":
            return Message.from_record(orjson.loads(reply[2]))
        pairs = reply[1]
        earlier = sorted((int(seq), Work.decode(data)) for seq, data in zip(pairs[::2], pairs[1::2], strict=True))
        return int(reply[0]), earlier

    async def _run_commit(self, message: Message, full: bytes, work: Work, seed: bytes):
        conversation = message.conversation
        bucket = self._keys.bucket_of(conversation)
        keys = [self._keys.seq(conversation), self._keys.seq_complete(bucket), self._keys.persist(bucket),
                self._keys.pending(conversation), self._keys.outbox(bucket)]
        has_key = message.client_msg_id is not None
        if has_key:
            keys.append(self._keys.sent(conversation, message.from_user_id,
                                        idempotency_digest(message.client_msg_id or "")))
        args = [full, b"1" if has_key else b"", str(self._idempotency_ttl).encode(), seed, work.encode(),
                conversation.encode(), message.id.encode()]
        with unavailable("deliver"):
            return await self._commit(len(keys), [resp.bulk(part) for part in (*keys, *args)])

    async def _confirm(self, accepted: Message, attempt: Message | None) -> None:
        """The sender's idempotency answer delivered (`attempt`, this try when the original
        answered, gives way to it). Should this fail the message stands: the answer stays
        pending, and a retry after it expires gets the original from the commit's record."""
        key = accepted.client_msg_id
        if key is None:
            return
        try:
            if attempt is not None and attempt.id != accepted.id:
                await self._idempotency.forget(accepted.from_user_id, key, attempt)
            await self._idempotency.confirm(accepted.from_user_id, key, accepted)
        except Exception as error:  # noqa: BLE001 - accepted all the same (see above)
            log.warning("message %s accepted, its client_msg_id left pending: %r", accepted.id, error)

    # -- the promise ---------------------------------------------------------------------------

    async def _finish_pending(self, conversation: str, seq: int | None) -> None:
        """A send committed before (a retry's DUP, the relay's stale promise): its appends
        made if they are still pending - after those of every earlier send of the
        conversation still pending, in seq order, as a commit's caller makes them - and
        their promises removed."""
        if seq is None:
            return
        with unavailable("deliver"):
            pending = await self._client.hgetall(self._keys.pending(conversation))
        due = sorted((int(text(field)), Work.decode(data)) for field, data in pending.items())
        due = [(due_seq, work) for due_seq, work in due if due_seq <= seq]
        for due_seq, work in due:
            await self._append_work(work, due_seq)
        if due:
            await self._finish_all(conversation, [due_seq for due_seq, _ in due])

    async def _finish_all(self, conversation: str, seqs: Iterable[int]) -> None:
        bucket = self._keys.bucket_of(conversation)
        keys = [resp.bulk(self._keys.pending(conversation)), resp.bulk(self._keys.outbox(bucket))]
        with unavailable("deliver"):
            await asyncio.gather(*(self._finish(2, [*keys, resp.bulk(seq), resp.bulk(conversation)]) for seq in seqs))

    async def finish_stale(self, bucket: int, older_than_ms: int = STALE_AFTER_MS) -> int:
        """The relay (the worker): every send of the bucket's conversations committed more
        than `older_than_ms` ago whose promise is still there gets its appends (those not
        made) and loses its promise. Returns how many were finished."""
        outbox = self._keys.outbox(bucket)
        with unavailable("relay"):
            now_s, now_us = await self._client.time()
            stale = await self._client.zrangebyscore(outbox, "-inf", now_s * 1000 + now_us // 1000 - older_than_ms)
        finished = 0
        for member in sorted(stale, key=_by_seq):
            conversation, seq = text(member).rsplit(" ", 1)
            await self._finish_pending(conversation, int(seq))
            with unavailable("relay"):  # a promise whose hash entry is gone (finished meanwhile)
                await self._client.zrem(outbox, member)
            finished += 1
        return finished

    # -- the appends -------------------------------------------------------------------------

    async def append(self, change: Appended, recipient_ids: Sequence[str]) -> dict[str, str]:
        if isinstance(change, MessageChange):
            await self._states.keep(change)  # first, as RedisInbox.append says why
        record = orjson.dumps(change.to_record())
        work = Work(change.id, record, record, tuple(dict.fromkeys(recipient_ids)), None)
        cursors = await self._append_work(work, None)
        return cursors if any(cursors.values()) else {}

    async def _append_work(self, work: Work, seq: int | None) -> dict[str, str]:
        """The work's appends, one bucket_append.lua per bucket, all at once (BatchedScript
        sends each node its share in one write). Each recipient's cursor ('' for those of a
        bucket appended before)."""
        by_bucket: dict[int, list[str]] = {}
        for user_id in work.recipients:
            by_bucket.setdefault(self._keys.bucket_of(user_id), []).append(user_id)
        buckets = list(by_bucket.items())
        with unavailable("deliver"):
            replies = await asyncio.gather(*(self._append_one(work, seq, bucket, users) for bucket, users in buckets))
        cursors: dict[str, str] = {}
        for (_, users), (shared, own) in zip(buckets, replies, strict=True):
            cursors.update(dict.fromkeys(users, text(shared)))
            for position, cursor in zip(own[::2], own[1::2], strict=True):
                cursors[users[int(position) - 1]] = text(cursor)
        return cursors

    def _append_one(self, work: Work, seq: int | None, bucket: int, users: list[str]):
        keys = [self._keys.generator(bucket), self._keys.appended(bucket, work.event_id),
                self._keys.audience(bucket), self._keys.leases(bucket), *map(self._keys.log, users)]
        sender = users.index(work.sender) + 1 if work.sender in users else 0
        head = envelope.head(work.own_record, (orjson.dumps(user_id) for user_id in users))
        args = [self._max_length_arg, self._trim_arg, resp.bulk(work.record),
                resp.bulk(work.own_record if sender else b""), resp.bulk(self._keys.channel_prefix(bucket)),
                self._trim_every_arg, resp.bulk(b"" if seq is None else str(seq).encode()), resp.bulk(head),
                resp.bulk(sender), self._marker_ttl_arg]
        return self._append_bucket(len(keys), [*map(resp.bulk, keys), *args])

    # -- reads -------------------------------------------------------------------------------

    async def read(self, user_id: str, after: str | None, limit: int) -> list[Delivery]:
        return await self._logs.read(self._keys.log(user_id), after, limit)

    async def last_cursor(self, user_id: str) -> str | None:
        return await self._logs.last_cursor(self._keys.log(user_id))


def _by_seq(member: bytes | str) -> tuple[str, int]:
    conversation, seq = text(member).rsplit(" ", 1)
    return conversation, int(seq)
