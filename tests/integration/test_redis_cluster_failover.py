"""A master of the Redis Cluster killed under Courier's cluster client (issue 19, design §7):
a request whose key is on it answers 503 (ServiceUnavailable) until its replica is promoted,
then succeeds - and nothing in between is any other error (a 500).

A cluster of this test alone: killing a node of the session's cluster would change it for
every test after this one."""
from __future__ import annotations

import asyncio
import shutil
import time
import uuid

import pytest

from domain.errors import ServiceUnavailable
from entrypoints import settings as settings_module
from entrypoints.container import Container, shutdown
from tests.services.redis_cluster import RedisCluster

pytestmark = pytest.mark.redis


@pytest.fixture
def own_cluster(tmp_path):
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (scripts/ensure-services.sh installs them)")
    cluster = RedisCluster(tmp_path / "cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_request_to_a_killed_master_answers_503_until_its_replica_takes_over(own_cluster, tmp_path):
    environ = {"COURIER_REDIS_URL": "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in own_cluster.ports),
               "COURIER_JWT_SECRET": "s" * 32, "COURIER_DATA_DIR": str(tmp_path / "data")}
    container = Container(settings=settings_module.load(environ=environ))
    limiter, client = container.send_limiter(), container.redis()
    try:
        user = str(uuid.uuid4())
        assert await limiter.take(user) == 0.0  # rate:<user>, on one master
        master = client.get_node_from_key(f"rate:{user}")
        own_cluster.kill(master.port)

        answers: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                await limiter.take(user)
            except ServiceUnavailable:
                answers.append("503")
            else:
                answers.append("ok")
                break  # the replica took its slots over
            await asyncio.sleep(0.1)
        assert answers[0] == "503", "the killed master's key was served at once: the kill did nothing"
        assert answers[-1] == "ok", f"no replica took over within 30 s: {answers}"
        assert set(answers[:-1]) == {"503"}  # any other error would have failed the test above
        promoted = client.get_node_from_key(f"rate:{user}")
        assert promoted.port != master.port
    finally:
        await shutdown(container)


@pytest.mark.gen_test(timeout=30)
async def test_a_cluster_none_of_whose_startup_nodes_answers_is_a_503(tmp_path, down_url):
    # The cluster client's own exception ("Redis Cluster cannot be connected"), not a RedisError.
    environ = {"COURIER_REDIS_URL": down_url.replace("redis://", "redis+cluster://"),
               "COURIER_JWT_SECRET": "s" * 32, "COURIER_DATA_DIR": str(tmp_path / "data")}
    container = Container(settings=settings_module.load(environ=environ))
    try:
        with pytest.raises(ServiceUnavailable):
            await container.send_limiter().take(str(uuid.uuid4()))
    finally:
        await shutdown(container)
