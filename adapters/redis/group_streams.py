"""The production GroupStreams (docs/design/large-groups.md, sections 2.1 and 4-5): one
stream per large group, lg:{G}:log, and everything else about the group in the same slot
(hash tag {G}), written by two scripts - lg_deliver.lua (a message) and lg_change.lua
(the switch, joins, leaves, owner changes) - and read by a third, lg_read.lua (a page
clipped to one member's intervals). A message's edit or deletion is a fourth,
lg_record.lua (its event once in the log), with the message's state kept in
changed:{message_id} (adapters/redis/message_states.py), which read() lays over the
message's entry. Beside them, outside the group's slot:
- lgm:<U>, the large groups a user is or was in (written before a change is applied,
  so a resume always knows the group), and lg:streams, sno -> group id;
- the small path's counter seq:g:<G>, which the switch switches off ('L': deliver.lua
  then answers LARGE), and stream:last-id, which places the floor.
On a Redis Cluster (given its `keys`) the small path's keys are the buckets' (ClusterKeys)
and the switch is made in steps of one slot each (adapters/redis/cluster_switch.py).
lgm:<U> and lg:streams are by bucket there (adapters/redis/large_group_keys.py): both are
written before the switch and are safe to leave behind should it fail (memberships passes
over a group without state; a stream number is never given to another group).

After a loss of Redis's data, `courier worker` restores each large group's state from SQL
through the switch (restore; adapters/redis/seq_counters.py) before it sets seq:complete."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from adapters.redis import envelope, resp
from adapters.redis.batched_script import BatchedScript
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.cluster_switch import ClusterSwitch
from adapters.redis.idempotency import idempotency_key
from adapters.redis.inbox import CURSOR_GENERATOR, NOTIFICATION_CHANNEL, SEQ_COMPLETE, SEQ_COUNTER, trim_every
from adapters.redis.large_group_keys import LargeGroupKeys
from adapters.redis.message_states import CHANGED_TTL, MessageStates
from adapters.redis.support import lua, text, unavailable
from application.ports import (
    APPLIED,
    DONE,
    WAIT,
    Applied,
    GroupMembership,
    GroupPosted,
    GroupStreams,
    GroupSwitch,
    LoggedChange,
    MemberChange,
    StreamEntry,
)
from domain import errors
from domain.cursor import Position, stream_id
from domain.events import MessageChange, event_from_record
from domain.model import Message, cursor_position
from domain.vector import Interval

STATE = "lg:{{{}}}"  # hash: sno, seq, mv, owner, kind, floor
LOG = "lg:{{{}}}:log"
PERSIST = "lg:{{{}}}:persist"
MEMBERS = "lg:{{{}}}:members"
SENT = "lg:{{{}}}:sent:{}"  # a message accepted under (sender, client_msg_id): its id and record
DONE_MARKER = "lg:{{{}}}:done:{}"  # an applied change's place
CHANNEL = "lg:{{{}}}:n"
SENT_TTL = 24 * 3600
SWITCH_WAIT = 3.0  # a send to a group half switched on a cluster waits this long for its stream
DONE_TTL = 7 * 24 * 3600


class RedisGroupStreams(GroupStreams):
    """`max_length` bounds each group's log (COURIER_GROUP_STREAM_MAXLEN), trimmed as an
    inbox is (RedisInbox: approximate unless `exact_trim`). `channel` is the main
    notification channel, where a switch is announced. `last_seq` (MessageStore.last_seq)
    seeds a switch whose small counter is missing while seq:complete is missing too, as
    RedisInbox seeds a send. `keys`: the layout of a Redis Cluster (None on one Redis)."""

    def __init__(self, client: aioredis.Redis, max_length: int = 10_000, *, exact_trim: bool = False,
                 channel: str = NOTIFICATION_CHANNEL, sent_ttl: int = SENT_TTL, done_ttl: int = DONE_TTL,
                 last_seq: Callable[[str], Awaitable[int]] | None = None, changed_ttl: int = CHANGED_TTL,
                 keys: ClusterKeys | None = None):
        self._client = client
        self._cluster = None if keys is None else ClusterSwitch(client, keys)  # type: ignore[arg-type]
        self._names = LargeGroupKeys(keys)
        self._states = MessageStates(client, changed_ttl)
        self._channel = channel
        self._done_ttl = int(done_ttl)
        self._last_seq = last_seq
        self._max_length, self._trim = int(max_length), "=" if exact_trim else "~"
        # lg_deliver.lua's fixed arguments, packed once (resp.py says why).
        self._max_length_arg = resp.bulk(int(max_length))
        self._trim_arg = resp.bulk("=" if exact_trim else "~")
        self._trim_every_arg = resp.bulk(trim_every(max_length, exact_trim))
        self._sent_ttl_arg = resp.bulk(int(sent_ttl))
        # The send goes at most once, batched with the other sends of the turn (BatchedScript).
        self._deliver = BatchedScript(client, lua("lg_deliver.lua"))
        self._change = client.register_script(lua("lg_change.lua"))
        self._read = client.register_script(lua("lg_read.lua"))
        self._record = client.register_script(lua("lg_record.lua"))

    async def memberships(self, user_id: str, streams: Collection[int]) -> list[GroupMembership]:
        wanted = list(dict.fromkeys(streams))
        with unavailable("memberships"):
            by_hash = self._names.by_hash(wanted)
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.smembers(self._names.groups_of(user_id))
                for key, streams in by_hash.items():
                    pipe.hmget(key, streams)
                found = await pipe.execute()
        group_ids = sorted(text(group_id) for group_id in found[0])
        group_of = {stream: group_id for streams, named in zip(by_hash.values(), found[1:], strict=True)
                    for stream, group_id in zip(streams, named, strict=True)}
        group_ids += [text(group_of[stream]) for stream in wanted if group_of[stream] is not None]
        group_ids = list(dict.fromkeys(group_ids))
        if not group_ids:
            return []
        with unavailable("memberships"):
            async with self._client.pipeline(transaction=False) as pipe:
                for group_id in group_ids:
                    pipe.hget(STATE.format(group_id), "sno")
                    pipe.hget(MEMBERS.format(group_id), user_id)
                    pipe.xrevrange(LOG.format(group_id), count=1)
                replies = await pipe.execute()
        memberships = []
        for index, group_id in enumerate(group_ids):
            stream, intervals, newest = replies[3 * index: 3 * index + 3]
            if stream is None or not newest:
                continue  # its switch is not applied yet (lgm:<U> is written first)
            memberships.append(GroupMembership(group_id, int(stream), _intervals(intervals),
                                               cursor_position(text(newest[0][0]))))
        return memberships

    async def is_member(self, group_id: str, user_id: str) -> bool | None:
        with unavailable("is_member"):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.exists(STATE.format(group_id))
                pipe.hget(MEMBERS.format(group_id), user_id)
                switched, intervals = await pipe.execute()
        if not switched:
            return None
        return intervals is not None and text(intervals).endswith(",+")

    async def intervals(self, group_id: str, user_ids: Sequence[str]) -> dict[str, tuple[Interval, ...]]:
        if not user_ids:
            return {}
        with unavailable("intervals"):
            kept = await self._client.hmget(MEMBERS.format(group_id), list(user_ids))
        return {user_id: _intervals(record) for user_id, record in zip(user_ids, kept, strict=True)
                if record is not None}

    async def read(self, group_id: str, user_id: str, after: Position, limit: int) -> list[StreamEntry]:
        with unavailable("read"):
            reply = await self._read(keys=[LOG.format(group_id), MEMBERS.format(group_id)],
                                     args=[user_id, stream_id(after), max(0, limit)])
        status = text(reply[0])
        if status == "UNKNOWN":
            raise errors.CursorUnknown()
        if status == "EXPIRED":
            raise errors.CursorExpired()
        return await self._states.lay_over([_entry(entry) for entry in reply[1]], _event_of, _with_event)

    async def deliver(self, message: Message) -> GroupPosted:
        group_id = str(message.group_id)
        record = orjson.dumps(message.to_record())  # seq is added by the script
        sent = SENT.format(group_id, "")
        if message.client_msg_id is not None:
            # The digest of the sender's idempotency key: the same (sender, client_msg_id).
            sent = SENT.format(group_id, idempotency_key(message.from_user_id, message.client_msg_id)[5:])
        keys = [STATE.format(group_id), LOG.format(group_id), PERSIST.format(group_id), MEMBERS.format(group_id),
                sent]
        args = [resp.bulk_bytes(record), resp.bulk(message.from_user_id), self._max_length_arg, self._trim_arg,
                self._trim_every_arg, resp.bulk("1" if message.client_msg_id is not None else ""),
                self._sent_ttl_arg, resp.bulk_bytes(envelope.group_head(group_id, record)),
                resp.bulk(CHANNEL.format(group_id))]
        try:
            with unavailable("deliver"):
                reply = await self._deliver(len(keys), [resp.bulk(key) for key in keys] + args)
        except ResponseError as error:
            refusal = _refusal(str(error))
            if refusal is None:
                raise
            if isinstance(refusal, errors.NoGroupStream):
                if await self._switch_under_way(group_id):
                    return await self.deliver(message)
                await self._check_not_lost(group_id)
            raise refusal from None
        if text(reply[0]) == "DUP":
            original = Message.from_record(orjson.loads(reply[2]))
            return GroupPosted(original, cursor_position(text(reply[1])), duplicate=True)
        return GroupPosted(message.with_seq(int(reply[1])), cursor_position(text(reply[0])))

    async def _check_not_lost(self, group_id: str) -> None:
        """No state for a group SQL says is large: its switch is on its way (the caller
        sends by the small path, whose counter still counts) - unless Redis lost its data
        (seq:complete is gone too): the small path would then fan a large group out, so
        the send waits for the worker's rebuild (section 4.1)."""
        marker = SEQ_COMPLETE if self._cluster is None else self._cluster.seq_complete(group_id)
        with unavailable("deliver"):
            complete = await self._client.exists(marker)
        if not complete:
            raise errors.ServiceUnavailable("the message store is being rebuilt; retry shortly")

    async def _switch_under_way(self, group_id: str) -> bool:
        """On a cluster, between the switch's close and its start (cluster_switch.py) the
        group has neither path: True once its state exists (send again), False when its
        small counter still counts (the caller takes the small path); ServiceUnavailable
        when the switch does not finish meanwhile (its relay will)."""
        if self._cluster is None:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SWITCH_WAIT
        with unavailable("deliver"):
            if await self._client.get(self._cluster.counter(group_id)) not in (b"L", "L"):
                return False
            while loop.time() < deadline:
                if await self._client.exists(STATE.format(group_id)):
                    return True
                await asyncio.sleep(0.02)
        raise errors.ServiceUnavailable("the group's switch to a stream is being made; retry shortly")

    async def apply(self, change: GroupSwitch | MemberChange | LoggedChange) -> Applied:
        if isinstance(change, GroupSwitch):
            return await self._switch(change)
        if isinstance(change, LoggedChange):
            return await self._log(change)
        group_id = change.group_id
        await self._note_groups(group_id, change.user_ids)
        keys = [STATE.format(group_id), LOG.format(group_id), MEMBERS.format(group_id),
                DONE_MARKER.format(group_id, change.event_id)]
        record = b"" if change.record is None else orjson.dumps(change.record.to_record())
        head = b"" if not change.user_ids else envelope.member_head(group_id, change.user_ids)
        args = [change.kind, change.version, self._done_ttl, CHANNEL.format(group_id), change.owner_id or "",
                record, head, *change.user_ids]
        with unavailable("apply"):
            return _applied(await self._change(keys=keys, args=args))

    async def _log(self, change: LoggedChange) -> Applied:
        """A message's edit or deletion: its state first (should the script fail, the relay
        does both again, each idempotent; a read may then show the change before its
        event, as history does), then its event once in the log. A rename: its event."""
        if isinstance(change.record, MessageChange):
            await self._states.keep(change.record, "apply")
        group_id = change.group_id
        record = orjson.dumps(change.record.to_record())
        keys = [STATE.format(group_id), LOG.format(group_id), DONE_MARKER.format(group_id, change.event_id)]
        args = [record, self._max_length, self._trim, self._done_ttl, CHANNEL.format(group_id),
                envelope.group_head(group_id, record)]
        with unavailable("apply"):
            return _applied(await self._record(keys=keys, args=args))

    async def restore(self, switch: GroupSwitch, seq: int) -> Applied:
        """A large group's state again after Redis lost its data (section 7.3: the worker's
        rebuild, adapters/redis/seq_counters.py), by the switch itself, from what SQL holds
        now: `switch` carries the group's member version, owner, kind and current members,
        and `seq` is the highest seq the database holds of it. As at a switch: lgm:<U> and
        lg:streams first, then lg_change.lua puts every member open at a new floor (a
        `switched` marker after every id the log and stream:last-id hold), writes lg:{G}
        with the counter seeded at `seq` (unless a counter exists: seeded from the
        database too, by SET NX) and poisons seq:g:<G>. A group whose state exists is left
        as it is. A counter left at 'L' without the state (LOST: a partial loss) is dropped
        and the switch made again, from `seq`."""
        try:
            return await self._switch(switch, seed=seq)
        except ResponseError as error:
            if not str(error).startswith("LOST"):
                raise
        counter = SEQ_COUNTER.format("g:" + switch.group_id)
        if self._cluster is not None:
            counter = self._cluster.counter(switch.group_id)
        with unavailable("switch"):
            await self._client.delete(counter)
        return await self._switch(switch, seed=seq)

    async def _switch(self, switch: GroupSwitch, seed: int | None = None) -> Applied:
        """The switch; with `seed`, the counter's start should the counter be missing
        (else asked from the database only when the script answers NOSEED)."""
        group_id = switch.group_id
        # Step 1 of section 4.3: a resume that starts after the switch knows the group.
        await self._note_groups(group_id, switch.member_ids, stream=switch.stream)
        if self._cluster is not None:
            return await self._cluster_switch(switch, seed)
        keys = [STATE.format(group_id), LOG.format(group_id), MEMBERS.format(group_id),
                DONE_MARKER.format(group_id, switch.event_id), SEQ_COUNTER.format("g:" + group_id), SEQ_COMPLETE,
                CURSOR_GENERATOR]
        head = envelope.switched_head(group_id, switch.stream, switch.member_ids)
        args = ["switch", switch.version, self._done_ttl, self._channel, switch.owner_id, switch.stream,
                "channel" if switch.channel else "group"]
        with unavailable("switch"):
            if seed is None:
                try:
                    return _applied(await self._change(keys=keys, args=[*args, "", head, "", *switch.member_ids]))
                except ResponseError as error:
                    if not str(error).startswith("NOSEED"):
                        raise
                # The script changed nothing: call it again with the counter's start.
                seed = await self._last_seq("g:" + group_id) if self._last_seq is not None else 0
            return _applied(await self._change(keys=keys, args=[*args, seed, head, "", *switch.member_ids]))

    async def _cluster_switch(self, switch: GroupSwitch, seed: int | None) -> Applied:
        """The switch on a cluster, in the steps of cluster_switch.py. With `seed` (a
        restore) the stream starts after the higher of the seed and the closed counter:
        a counter closed before a loss of the group's state is behind the database."""
        assert self._cluster is not None
        group_id = switch.group_id
        with unavailable("switch"):
            closed = await self._cluster.close(group_id, seed, self._last_seq)
            await self._cluster.settle(group_id, closed.pending)
            bound = await self._cluster.floor_bound()
            seq = closed.seq if seed is None else max(closed.seq, seed)
            keys = [STATE.format(group_id), LOG.format(group_id), MEMBERS.format(group_id),
                    DONE_MARKER.format(group_id, switch.event_id)]
            args = ["switch", switch.version, self._done_ttl, "", switch.owner_id, switch.stream,
                    "channel" if switch.channel else "group", seq, "", bound, *switch.member_ids]
            applied = _applied(await self._change(keys=keys, args=args))
            assert applied.position is not None  # a switch is always applied (or was)
            await self._cluster.announce(group_id, switch.stream, switch.member_ids, stream_id(applied.position))
        return applied

    async def _note_groups(self, group_id: str, user_ids: Collection[str], stream: int | None = None) -> None:
        """lgm:<U> for each user (and lg:streams at a switch): idempotent, and written
        before the script, so a user whose change is applied always finds the group."""
        if not user_ids and stream is None:
            return
        with unavailable("apply"):
            async with self._client.pipeline(transaction=False) as pipe:
                if stream is not None:
                    pipe.hset(self._names.streams(stream), str(stream), group_id)
                for user_id in user_ids:
                    pipe.sadd(self._names.groups_of(user_id), group_id)
                await pipe.execute()


def _refusal(reply: str) -> errors.CourierError | None:
    """lg_deliver.lua's refusals (it wrote nothing) as the domain's errors."""
    if reply.startswith("NOSTATE"):
        return errors.NoGroupStream()
    if reply.startswith("NOTMEMBER"):
        return errors.NotAMember()
    if reply.startswith("NOTALLOWED"):
        return errors.NotAllowed()
    return None


def _applied(reply: list) -> Applied:
    status = text(reply[0])
    if status == "APPLIED":
        return Applied(APPLIED, cursor_position(text(reply[1])))
    return Applied(DONE if status == "DONE" else WAIT)


def _intervals(kept: bytes | str | None) -> tuple[Interval, ...]:
    """lg:{G}:members' 'join,leave;join,+' as intervals, oldest first."""
    if kept is None:
        return ()
    intervals = []
    for part in text(kept).split(";"):
        join, leave = part.split(",")
        intervals.append(Interval(cursor_position(join), None if leave == "+" else cursor_position(leave)))
    return tuple(intervals)


def _event_of(entry: StreamEntry):
    return entry.event


def _with_event(entry: StreamEntry, message: Message) -> StreamEntry:
    return StreamEntry(entry.position, message)


def _entry(entry) -> StreamEntry:
    entry_id, fields = entry
    values = dict(zip(fields[::2], fields[1::2], strict=True)) if isinstance(fields, list) else fields
    record = values.get(b"m", values.get("m"))
    return StreamEntry(cursor_position(text(entry_id)), event_from_record(orjson.loads(record)))
