"""The scripts and MULTIs of the adapters of users' and gateways' state each keep to one slot
on the cluster's layout (adapters/redis/layout.py; docs/design/redis-cluster.md, section 9:
"a check with no server"): presence (whose scripts also touch users' hashes and gateways'
sets they do not declare: under the same tag), socket caps, cursor checkpoints, the group
cache, revocations and rate limits, for random users. No server: the scripts are replaced
by recorders, and slots are redis-py's key_slot. On one Redis's layout the names are the
ones deployments have today."""
from __future__ import annotations

import random
import time
import uuid

import pytest
from redis.crc import key_slot

from adapters.redis.buckets import Buckets
from adapters.redis.cache import generation_key, group_key
from adapters.redis.checkpoints import RedisCursorCheckpoints
from adapters.redis.connection_counter import RedisConnectionCounter
from adapters.redis.layout import SINGLE, ClusterLayout
from adapters.redis.limits import RedisFailureThrottle, RedisRateLimiter
from adapters.redis.presence_store import RedisPresenceStore
from adapters.redis.revocations import RedisTokenRevocations
from application.ports import TokenClaims


class Recorder:
    def __init__(self, reply):
        self.calls: list[tuple[list[str], list]] = []
        self._reply = reply

    async def __call__(self, keys=(), args=(), client=None):
        self.calls.append((list(keys), list(args)))
        return self._reply


class _Client:
    """Hands out a recorder per script, in the order registered."""

    def __init__(self, replies: list):
        self._replies = list(replies)
        self.scripts: list[Recorder] = []

    def register_script(self, script: str) -> Recorder:
        recorder = Recorder(self._replies.pop(0) if self._replies else 1)
        self.scripts.append(recorder)
        return recorder


def ids(rng: random.Random, count: int) -> list[str]:
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def one_slot(keys) -> int:
    slots = {key_slot(key.encode() if isinstance(key, str) else key) for key in keys}
    assert len(slots) == 1, {key: key_slot(key) for key in keys}
    return slots.pop()


LAYOUT = ClusterLayout(Buckets())


@pytest.mark.gen_test
async def test_presence_keeps_every_key_it_touches_in_one_slot():
    rng = random.Random(1)
    client = _Client([[b"ok"], [0]])
    store = RedisPresenceStore(client, 1.0, gateway_id="gw", layout=LAYOUT)  # type: ignore[arg-type]
    apply, expire = client.scripts
    users = ids(rng, 50)
    await store.arrived(users)
    await store.left(users[:10])
    await store.expire()
    calls = apply.calls + expire.calls
    assert calls
    slots = set()
    for keys, args in apply.calls:
        slot = one_slot(keys)
        users_prefix = args[4]  # presence_apply.lua's ARGV[5]
        slots |= {slot, one_slot([users_prefix + user for user in users])}
    for keys, args in expire.calls:
        users_prefix, sets_prefix = args[0], args[1]
        slots |= {one_slot(keys), one_slot([users_prefix + user for user in users]),
                  one_slot([sets_prefix + store.name, sets_prefix + "another:1234"])}
    assert slots == {key_slot(b"{presence}")}  # one slot, the service's


@pytest.mark.gen_test
async def test_socket_caps_keep_a_users_counts_and_the_leases_in_one_slot():
    rng = random.Random(2)
    client = _Client([1, 1, 1])
    counter = RedisConnectionCounter(client, 5, layout=LAYOUT)  # type: ignore[arg-type]
    acquire, release, renew = client.scripts
    for user in ids(rng, 50):
        await counter.acquire(user)
        await counter.release(user)
    await counter._renew()
    keys = [key for recorder in (acquire, release, renew) for call_keys, _ in recorder.calls for key in call_keys]
    assert len(keys) == 50 * 3 + 1
    assert one_slot(keys) == key_slot(b"{ws}")


@pytest.mark.parametrize("count", [1, 7, 256])
def test_a_users_checkpoint_keys_share_the_users_bucket_slot(count):
    rng = random.Random(count)
    buckets = Buckets(count)
    checkpoints = RedisCursorCheckpoints(None, layout=ClusterLayout(buckets))  # type: ignore[arg-type]
    for user in ids(rng, 50):
        keys = [checkpoints.next_key(user), checkpoints._digest_key(user, "1=5-0,2=7-1")]
        keys += [checkpoints.slot_key(user, checkpoint) for checkpoint in range(100)]
        assert one_slot(keys) == key_slot(buckets.tag_of(user).encode())


def test_one_redis_keeps_the_key_names_of_today():
    user = "00000000-0000-4000-8000-00000000000a"
    checkpoints = RedisCursorCheckpoints(None)  # type: ignore[arg-type]
    assert (checkpoints.next_key(user), checkpoints.slot_key(user, 65)) == (f"ckpt:{user}:next", f"ckpt:{user}:1")
    assert checkpoints._digest_key(user, "").startswith(f"ckpt:{user}:d:")
    counter = RedisConnectionCounter(_Client([]), 5)  # type: ignore[arg-type]
    assert (counter.counts_key(user), counter.gateways_key) == (f"ws:open:{user}", "ws:gateways")
    keys = RedisPresenceStore(_Client([]), 1.0, layout=SINGLE).keys  # type: ignore[arg-type]
    assert (keys.gateways, keys.sweeping, keys.leaving, keys.user(user), keys.gateway_sets) == (
        "presence:gateways", "presence:sweeping", "presence:leaving", f"presence:user:{user}", "presence:gw:")


def test_a_groups_cache_entry_and_generation_share_a_slot():
    for group_id in ids(random.Random(3), 50):
        one_slot([group_key(group_id), generation_key(group_id)])


@pytest.mark.gen_test
async def test_revocations_and_limits_call_their_scripts_with_one_key():
    client = _Client([1, 1, "0", "0"])
    revocations = RedisTokenRevocations(client)  # type: ignore[arg-type]
    rate = RedisRateLimiter(client, 1, 1)  # type: ignore[arg-type]
    failures = RedisFailureThrottle(client, 3)  # type: ignore[arg-type]
    user = str(uuid.uuid4())
    await revocations.revoke(TokenClaims(user, int(time.time()) + 60, "t1", time.time()))
    await revocations.revoke_all(user, time.time(), time.time() + 60)
    await rate.take(user)
    await failures.record_failure(user)
    assert [len(keys) for script in client.scripts for keys, _ in script.calls] == [1, 1, 1, 1]
