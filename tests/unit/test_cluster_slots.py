"""The large-group scripts documented as single-slot (docs/design/large-groups.md,
section 2.1, "Cluster"): the keys RedisGroupStreams passes to lg_deliver.lua,
lg_read.lua, lg_record.lua and lg_change.lua (a join, a leave, an owner change) all
hash to the group's slot, for any group id - what lets each run as one script on one
node of a Redis Cluster (issue 19). No server: the keys are the ones the adapter passes
to a recording client, hashed with redis-py's own key_slot.

The switch is the exception on one Redis (section 2.1: seq:g:<G>, seq:complete and
stream:last-id, one script there); on a cluster (the adapter given ClusterKeys) it is made
in steps of one slot each (adapters/redis/cluster_switch.py): the counter's close in the
counter's bucket, the group's start in the group's slot."""
from __future__ import annotations

import random
import uuid

import pytest
from redis.crc import key_slot

from adapters.redis import resp
from adapters.redis.buckets import Buckets
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.group_streams import RedisGroupStreams
from adapters.redis.support import bucket_lua, lua
from application.ports import JOIN, LEAVE, OWNER, GroupSwitch, LoggedChange, MemberChange
from domain.events import MEMBER_ADDED, MESSAGE_UPDATED, GroupChange, MessageChange, edit_event_id
from domain.model import GROUP, Message

SCRIPTS = ("lg_deliver.lua", "lg_read.lua", "lg_record.lua", "lg_change.lua", "changed.lua", "lg_close.lua")
REPLIES = {"lg_change.lua": [b"APPLIED", b"1-1"], "lg_read.lua": [b"OK", []], "lg_record.lua": [b"APPLIED", b"1-2"],
           "changed.lua": 1, "lg_close.lua": [b"3", 0, b""], "bucket_publish.lua": 1}


class RecordingClient:
    """What RedisGroupStreams asks of its client, recording each script's keys."""

    def __init__(self):
        self.calls: list[tuple[str, list[bytes]]] = []
        self._names = {lua(name): name for name in SCRIPTS}
        self._names[bucket_lua("bucket_publish.lua")] = "bucket_publish.lua"  # a cluster switch's announcement

    def register_script(self, script: str):
        name = self._names[script]

        async def call(keys, args):
            self.calls.append((name, [encode(key) for key in keys]))
            return REPLIES[name]

        return call

    def pipeline(self, transaction: bool = True):  # lgm:<U> and lg:streams: the user's side
        return _Pipeline(self)

    async def mget(self, keys):  # a cluster switch's floor: the buckets' generators
        self.calls.append(("MGET", [encode(key) for key in keys]))
        return [None] * len(keys)



class _Pipeline:
    def __init__(self, client: RecordingClient):
        self._client = client

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        return None

    def __getattr__(self, command):
        return lambda *args, **kwargs: None

    async def execute(self):
        return []


def encode(key) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode()


def recording_streams(keys: ClusterKeys | None = None) -> tuple[RedisGroupStreams, RecordingClient]:
    client = RecordingClient()
    streams = RedisGroupStreams(client, keys=keys)  # type: ignore[arg-type]

    async def deliver(numkeys: int, arguments: list[bytes]):  # in place of BatchedScript
        client.calls.append(("lg_deliver.lua", [resp.unbulk(argument) for argument in arguments[:numkeys]]))
        return [b"5-0", 1]

    streams._deliver = deliver  # type: ignore[assignment]
    return streams, client


def group_ids() -> list[str]:
    rng = random.Random(19)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20)] + ["1", "g", "{x}", "a}b{c"]


def new_id() -> str:
    return str(uuid.uuid4())


def keys_of(client: RecordingClient, script: str) -> list[list[bytes]]:
    found = [keys for name, keys in client.calls if name == script]
    assert found, f"{script} was not called"
    return found


def assert_one_slot(group_id: str, key_lists: list[list[bytes]]) -> None:
    group_slot = key_slot(f"lg:{{{group_id}}}".encode())
    for keys in key_lists:
        assert {key: key_slot(key) for key in keys} == {key: group_slot for key in keys}


@pytest.mark.parametrize("group_id", group_ids())
@pytest.mark.gen_test
async def test_a_large_groups_message_read_edit_join_leave_and_owner_change_keep_to_its_slot(group_id):
    streams, client = recording_streams()
    sender, joiner = new_id(), new_id()
    sent = Message(type=GROUP, id=new_id(), from_user_id=sender, content="x", created_at=1_700_000_000,
                   group_id=group_id)
    await streams.deliver(sent)
    await streams.deliver(Message(type=GROUP, id=new_id(), from_user_id=sender, content="y",
                                  created_at=1_700_000_000, group_id=group_id, client_msg_id="c-1"))
    await streams.read(group_id, sender, (0, 0), 10)
    edited = sent.with_change("x, edited", 1_700_000_100, None)
    await streams.apply(LoggedChange(group_id, MessageChange(
        MESSAGE_UPDATED, edit_event_id(sent.id, edited.content, 1_700_000_100), edited)))
    record = GroupChange(MEMBER_ADDED, new_id(), group_id, sender, 1_700_000_000, user_id=joiner)
    await streams.apply(MemberChange(JOIN, group_id, new_id(), 4, (joiner,), record))
    await streams.apply(MemberChange(LEAVE, group_id, new_id(), 5, (joiner,)))
    await streams.apply(MemberChange(OWNER, group_id, new_id(), 6, owner_id=joiner))

    delivered = keys_of(client, "lg_deliver.lua")
    assert [len(keys) for keys in delivered] == [5, 5]  # lg:{G}, :log, :persist, :members, :sent:*
    assert_one_slot(group_id, delivered)
    assert_one_slot(group_id, keys_of(client, "lg_read.lua"))
    assert_one_slot(group_id, keys_of(client, "lg_record.lua"))
    changes = keys_of(client, "lg_change.lua")
    assert [len(keys) for keys in changes] == [4, 4, 4]
    assert_one_slot(group_id, changes)


@pytest.mark.parametrize("group_id", group_ids())
@pytest.mark.gen_test
async def test_the_switch_keeps_to_the_groups_slot(group_id):
    """On a cluster: the start in the group's slot, the close in its counter's."""
    keys = ClusterKeys(Buckets())
    streams, client = recording_streams(keys)
    await streams.apply(GroupSwitch(group_id, new_id(), 3, 1, "owner", False, ("owner", "member")))
    changes = keys_of(client, "lg_change.lua")
    assert [len(found) for found in changes] == [4]
    assert_one_slot(group_id, changes)
    (closed,) = keys_of(client, "lg_close.lua")
    counter = keys.seq(f"g:{group_id}").encode()
    assert closed[0] == counter
    assert {key_slot(key) for key in closed} == {key_slot(counter)}
    # The floor's bound read from every bucket's generator; the announcement in each member's
    # bucket, by a script there.
    (generators,) = keys_of(client, "MGET")
    assert len(generators) == keys.buckets.count
    announced = keys_of(client, "bucket_publish.lua")
    buckets = {keys.bucket_of(user) for user in ("owner", "member")}
    assert sorted(announced) == sorted([keys.audience(bucket).encode(), keys.leases(bucket).encode()]
                                       for bucket in buckets)
    assert all(key_slot(audience) == key_slot(leases) for audience, leases in announced)


@pytest.mark.gen_test
async def test_the_switch_on_one_redis_is_out_of_slot_by_exactly_its_three_small_path_keys():
    """One Redis keeps its one script, and its key names: the other four are in the slot."""
    streams, client = recording_streams()
    group_id = group_ids()[0]
    await streams.apply(GroupSwitch(group_id, new_id(), 3, 1, "owner", False, ("owner", "member")))
    (keys,) = keys_of(client, "lg_change.lua")
    group_slot = key_slot(f"lg:{{{group_id}}}".encode())
    outside = [key for key in keys if key_slot(key) != group_slot]
    assert outside == [f"seq:g:{group_id}".encode(), b"seq:complete", b"stream:last-id"]
