"""A local Redis Cluster for the tests of issue 19 (Courier on Redis Cluster): 3 masters
and 3 replicas, each a `redis-server` of its own on a free loopback port (and its
cluster bus port, port + 10000), in a temporary folder, joined by
`redis-cli --cluster create`.

- RedisCluster: start() (bounded; a failure raises with each node's log tail), url and
  startup_nodes for a client, nodes()/masters()/replicas() as CLUSTER NODES says, kill()
  (SIGKILL one node, for failover drills), stop() (every node ended, the folder removed).
- redis_cluster: the session-wide fixture (registered by tests/conftest.py), started the
  first time a test asks for it; skips only when redis-server or redis-cli is missing.
- redis_target: one Redis (the claimed database, tests/services/redis.py) or this cluster,
  emptied, each with the key layout the container gives it (adapters/redis/layout.py): the
  adapters that keep users' and gateways' state are tested on both.

No node outlives the run: stop() runs in the fixture's finalizer and at exit
(atexit, best effort), every node is a session (process group) of its own, so a
Ctrl-C of the terminal does not kill it half-way through, and on Linux each asks the
kernel to SIGKILL it should the process that started it die (PR_SET_PDEATHSIG), so a
killed test run does not leave nodes behind either."""
from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

__all__ = ["redis_cluster", "redis_cluster_client", "redis_target", "redis_cluster_target", "RedisCluster",
           "ClusterNode", "RedisTarget"]

HOST = "127.0.0.1"
BUS_OFFSET = 10_000  # a node's cluster bus listens on its port + 10000
SLOTS = 16_384


@dataclass(frozen=True)
class ClusterNode:
    """One line of CLUSTER NODES."""
    id: str
    port: int
    role: str  # "master" or "replica"
    master_id: str | None  # a replica's master
    flags: frozenset[str]
    slots: tuple[tuple[int, int], ...]  # a master's slot ranges, inclusive

    @property
    def slot_count(self) -> int:
        return sum(end - start + 1 for start, end in self.slots)


def parse_cluster_nodes(reply: str) -> list[ClusterNode]:
    """CLUSTER NODES: `<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch>
    <link> <slot> ...`; slots are `n` or `a-b` (`[n->-id]` while migrating: left out)."""
    nodes = []
    for line in reply.strip().splitlines():
        fields = line.split()
        flags = frozenset(fields[2].split(","))
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        slots = []
        for part in fields[8:]:
            if part.startswith("["):
                continue
            start, _, end = part.partition("-")
            slots.append((int(start), int(end or start)))
        role = "master" if "master" in flags else "replica"
        nodes.append(ClusterNode(fields[0], port, role, None if fields[3] == "-" else fields[3], flags,
                                 tuple(slots)))
    return sorted(nodes, key=lambda node: node.port)


def free_port_pair(taken: set[int]) -> tuple[socket.socket, socket.socket]:
    """A free loopback port whose bus port (port + 10000) is free too; both sockets are
    returned bound, so the next pick cannot take them (closed just before the start)."""
    for _ in range(200):
        first = socket.socket()
        first.bind((HOST, 0))
        port = first.getsockname()[1]
        if port + BUS_OFFSET <= 65_535 and port not in taken and port + BUS_OFFSET not in taken:
            second = socket.socket()
            try:
                second.bind((HOST, port + BUS_OFFSET))
                return first, second
            except OSError:
                second.close()
        first.close()
    raise RuntimeError("no free loopback port with a free bus port (port + 10000)")


def _parent_death_signal():
    """In the child, before exec: SIGKILL me should my parent die (Linux; else nothing)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def set_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return set_signal


class RedisCluster:
    """`masters` masters with `replicas` replicas each, in `directory` (one folder per
    node: its nodes.conf and its log)."""

    def __init__(self, directory: Path, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 2000):
        self.directory = Path(directory)
        self.master_count, self.replicas_per_master = masters, replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports: list[int] = []
        self.processes: dict[int, subprocess.Popen] = {}
        self.started_in: float | None = None  # seconds, from the first node's start to a healthy cluster

    # -- where it is ------------------------------------------------------------------

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, port) for port in self.ports]

    @property
    def url(self) -> str:
        """One node's URL: a cluster client finds the others from it."""
        return f"redis://{HOST}:{self.ports[0]}"

    def client(self, port: int, **kwargs) -> redis.Redis:
        """A plain (not cluster) client of one node."""
        return redis.Redis(HOST, port, socket_connect_timeout=1, socket_timeout=5, decode_responses=True, **kwargs)

    def command(self, port: int, *args):
        with self.client(port) as node:
            return node.execute_command(*args)

    def nodes(self, port: int | None = None) -> list[ClusterNode]:
        """CLUSTER NODES as one node (by default the first one alive) sees it."""
        ports = [port] if port is not None else self.alive_ports()
        if not ports:
            raise RuntimeError("no node of the cluster is running")
        return parse_cluster_nodes(self.command(ports[0], "CLUSTER", "NODES"))

    def masters(self) -> list[ClusterNode]:
        """The masters, as nodes() says, but those flagged failed (after a kill())."""
        return [node for node in self.nodes() if node.role == "master" and "fail" not in node.flags]

    def replicas(self) -> list[ClusterNode]:
        return [node for node in self.nodes() if node.role == "replica" and "fail" not in node.flags]

    def alive_ports(self) -> list[int]:
        return [port for port, process in self.processes.items() if process.poll() is None]

    # -- life ---------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> RedisCluster:
        began = time.monotonic()
        deadline = began + timeout
        count = self.master_count * (1 + self.replicas_per_master)
        atexit.register(self.stop)
        held: list[socket.socket] = []
        taken: set[int] = set()
        try:
            for _ in range(count):
                held.extend(free_port_pair(taken))
                port = held[-2].getsockname()[1]
                taken.update((port, port + BUS_OFFSET))
                self.ports.append(port)
        finally:
            for sock in held:
                sock.close()
        on_death = _parent_death_signal()
        for port in self.ports:
            folder = self.directory / str(port)
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "node.log", "wb") as log:
                self.processes[port] = subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", HOST, "--dir", str(folder),
                     "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", str(self.node_timeout_ms), "--save", "", "--appendonly", "no",
                     "--daemonize", "no"],
                    cwd=folder, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=on_death,
                )
        for port in self.ports:
            self._wait(lambda port=port: self._pings(port), deadline, f"node {port} answering PING")
        create = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"{HOST}:{port}" for port in self.ports),
             "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=max(1.0, deadline - time.monotonic()),
        )
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed ({create.returncode}):\n"
                               f"{create.stdout}\n{create.stderr}\n{self.log_tails()}")
        self._wait(self._healthy, deadline, "cluster_state:ok on every node and every replica attached")
        self.started_in = time.monotonic() - began
        return self

    def _wait(self, check, deadline: float, what: str) -> None:
        while True:
            ended = [port for port, process in self.processes.items() if process.poll() is not None]
            if ended:
                raise RuntimeError(f"redis-server ended before {what}: ports {ended}\n{self.log_tails()}")
            try:
                if check():
                    return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster did not reach {what} in time\n{self.log_tails()}")
            time.sleep(0.05)

    def _pings(self, port: int) -> bool:
        return bool(self.command(port, "PING"))

    def _healthy(self) -> bool:
        for port in self.ports:
            info = self.command(port, "CLUSTER", "INFO")
            if "cluster_state:ok" not in info or f"cluster_known_nodes:{len(self.ports)}" not in info:
                return False
        nodes = self.nodes()
        masters = [node for node in nodes if node.role == "master"]
        replicas = [node for node in nodes if node.role == "replica"]
        if len(masters) != self.master_count or sum(node.slot_count for node in masters) != SLOTS:
            return False
        if len(replicas) != self.master_count * self.replicas_per_master:
            return False
        for replica in replicas:
            with self.client(replica.port) as node:
                if node.info("replication").get("master_link_status") != "up":
                    return False
        return True

    def log_tails(self, lines: int = 15) -> str:
        tails = []
        for port in self.ports:
            path = self.directory / str(port) / "node.log"
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            tails.append(f"--- node {port} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(tails)

    def kill(self, node: ClusterNode | int) -> None:
        """SIGKILL one node (by its ClusterNode or port): no shutdown code runs."""
        port = node if isinstance(node, int) else node.port
        process = self.processes[port]
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        """End every node (SIGTERM, then SIGKILL after 5 s) and remove the folder. Idempotent."""
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)
        atexit.unregister(self.stop)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # its own session: the group is the node alone
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory) -> Iterator[RedisCluster]:
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (scripts/ensure-services.sh installs them)")
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_client(io_loop, redis_cluster: RedisCluster):
    """redis-py's asyncio cluster client on the session's cluster, on the test's loop, closed
    on it. Connected lazily: a test that sends many commands at once awaits its initialize()
    first (see cluster_client)."""
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    client = AsyncRedisCluster.from_url(redis_cluster.url, socket_connect_timeout=2)
    yield client
    io_loop.run_sync(client.aclose)


def cluster_client(io_loop, url: str):
    """A cluster client that has read the cluster's slots already. redis-py 8.1's client, used
    by many coroutines at once before its first initialize() is over, sends some commands to
    the wrong node (MOVED) and then closes connections that others are using (seen here with
    80 concurrent SETs on a new client; none once initialized)."""
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    client = AsyncRedisCluster.from_url(url, socket_connect_timeout=2)
    io_loop.run_sync(client.initialize)
    return client


@dataclass
class RedisTarget:
    client: Any  # redis.asyncio.Redis, or redis.asyncio.cluster.RedisCluster (initialized)
    layout: Any  # adapters.redis.layout.KeyLayout
    cluster: bool


@pytest.fixture(params=["single", "cluster"])
def redis_target(request) -> RedisTarget:
    if request.param == "single":
        return request.getfixturevalue("redis_single_target")
    return request.getfixturevalue("redis_cluster_target")


@pytest.fixture
def redis_single_target(redis_client) -> RedisTarget:
    """redis_target's one-Redis half: the claimed database's client, one Redis's layout."""
    from adapters.redis.layout import SINGLE

    return RedisTarget(redis_client, SINGLE, False)


@pytest.fixture
def redis_cluster_target(io_loop, redis_cluster: RedisCluster) -> Iterator[RedisTarget]:
    """redis_target's cluster half: the cluster emptied, an initialized client, the cluster layout."""
    from adapters.redis.buckets import Buckets
    from adapters.redis.layout import ClusterLayout

    cluster = redis_cluster
    for master in cluster.masters():  # as the claimed database: empty
        cluster.command(master.port, "FLUSHALL")
    client = cluster_client(io_loop, cluster.url)
    yield RedisTarget(client, ClusterLayout(Buckets()), True)
    io_loop.run_sync(client.aclose)
