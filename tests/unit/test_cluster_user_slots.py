"""The scripts and MULTIs of the adapters of users' and gateways' state each keep to one slot
on the cluster's layout (adapters/redis/layout.py; docs/design/redis-cluster.md, section 9:
"a check with no server"): presence and the socket caps, one store or counter per user
bucket (whose scripts also touch users' hashes and gateways' sets they do not declare:
under the bucket's tag, and only the bucket's users), cursor checkpoints, the group cache,
revocations and rate limits, for random users. No server: the scripts are replaced
by recorders, and slots are redis-py's key_slot. On one Redis's layout the names are the
ones deployments have today."""
from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid

import pytest
from redis.crc import key_slot

from adapters.redis.bucketed_presence import BucketedPresenceStore
from adapters.redis.bucketed_sockets import BucketedConnectionCounter
from adapters.redis.buckets import Buckets
from adapters.redis.cache import generation_key, group_key
from adapters.redis.checkpoints import RedisCursorCheckpoints
from adapters.redis.connection_counter import RedisConnectionCounter
from adapters.redis.layout import SINGLE, BucketLayout, ClusterLayout
from adapters.redis.limits import RedisFailureThrottle, RedisRateLimiter
from adapters.redis.presence_store import RedisPresenceStore
from adapters.redis.revocations import RedisTokenRevocations
from adapters.redis.support import lua
from application.ports import TokenClaims


class Recorder:
    def __init__(self, reply, name: str = "", calls: list | None = None):
        self.calls: list[tuple[list[str], list]] = []
        self._reply = reply
        self._name = name
        self._all = calls

    async def __call__(self, keys=(), args=(), client=None):
        self.calls.append((list(keys), list(args)))
        if self._all is not None:
            self._all.append((self._name, list(keys), list(args)))
        return self._reply


SCRIPTS = ("presence_apply.lua", "presence_expire.lua", "sockets_acquire.lua", "sockets_release.lua",
           "sockets_renew.lua")


class _Client:
    """Hands out a recorder per script: with the replies given in the order registered, or
    (`replies` by name) with each script's reply, every call recorded under the script's name."""

    def __init__(self, replies: list, by_name: dict[str, object] | None = None):
        self._replies = list(replies)
        self._by_name = by_name
        self._names = {lua(name): name for name in SCRIPTS}
        self.scripts: list[Recorder] = []
        self.all: list[tuple[str, list[str], list]] = []

    def register_script(self, script: str) -> Recorder:
        if self._by_name is not None:
            name = self._names[script]
            recorder = Recorder(self._by_name.get(name, 1), name, self.all)
        else:
            recorder = Recorder(self._replies.pop(0) if self._replies else 1)
        self.scripts.append(recorder)
        return recorder

    async def zrem(self, key, *members):
        self.all.append(("zrem", [key], list(members)))
        return 1

    def calls(self, name: str) -> list[tuple[list[str], list]]:
        return [(keys, args) for called, keys, args in self.all if called == name]


def ids(rng: random.Random, count: int) -> list[str]:
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def entries(args: list) -> dict[str, list[str]]:
    """presence_apply.lua's entries (ARGV[6..]: kind, count, users), users by kind."""
    found: dict[str, list[str]] = {}
    i = 5
    while i < len(args):
        kind, count = args[i], int(args[i + 1])
        found.setdefault(kind, []).extend(args[i + 2:i + 2 + count])
        i += 2 + count
    return found


def tag_slot(buckets: Buckets, bucket: int) -> int:
    return key_slot(buckets.tag(bucket).encode())


async def run_briefly(keep_alive) -> None:
    """A keep_alive() for one or two rounds (its lease made tiny by the test)."""
    task = asyncio.ensure_future(keep_alive())
    await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def one_slot(keys) -> int:
    slots = {key_slot(key.encode() if isinstance(key, str) else key) for key in keys}
    assert len(slots) == 1, {key: key_slot(key) for key in keys}
    return slots.pop()


@pytest.mark.parametrize("count", [1, 7, 256])
@pytest.mark.gen_test
async def test_bucketed_presence_keeps_each_users_keys_in_the_users_bucket_slot(count):
    """Every script call of every bucket's store: its keys, the hashes of the users it
    names, and the gateways' sets a sweep finds, all in the slot of its bucket; each user's
    in the user's bucket's; expire() in every bucket."""
    rng = random.Random(count)
    buckets = Buckets(count)
    client = _Client([], by_name={"presence_apply.lua": [b"ok"], "presence_expire.lua": [0]})
    store = BucketedPresenceStore(client, 1.0, buckets, gateway_id="gw", lease=0.04)  # type: ignore[arg-type]
    users = ids(rng, 50)
    await store.arrived(users)
    await store.left(users[:10])
    await run_briefly(store.keep_alive)  # a renewal in each bucket written in
    await store.expire()
    await store.close()
    applies, expires = client.calls("presence_apply.lua"), client.calls("presence_expire.lua")
    written = {buckets.of(user) for user in users}
    assert {kind for _, args in applies for kind in entries(args)} == {"a", "l", "r", "c"}
    assert sorted(user for _, args in applies for user in entries(args).get("a", [])) == sorted(users)
    for keys, args in applies:
        slot = one_slot(keys + [args[4] + user for named in entries(args).values() for user in named])
        for named in entries(args).values():
            assert {tag_slot(buckets, buckets.of(user)) for user in named} <= {slot}
    assert {one_slot(keys) for keys, _ in applies} == {tag_slot(buckets, bucket) for bucket in written}
    expired = set()
    for keys, args in expires:
        users_prefix, sets_prefix = args[0], args[1]
        expired.add(one_slot(keys + [users_prefix + "any-user", sets_prefix + "gw:1234", sets_prefix + "x:5678"]))
    assert len(expires) == count and expired == {tag_slot(buckets, bucket) for bucket in range(count)}


@pytest.mark.parametrize("count", [1, 7, 256])
@pytest.mark.gen_test
async def test_bucketed_socket_caps_keep_a_users_counts_and_their_leases_in_the_users_bucket_slot(count):
    rng = random.Random(count + 1)
    buckets = Buckets(count)
    client = _Client([], by_name={})
    counter = BucketedConnectionCounter(client, 5, buckets, lease=0.03)  # type: ignore[arg-type]
    users = ids(rng, 50)
    for user in users:
        await counter.acquire(user)
        await counter.release(user)
    await run_briefly(counter.keep_alive)
    await counter.close()
    for user in users:
        slot = tag_slot(buckets, buckets.of(user))
        assert one_slot([counter.counts_key(user)]) == slot
    for name in ("sockets_acquire.lua", "sockets_release.lua"):
        calls = client.calls(name)
        assert len(calls) == len(users)
        for (keys, _), user in zip(calls, users, strict=True):
            assert one_slot(keys) == tag_slot(buckets, buckets.of(user))
    written = {tag_slot(buckets, buckets.of(user)) for user in users}
    renewals = [one_slot(keys) for keys, _ in client.calls("sockets_renew.lua")]
    assert set(renewals) == written and len(renewals) >= len(written)  # each bucket in use, no other
    assert sorted(one_slot(keys) for keys, _ in client.calls("zrem")) == sorted(written)  # closed in each


def test_a_buckets_layout_puts_a_service_under_the_buckets_tag():
    buckets = Buckets(7)
    layout = BucketLayout(buckets, 3)
    assert layout.service("presence") == buckets.tag(3) + ":presence:"
    assert key_slot(layout.service("ws").encode() + b"open:anyone") == tag_slot(buckets, 3)
    assert RedisConnectionCounter(_Client([]), 1, layout=layout).gateways_key == buckets.tag(3) + ":ws:gateways"  # type: ignore[arg-type]


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
