"""One Redis against a 3-master Redis Cluster, in one run (issue 19, point 7; docs/performance.md,
"Redis Cluster"): the inbox's own sends and fan-out, without HTTP - RedisInbox (deliver.lua, one
script a send) on a redis-server of its own, RedisClusterInbox (a commit and one append per
bucket) on a local cluster of 3 masters with a replica each, without and with WAIT 1 (the
large group's stream is not waited on) - and what each costs Redis (the masters): commands,
bytes in and out, and CPU per message (INFO, summed over the masters). Then 4 gateways'
subscribers, each serving a quarter of the users: the notification bytes each receives.

    .venv/bin/python scripts/bench/cluster_compare.py [--sends 20000] [--fanout 300] [--rounds 2]

Starts and stops its own servers (redis-server and redis-cli must be installed); touches no
other Redis. Prints one JSON line per figure and a table.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from adapters.redis import cluster_subscriber  # noqa: E402
from adapters.redis.buckets import Buckets  # noqa: E402
from adapters.redis.cluster_inbox import RedisClusterInbox  # noqa: E402
from adapters.redis.cluster_keys import ClusterKeys  # noqa: E402
from adapters.redis.group_streams import RedisGroupStreams  # noqa: E402
from adapters.redis.idempotency import RedisIdempotencyKeys  # noqa: E402
from adapters.redis.inbox import RedisInbox  # noqa: E402
from adapters.redis.subscriber import RedisNotificationSubscriber  # noqa: E402
from application.ports import GroupSwitch  # noqa: E402
from domain.model import GROUP, PRIVATE, Message  # noqa: E402
from tests.services.redis_cluster import RedisCluster  # noqa: E402

USERS = 1000
SMALL_GROUP = 200
LARGE_GROUP = 1000
CONCURRENCY = 64
GATEWAYS = 4
BYTES_USERS = 4000  # 1000 a gateway: each covers every bucket, as a busy gateway does


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OneRedis:
    def __init__(self, folder: Path):
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def stats(ports: list[int]) -> dict[str, float]:
    """Commands, bytes and CPU seconds so far, summed over the servers."""
    total = {"commands": 0.0, "bytes_in": 0.0, "bytes_out": 0.0, "cpu": 0.0}
    for port in ports:
        node = redis.Redis(port=port)
        commands = node.info("commandstats")
        total["commands"] += sum(value["calls"] for name, value in commands.items()
                                 if not name.startswith(("cmdstat_info", "cmdstat_config", "cmdstat_cluster")))
        info = node.info("stats")
        total["bytes_in"] += info["total_net_input_bytes"]
        total["bytes_out"] += info["total_net_output_bytes"]
        cpu = node.info("cpu")
        total["cpu"] += cpu["used_cpu_sys"] + cpu["used_cpu_user"]
    return total


def per_message(before: dict, after: dict, count: int) -> dict[str, float]:
    return {name: round((after[name] - before[name]) / count, 6 if name == "cpu" else 1) for name in before}


def private(rng: random.Random, people: list[str], n: int) -> tuple[Message, list[str]]:
    sender, to = rng.sample(people, 2)
    return Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id=sender, to_user_id=to,
                   content=f"bench|private|{n}|0123456789", created_at=1_700_000_000), [to, sender]


async def run_all(jobs, concurrency: int) -> float:
    """Run the jobs (coroutine factories) `concurrency` at a time; seconds taken."""
    queue = list(jobs)
    queue.reverse()

    async def worker() -> None:
        while queue:
            await queue.pop()()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


async def measure(name: str, inbox, streams, ports: list[int], sends: int, fanouts: int) -> list[dict]:
    rng = random.Random(19)
    people = [str(uuid.uuid4()) for _ in range(USERS)]
    results = []
    # Warm-up (scripts loaded, counters made), then the sends.
    await run_all([lambda m=private(rng, people, n): inbox.deliver(*m) for n in range(500)], CONCURRENCY)
    before = stats(ports)
    seconds = await run_all([lambda m=private(rng, people, n): inbox.deliver(*m) for n in range(sends)], CONCURRENCY)
    results.append({"target": name, "figure": "private sends", "per_s": round(sends / seconds),
                    **per_message(before, stats(ports), sends)})
    # A small group's message (200 members, the largest that is still fanned out to logs).
    group_id = str(uuid.uuid4())
    members = people[:SMALL_GROUP]

    def group_message(n: int, group: str, content: str) -> Message:
        return Message(type=GROUP, id=str(uuid.uuid4()), from_user_id=people[0], group_id=group,
                       content=f"bench|{content}|{n}|0123456789", created_at=1_700_000_000)

    await run_all([lambda n=n: inbox.deliver(group_message(n, group_id, "g200"), members) for n in range(20)], 4)
    before = stats(ports)
    seconds = await run_all([lambda n=n: inbox.deliver(group_message(n, group_id, "g200"), members)
                             for n in range(fanouts)], 8)
    results.append({"target": name, "figure": f"{SMALL_GROUP}-member group (fanned out)",
                    "per_s": round(fanouts / seconds, 1), **per_message(before, stats(ports), fanouts)})
    # A large group's message (1000 members: one append to its stream, docs/design/large-groups.md).
    large_id = str(uuid.uuid4())
    await streams.apply(GroupSwitch(large_id, str(uuid.uuid4()), 3, rng.randrange(1, 2**40), people[0], False,
                                    tuple(people[:LARGE_GROUP])))
    await run_all([lambda n=n: streams.deliver(group_message(n, large_id, "g1000")) for n in range(20)], 4)
    before = stats(ports)
    seconds = await run_all([lambda n=n: streams.deliver(group_message(n, large_id, "g1000"))
                             for n in range(fanouts * 5)], 8)
    results.append({"target": name, "figure": f"{LARGE_GROUP}-member large group (its stream)",
                    "per_s": round(fanouts * 5 / seconds, 1), **per_message(before, stats(ports), fanouts * 5)})
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=20_000)
    parser.add_argument("--fanout", type=int, default=300, help="small-group messages (large: 5 times as many)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise SystemExit("redis-server and redis-cli are needed")
    folder = Path(tempfile.mkdtemp(prefix="courier-cluster-bench-"))
    one = OneRedis(folder)
    cluster = RedisCluster(folder / "cluster", masters=3, replicas=1).start()
    master_ports = [node.port for node in cluster.masters()]
    results: list[dict] = []
    try:
        single_client = aioredis.Redis(port=one.port)
        await single_client.set("seq:complete", "1")
        cluster_client = AsyncRedisCluster.from_url(cluster.url)
        await cluster_client.initialize()
        buckets = Buckets()
        keys = ClusterKeys(buckets)
        for bucket in range(buckets.count):  # as `courier worker` marks them: counters start at 0
            await cluster_client.set(keys.seq_complete(bucket), "1")
        single = RedisInbox(single_client)
        on_cluster = RedisClusterInbox(cluster_client, buckets, RedisIdempotencyKeys(cluster_client))
        waiting = RedisClusterInbox(cluster_client, buckets, RedisIdempotencyKeys(cluster_client), wait_replicas=1)
        single_streams = RedisGroupStreams(single_client)
        cluster_streams = RedisGroupStreams(cluster_client, keys=keys)  # type: ignore[arg-type]
        for _ in range(args.rounds):  # alternated, as every claim here is a ratio of one run
            results += await measure("one Redis", single, single_streams, one.ports, args.sends, args.fanout)
            results += await measure("3-master cluster", on_cluster, cluster_streams, master_ports, args.sends,
                                     args.fanout)
            results += await measure("3-master cluster, WAIT 1", waiting, cluster_streams, master_ports,
                                     args.sends, args.fanout)
        results.append(await with_counted_bytes("one Redis", [RedisNotificationSubscriber(single_client)
                                                              for _ in range(GATEWAYS)], single))
        results.append(await with_counted_bytes("3-master cluster", [
            cluster_subscriber.RedisClusterNotificationSubscriber(cluster_client, keys) for _ in range(GATEWAYS)],
            on_cluster))
        await single_client.aclose()
        await cluster_client.aclose()
    finally:
        one.stop()
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    for result in results:
        print(json.dumps(result))


async def with_counted_bytes(name: str, subscribers, inbox) -> dict:
    """gateway_bytes, with each subscriber's notifications counted where it parses them."""
    import adapters.redis.subscriber as single_module

    sizes = {id(subscriber): 0 for subscriber in subscribers}
    original_single = single_module.RedisNotificationSubscriber._dispatch
    original_cluster = cluster_subscriber._dispatch

    def single_dispatch(self, data, on_notification):
        sizes[id(self)] += len(data)
        return original_single(self, data, on_notification)

    single_module.RedisNotificationSubscriber._dispatch = single_dispatch  # type: ignore[method-assign]
    shards_of = {}

    def cluster_dispatch(data, on_notification):
        owner = shards_of.get(id(on_notification))
        if owner is not None:
            sizes[owner] += len(data)
        return original_cluster(data, on_notification)

    cluster_subscriber._dispatch = cluster_dispatch
    try:
        rng = random.Random(7)
        people = [str(uuid.uuid4()) for _ in range(BYTES_USERS)]
        runs = []
        for index, subscriber in enumerate(subscribers):
            started = asyncio.Event()

            async def on_resync(*_users, started=started) -> None:
                started.set()

            def on_notification(notification) -> None:
                return None

            shards_of[id(on_notification)] = id(subscriber)
            runs.append(asyncio.ensure_future(subscriber.run(on_notification, on_resync)))
            await started.wait()
            if hasattr(subscriber, "include"):
                for user in people[index::len(subscribers)]:
                    await subscriber.include(user)
        sends = 4000
        await run_all([lambda m=private(rng, people, n): inbox.deliver(*m) for n in range(sends)], CONCURRENCY)
        await asyncio.sleep(0.5)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
    finally:
        single_module.RedisNotificationSubscriber._dispatch = original_single  # type: ignore[method-assign]
        cluster_subscriber._dispatch = original_cluster
    received = [sizes[id(subscriber)] for subscriber in subscribers]
    return {"target": name, "figure": f"notification bytes per gateway ({len(subscribers)} gateways, each serving "
                                      f"a quarter of {BYTES_USERS} users, {sends} private sends)",
            "per_gateway": received,
            "bytes_per_send_per_gateway": round(sum(received) / len(received) / sends, 1)}


if __name__ == "__main__":
    asyncio.run(main())
