"""The cluster inbox's scripts each keep to one slot (docs/design/redis-cluster.md, section 3;
issue 19: "a check with no server computes the slot of every key and channel each script
touches"): the keys RedisClusterInbox passes to commit.lua, bucket_append.lua and finish.lua,
and the channels bucket_append.lua publishes on (its audience's keys among the others), for
random users, groups and private chats.
No server: the scripts are replaced by recorders, and slots are redis-py's key_slot."""
from __future__ import annotations

import random
import uuid

import pytest
from redis.crc import key_slot

from adapters.redis import resp
from adapters.redis.buckets import Buckets
from adapters.redis.cluster_inbox import RedisClusterInbox
from domain.events import MEMBER_ADDED, GroupChange
from domain.model import GROUP, PRIVATE, Message

# The channels' prefix is bucket_append.lua's ARGV[5], after its keys; a gateway's id follows it.
CHANNEL_ARGUMENT = 5
GATEWAY_ID = uuid.uuid4().hex


class _Client:
    def register_script(self, script: str):
        return None

    async def get(self, key):  # the sender's idempotency key: free
        return None


class Recorder:
    def __init__(self, reply):
        self.calls: list[tuple[list[bytes], list[bytes]]] = []
        self._reply = reply

    async def __call__(self, numkeys: int, arguments: list[bytes]):
        unpacked = [resp.unbulk(argument) for argument in arguments]
        self.calls.append((unpacked[:numkeys], unpacked[numkeys:]))
        return self._reply


class _Keys:
    async def confirm(self, *args):
        return None

    async def forget(self, *args):
        return None


def recording_inbox(buckets: Buckets) -> tuple[RedisClusterInbox, dict[str, Recorder]]:
    inbox = RedisClusterInbox(_Client(), buckets, _Keys())  # type: ignore[arg-type]
    recorders = {"commit": Recorder([b"1", []]), "append": Recorder([b"1-0", []]), "finish": Recorder(1)}
    inbox._commit, inbox._append_bucket, inbox._finish = (  # type: ignore[assignment]
        recorders["commit"], recorders["append"], recorders["finish"])
    return inbox, recorders


def ids(rng: random.Random, count: int) -> list[str]:
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def one_slot(keys: list[bytes]) -> int:
    slots = {key_slot(key) for key in keys}
    assert len(slots) == 1, {key: key_slot(key) for key in keys}
    return slots.pop()


@pytest.mark.parametrize("count", [1, 7, 256])
@pytest.mark.gen_test
async def test_every_script_of_a_send_and_of_a_change_touches_one_slot_and_publishes_in_it(count):
    rng = random.Random(count)
    buckets = Buckets(count)
    inbox, recorders = recording_inbox(buckets)
    people = ids(rng, 40)
    group_id = ids(rng, 1)[0]
    await inbox.deliver(Message(type=GROUP, id=ids(rng, 1)[0], from_user_id=people[0], content="to the group",
                                created_at=1_700_000_000, group_id=group_id, client_msg_id="c-1"), people)
    await inbox.deliver(Message(type=PRIVATE, id=ids(rng, 1)[0], from_user_id=people[1], content="to one",
                                created_at=1_700_000_000, to_user_id=people[2]), people[1:3])
    await inbox.append(GroupChange(MEMBER_ADDED, ids(rng, 1)[0], group_id, people[0], 1_700_000_000,
                                   user_id=people[3]), people)

    commits = recorders["commit"].calls
    assert [len(keys) for keys, _ in commits] == [6, 5]  # with the sent: key, without
    for keys, _ in commits + recorders["finish"].calls:
        one_slot(keys)
    appends = recorders["append"].calls
    # One append per bucket holding a recipient, for each of the three events.
    expected = sum(len({buckets.of(user) for user in users}) for users in (people, people[1:3], people))
    assert len(appends) == expected
    for keys, args in appends:
        assert one_slot([*keys, args[CHANNEL_ARGUMENT - 1] + GATEWAY_ID.encode()]) == one_slot(keys)
    # Each user's log is appended to in the user's bucket's slot, and nowhere else.
    logs = [key for keys, _ in appends for key in keys[4:]]
    for user in people:
        own = [key for key in logs if key.endswith(user.encode())]
        assert {key_slot(key) for key in own} == {key_slot(buckets.tag_of(user).encode())}
