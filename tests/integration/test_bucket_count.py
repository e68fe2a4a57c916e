"""The bucket count of a deployment (adapters/redis/deployment.py, issue 19): the first
process stores COURIER_REDIS_BUCKETS in Redis, one with the same count starts, one with
another refuses - on one Redis and on the local Redis Cluster; `courier serve` and
`courier worker` check it before anything else and exit 2 with one line when it differs;
a process started while Redis is down waits for it (entrypoints/bucket_guard.py)."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from adapters.redis.deployment import BUCKETS_KEY, BucketCount, BucketCountChanged
from entrypoints import bucket_guard
from tests.services.redis import spare_port
from tests.services.redis_cluster import RedisCluster

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


async def first_same_and_other(client) -> None:
    assert await BucketCount(client, 256).record() == 256  # the first start stores it
    assert await client.get(BUCKETS_KEY) == b"256"
    assert await BucketCount(client, 256).record() == 256  # the same count starts
    with pytest.raises(BucketCountChanged, match=r"COURIER_REDIS_BUCKETS is 128, but .* written with 256 buckets "
                                                 r"\(courier:buckets\); set COURIER_REDIS_BUCKETS=256"):
        await BucketCount(client, 128).record()
    assert await client.get(BUCKETS_KEY) == b"256"  # a refused process changes nothing


@pytest.mark.gen_test
async def test_the_first_start_stores_the_count_the_same_starts_another_is_refused(redis_client):
    await first_same_and_other(redis_client)


@pytest.fixture
def cluster_client(io_loop, redis_cluster: RedisCluster) -> Iterator[AsyncRedisCluster]:
    client = AsyncRedisCluster.from_url(redis_cluster.url, socket_connect_timeout=2)
    io_loop.run_sync(lambda: client.delete(BUCKETS_KEY))  # the cluster is the whole session's
    yield client
    io_loop.run_sync(lambda: client.delete(BUCKETS_KEY))
    io_loop.run_sync(client.aclose)


@pytest.mark.gen_test
async def test_the_same_on_the_cluster(cluster_client):
    await first_same_and_other(cluster_client)


@pytest.mark.gen_test
async def test_several_processes_starting_at_once_agree_on_the_first_count(redis_client):
    outcomes = await asyncio.gather(*(BucketCount(redis_client, count).record() for count in (64, 64, 64)),
                                    return_exceptions=True)
    assert outcomes == [64, 64, 64]


@pytest.mark.gen_test
async def test_a_start_while_redis_is_down_waits_and_gives_up_when_told_to_stop(down_client, monkeypatch):
    monkeypatch.setattr(bucket_guard, "RETRY", 0.02)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, stop.set)
    assert await bucket_guard.record_bucket_count(BucketCount(down_client, 256), stop) is False


@pytest.mark.gen_test
async def test_a_start_while_redis_is_down_records_once_it_answers(redis_client, monkeypatch):
    monkeypatch.setattr(bucket_guard, "RETRY", 0.02)
    guard = BucketCount(redis_client, 256)
    record, tries = guard.record, []

    async def down_twice() -> int:
        tries.append(1)
        if len(tries) <= 2:
            from domain.errors import ServiceUnavailable
            raise ServiceUnavailable("redis is unavailable (test)")
        return await record()

    monkeypatch.setattr(guard, "record", down_twice)
    assert await bucket_guard.record_bucket_count(guard, asyncio.Event()) is True
    assert len(tries) == 3
    assert await redis_client.get(BUCKETS_KEY) == b"256"


@pytest.mark.parametrize("command", [["serve"], ["worker"], ["seed-channel", "--members", "1"]],
                         ids=lambda command: command[0])
def test_courier_refuses_to_start_with_another_count_in_one_line(command, redis_url, tmp_path):
    # A process of its own, as operators run it (the command's event loop and logging
    # configuration stay out of the test's).
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.set(BUCKETS_KEY, "512")
    env = {**os.environ, "COURIER_REDIS_URL": redis_url, "COURIER_JWT_SECRET": "s" * 32,
           "COURIER_DATA_DIR": str(tmp_path / "data"), "COURIER_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
           "COURIER_PORT": str(spare_port())}
    ended = subprocess.run([sys.executable, "-m", "entrypoints.cli", *command], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert ended.returncode == 2, ended.stderr
    assert "courier: COURIER_REDIS_BUCKETS is 256, but this deployment's Redis data was written with 512" \
        in ended.stderr
    assert "Traceback" not in ended.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_courier_waiting_for_redis_at_start_stops_on_sigterm(command, down_url, tmp_path):
    env = {**os.environ, "COURIER_REDIS_URL": down_url, "COURIER_JWT_SECRET": "s" * 32,
           "COURIER_DATA_DIR": str(tmp_path / "data"), "COURIER_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
           "COURIER_PORT": str(spare_port())}
    with subprocess.Popen([sys.executable, "-m", "entrypoints.cli", command], env=env, cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as process:
        try:
            deadline = time.monotonic() + 30
            seen = ""
            while "waiting for Redis" not in seen:  # up, and waiting: its first warning says so
                assert time.monotonic() < deadline and process.poll() is None, seen
                seen += process.stderr.readline()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            assert "Traceback" not in process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
