"""Drills of the cluster send path (issue 19, point 4; docs/design/redis-cluster.md, section 7),
on clusters of their own (a drill changes the cluster it runs on):

- a master killed under about 200 sends a second from two gateways: sends that need it answer
  503 until a replica takes its slots over, then every send succeeds again by itself; every
  message a client was told was accepted (201, or a retry's 201) is in each recipient's log
  exactly once, each conversation's in seq order. With COURIER_REDIS_WAIT_REPLICAS=1 and two
  replicas a master, so the promoted replica still has one to wait for.
- a bucket's slot migrated to another master under the same load: 503s at most while it
  moves, and the same result; a gateway's subscriber resyncs the users of that bucket only."""
from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import time
import uuid
from collections import defaultdict

import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.crc import key_slot

from adapters.redis.buckets import Buckets
from adapters.redis.cluster_inbox import RedisClusterInbox
from adapters.redis.cluster_relay import ClusterSendRelay
from adapters.redis.idempotency import PENDING_TTL, RedisIdempotencyKeys
from domain.errors import ServiceUnavailable
from domain.model import GROUP, PRIVATE, Message, cursor_position
from tests.services.redis_cluster import RedisCluster

pytestmark = pytest.mark.redis

BUCKETS = Buckets(16)
RATE = 200  # sends a second, from both gateways together
LOAD_SECONDS = 8.0


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def drill_cluster(tmp_path):
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (scripts/ensure-services.sh installs them)")
    cluster = RedisCluster(tmp_path / "cluster", replicas=2)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


class Gateway:
    def __init__(self, url: str, wait_replicas: int):
        self.client = AsyncRedisCluster.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        self.keys = RedisIdempotencyKeys(self.client)
        self.inbox = RedisClusterInbox(self.client, BUCKETS, self.keys, exact_trim=True,
                                       wait_replicas=wait_replicas, wait_timeout_ms=500)

    async def send(self, message: Message, recipients: list[str]) -> Message:
        """As Dispatcher.dispatch: the key, then the delivery; the key let go on a failure."""
        assert message.client_msg_id is not None
        answer = await self.keys.remember(message.from_user_id, message.client_msg_id, message)
        if answer is not None:
            if answer.delivered:
                return answer.message
            raise SendInProgress()  # the client retries (409 send_in_progress)
        try:
            return (await self.inbox.deliver(message, recipients)).message
        except Exception:
            try:
                await self.keys.forget(message.from_user_id, message.client_msg_id, message)
            except Exception:  # noqa: BLE001 - the pending answer expires by itself
                pass
            raise


class SendInProgress(Exception):
    """The Dispatcher's 409 send_in_progress: an earlier attempt's answer is still pending."""


class Load:
    """Sends at RATE a second, each retried with its client_msg_id until it is accepted."""

    def __init__(self, gateways: list[Gateway], people: list[str], groups: dict[str, list[str]]):
        self.gateways, self.people, self.groups = gateways, people, groups
        self.accepted: dict[str, Message] = {}  # client_msg_id -> the message as accepted
        self.recipients: dict[str, list[str]] = {}
        self.unavailable_at: list[float] = []  # when a try answered 503
        self.in_progress_at: list[float] = []  # when a try found an earlier attempt's answer pending (409)
        self.other_errors: list[BaseException] = []
        self._rng = random.Random(19)
        self._tasks: list[asyncio.Task] = []

    def _draft(self, n: int) -> tuple[Message, list[str]]:
        key = f"drill-{n}"
        if self._rng.random() < 0.5:
            group_id = self._rng.choice(list(self.groups))
            members = self.groups[group_id]
            return Message(type=GROUP, id=new_id(), from_user_id=self._rng.choice(members), content=key,
                           created_at=1_700_000_000, group_id=group_id, client_msg_id=key), members
        sender, to = self._rng.sample(self.people, 2)
        return Message(type=PRIVATE, id=new_id(), from_user_id=sender, to_user_id=to, content=key,
                       created_at=1_700_000_000, client_msg_id=key), [to, sender]

    async def _one(self, n: int) -> None:
        draft, recipients = self._draft(n)
        self.recipients[draft.client_msg_id or ""] = recipients
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            attempt = Message(**{**_fields(draft), "id": new_id()})  # a retry is a new attempt
            try:
                self.accepted[draft.client_msg_id or ""] = await self._rng.choice(self.gateways).send(
                    attempt, recipients)
                return
            except ServiceUnavailable:
                self.unavailable_at.append(time.monotonic())
            except SendInProgress:
                self.in_progress_at.append(time.monotonic())
            except Exception as error:  # noqa: BLE001 - any other answer fails the drill
                self.other_errors.append(error)
                return
            await asyncio.sleep(0.1)

    async def run(self, seconds: float) -> None:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            self._tasks.append(asyncio.ensure_future(self._one(n)))
            n += 1
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(*self._tasks)


def _fields(message: Message) -> dict:
    return {name: getattr(message, name) for name in message.__dataclass_fields__}


async def check_every_log(load: Load, gateway: Gateway) -> None:
    """Every accepted message once in each recipient's log, in seq order per conversation,
    and nothing else (no second copy under another id)."""
    assert not load.other_errors, load.other_errors[:3]
    assert len(load.accepted) == len(load.recipients), "some sends were never accepted"
    expected: dict[str, set[str]] = defaultdict(set)
    for key, message in load.accepted.items():
        for user in load.recipients[key]:
            expected[user].add(message.id)
    for user in load.people:
        log = await gateway.inbox.read(user, None, 100_000)
        ids = [d.event.id for d in log]
        assert len(ids) == len(set(ids)), "a message twice in a log"
        assert set(ids) == expected[user]
        positions = [cursor_position(d.cursor) for d in log]
        assert positions == sorted(positions)
        last: dict[str, int] = {}
        for d in log:
            assert d.event.seq > last.get(d.event.conversation, 0), [  # the conversation in this log
                (e.event.seq, e.event.content, e.cursor) for e in log if e.event.conversation == d.event.conversation]
            last[d.event.conversation] = d.event.seq


async def settle(gateway: Gateway) -> None:
    """What a gateway left half done (a 503 after its commit) is finished by the next send or
    the relay: run the relay until nothing is left."""
    relay = ClusterSendRelay(gateway.inbox, BUCKETS.count, older_than_ms=0)
    for _ in range(20):
        if await relay.run_once() == 0:
            return
    raise AssertionError("the relay still finds sends to finish")


def setup_people() -> tuple[list[str], dict[str, list[str]]]:
    rng = random.Random(7)
    people = [new_id() for _ in range(24)]
    groups = {new_id(): rng.sample(people, rng.randint(3, 10)) for _ in range(5)}
    return people, groups


@pytest.mark.gen_test(timeout=120)
async def test_a_master_killed_under_load_gives_503s_for_the_failover_only_and_loses_nothing(drill_cluster):
    gateways = [Gateway(drill_cluster.url, wait_replicas=1) for _ in range(2)]
    for gateway in gateways:
        await gateway.client.initialize()
    try:
        people, groups = setup_people()
        load = Load(gateways, people, groups)
        running = asyncio.ensure_future(load.run(LOAD_SECONDS))
        await asyncio.sleep(2.0)
        victim = gateways[0].client.get_node_from_key(BUCKETS.tag_of(people[0]))
        killed_at = time.monotonic()
        drill_cluster.kill(victim.port)
        await running
        assert load.unavailable_at, "no send needed the killed master: the drill proved nothing"
        assert min(load.unavailable_at) >= killed_at - 0.5
        # 503s only while the replica was being promoted (node timeout 2 s, then the election).
        assert max(load.unavailable_at) - killed_at < 10.0
        # An attempt cut off by the kill may leave its client_msg_id's answer pending, when the
        # node that holds it could not be told to let go: its retries answer 409 until the
        # pending answer expires (PENDING_TTL), then get the original, or make it once.
        assert not load.in_progress_at or max(load.in_progress_at) - killed_at < PENDING_TTL + 5
        await settle(gateways[0])
        await check_every_log(load, gateways[0])
    finally:
        for gateway in gateways:
            await gateway.client.aclose()


@pytest.mark.gen_test(timeout=120)
async def test_a_buckets_slot_migrated_under_load_loses_nothing(drill_cluster):
    """And on the bus: a gateway serving everyone is told by Redis that the bucket's channel
    left its node (a pushed sunsubscribe), subscribes it on the new owner and resyncs the
    users of that bucket only - every other user heard every message live."""
    from adapters.redis.cluster_keys import ClusterKeys
    from adapters.redis.cluster_subscriber import RedisClusterNotificationSubscriber

    gateways = [Gateway(drill_cluster.url, wait_replicas=0) for _ in range(2)]
    for gateway in gateways:
        await gateway.client.initialize()
    subscriber = RedisClusterNotificationSubscriber(gateways[1].client, ClusterKeys(BUCKETS), ping_interval=1.0)
    heard: dict[str, set[str]] = defaultdict(set)  # user -> the message ids heard live for it
    resyncs: list[set[str] | None] = []

    def on_notification(notification) -> None:
        for user in notification.cursors:
            heard[user].add(notification.event.id)

    async def on_resync(user_ids=None) -> None:
        resyncs.append(None if user_ids is None else set(user_ids))

    listening = asyncio.ensure_future(subscriber.run(on_notification, on_resync))
    try:
        people, groups = setup_people()
        while not resyncs:
            await asyncio.sleep(0.02)
        for user in people:
            await subscriber.include(user)
        load = Load(gateways, people, groups)
        running = asyncio.ensure_future(load.run(LOAD_SECONDS))
        await asyncio.sleep(2.0)
        moved = BUCKETS.of(people[0])
        slot = key_slot(BUCKETS.tag(moved).encode())
        source = gateways[0].client.get_node_from_key(BUCKETS.tag(moved))
        target = next(node for node in drill_cluster.masters() if node.port != source.port)
        await asyncio.get_running_loop().run_in_executor(None, migrate_slot, drill_cluster, slot, source.port,
                                                         target.port)
        await running
        assert gateways[0].client.get_node_from_key(BUCKETS.tag(moved)).port in (target.port, source.port)
        await settle(gateways[0])
        await check_every_log(load, gateways[0])
        with drill_cluster.client(target.port) as node:
            assert node.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) > 0  # the bucket's keys moved
        # The bus: only the moved bucket's users were resynced; all others heard everything live.
        in_moved = {user for user in people if BUCKETS.of(user) == moved}
        deadline = time.monotonic() + 10
        while len(resyncs) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert resyncs[1:] == [in_moved], resyncs
        await asyncio.sleep(0.5)  # the relay's last appends, heard
        for user in set(people) - in_moved:
            log = await gateways[0].inbox.read(user, None, 100_000)
            assert heard[user] == {d.event.id for d in log}, user
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        for gateway in gateways:
            await gateway.client.aclose()


def migrate_slot(cluster: RedisCluster, slot: int, source: int, target: int) -> None:
    """A slot moved as redis-cli --cluster reshard moves it: IMPORTING at the target, MIGRATING at
    the source, its keys MIGRATEd a few at a time, then the slot given to the target everywhere."""
    with cluster.client(source) as src, cluster.client(target) as dst:
        source_id, target_id = src.execute_command("CLUSTER", "MYID"), dst.execute_command("CLUSTER", "MYID")
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        while True:
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10)
            if not keys:
                break
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
            time.sleep(0.05)  # sends go on meanwhile, in the middle of the move
        for port in [node.port for node in cluster.masters()]:
            with cluster.client(port) as node:
                node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
