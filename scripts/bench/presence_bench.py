#!/usr/bin/env python3
"""What presence and typing cost a production gateway (issue 16 point 5).

Starts a Redis of its own (a temporary directory, --redis-port) and Courier in production
mode as scripts/bench/courier-target.sh runs it (`courier serve` + `courier worker`, a
fresh MariaDB database courier_bench_PORT on 127.0.0.1:3306, dropped at the end), registers
--users users, opens one event-view socket (/ws?events=1) per user, and then runs the
phases given by --phases, alternating in one run:

  A  the sockets open, no presence subscription;
  B  every socket subscribes (presence_subscribe) to --per other users, chosen at random
     once per user (the same set each time it subscribes).

Each phase: (B only) the RSS of the gateway and Redis' used_memory before and after every
socket subscribed (memory per subscription); an idle window (--idle s: nothing but the
sockets' pings), whose CPU rate is taken off the next window's; then the churn window:
--reconnect of the sockets (0.10) are closed and reopened per minute, spread evenly over
the minute, for --seconds; a closed socket stays away --away seconds (default 15, more
than the server's grace of 10 s plus its 2 s expiry look, so each reconnect is two status
changes: offline once the grace ran out, online when it comes back), and on its return
subscribes again in a B phase. The window ends when the last socket is back. Counted in
it: the gateway's CPU time (/proc/PID/stat utime+stime) and RSS, Redis' CPU (INFO cpu),
its PUBLISH calls (INFO commandstats: one per status change published; nothing else
publishes in this bench), its pub/sub channel count, and the presence frames the
clients got (the answers of a subscription counted apart from the changes). At the end
of a B phase every socket subscribes to [] (the channel count must fall back).

Then the typing sub-bench: --typing-sockets sockets each send one typing frame per second
(start and stop in turn) to another of them; the gateway's CPU per typing frame, over an
idle window of the same length just before.

    .venv/bin/python scripts/bench/presence_bench.py [--port 8871] [--redis-port 6411] \
        [--users 2000] [--per 50] [--seconds 120] [--phases A,B,A,B] [--out results.json]

Prints a line per phase and a table; --out keeps every sample. Loopback only; run it with
the Courier checkout's .venv (tornado, orjson, redis: no other dependency).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import orjson
import redis.asyncio as aioredis
import tornado.httpclient
import tornado.websocket

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TICKS = os.sysconf("SC_CLK_TCK")
PASSWORD = "password-123"


def log(*args) -> None:
    print(time.strftime("[%H:%M:%S]"), *args, file=sys.stderr, flush=True)


# --- the processes measured --------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def listening_pids(port: int) -> list[int]:
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    pids = []
    for part in out.split("pid=")[1:]:
        pid = int(part.split(",")[0])
        if pid not in pids:
            pids.append(pid)
    return pids


class Servers:
    """A Redis of the bench's own and courier-target.sh production on it."""

    def __init__(self, port: int, redis_port: int, gateways: int):
        self.port, self.redis_port, self.gateways = port, redis_port, gateways
        self.tmp = tempfile.mkdtemp(prefix="courier-presence-bench.")
        self.target: subprocess.Popen | None = None
        self.redis_pid = 0
        self.gateway_pids: list[int] = []

    def start(self) -> None:
        for port in (self.port, self.redis_port):
            if listening_pids(port) or _in_use(port):
                raise SystemExit(f"port {port} is in use")
        subprocess.run(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--daemonize", "yes",
                        "--save", "", "--appendonly", "no", "--dir", self.tmp,
                        "--pidfile", f"{self.tmp}/redis.pid", "--logfile", f"{self.tmp}/redis.log"], check=True)
        for _ in range(100):
            if os.path.exists(f"{self.tmp}/redis.pid"):
                break
            time.sleep(0.05)
        self.redis_pid = int(open(f"{self.tmp}/redis.pid").read())
        args = [f"{HERE}/courier-target.sh", "production", str(self.port), f"redis://127.0.0.1:{self.redis_port}/0",
                "--flush-redis"]
        if self.gateways > 1:
            args += ["--gateways", str(self.gateways)]
        self.target = subprocess.Popen(args, stdout=open(f"{self.tmp}/server.log", "w"), stderr=subprocess.STDOUT,
                                       start_new_session=True)
        deadline = time.monotonic() + 120
        while len(self.gateway_pids) < self.gateways:
            if time.monotonic() > deadline or self.target.poll() is not None:
                raise SystemExit(f"the gateway did not come up (see {self.tmp}/server.log)")
            time.sleep(0.2)
            self.gateway_pids = listening_pids(self.port)
        log(f"gateway pid(s) {self.gateway_pids}, redis pid {self.redis_pid}, logs in {self.tmp}")

    def stop(self) -> None:
        if self.target is not None and self.target.poll() is None:
            os.killpg(self.target.pid, signal.SIGTERM)
            try:
                self.target.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.target.pid, signal.SIGKILL)
                self.target.wait()
        if self.redis_pid:
            try:
                os.kill(self.redis_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        subprocess.run(["mysql", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e",
                        f"DROP DATABASE IF EXISTS courier_bench_{self.port}"], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _in_use(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- the clients ------------------------------------------------------------------------

class Counters:
    def __init__(self):
        self.snapshot_frames = 0  # presence frames answering a subscription
        self.change_frames = 0  # presence frames of a change
        self.typing_frames = 0
        self.errors = 0
        self.opened = 0
        self.closed_unasked = 0


class Client:
    def __init__(self, index: int, user_id: str, token: str, ws_url: str, counters: Counters):
        self.index, self.user_id, self.token = index, user_id, token
        self.url = f"{ws_url}?token={token}&events=1"
        self.counters = counters
        self.ws: tornado.websocket.WebSocketClientConnection | None = None
        self.reader: asyncio.Task | None = None
        self.watches: list[str] = []
        self.snapshot_left = 0
        self.answered = asyncio.Event()
        self.busy = False

    async def open(self) -> None:
        for attempt in range(5):
            try:
                self.ws = await tornado.websocket.websocket_connect(self.url, ping_interval=None)
                break
            except Exception as error:  # noqa: BLE001 - retried; a bench on a busy machine
                if attempt == 4:
                    raise
                log(f"socket {self.index}: {error!r}, again")
                await asyncio.sleep(0.5 + attempt)
        self.counters.opened += 1
        self.snapshot_left = 0
        self.reader = asyncio.ensure_future(self._read(self.ws))

    async def _read(self, ws) -> None:
        counters = self.counters
        while True:
            message = await ws.read_message()
            if message is None:
                if ws is self.ws:
                    counters.closed_unasked += 1
                return
            frame = orjson.loads(message)
            kind = frame.get("type")
            if kind == "presence":
                if self.snapshot_left > 0:
                    self.snapshot_left -= 1
                    counters.snapshot_frames += 1
                    if self.snapshot_left == 0:
                        self.answered.set()
                else:
                    counters.change_frames += 1
            elif kind == "typing":
                counters.typing_frames += 1
            elif kind == "error":
                counters.errors += 1
                log(f"socket {self.index}: {frame}")

    async def subscribe(self, user_ids: list[str]) -> None:
        self.snapshot_left = len(user_ids)
        self.answered.clear()
        if not user_ids:
            self.answered.set()
        await self.ws.write_message(orjson.dumps({"type": "presence_subscribe", "user_ids": user_ids}).decode())

    async def close(self) -> None:
        ws, self.ws = self.ws, None
        ws.close()
        if self.reader is not None:
            await self.reader
            self.reader = None


async def register(base: str, users: int, concurrency: int) -> list[tuple[str, str]]:
    http = tornado.httpclient.AsyncHTTPClient(max_clients=concurrency)
    prefix = "pb" + uuid.uuid4().hex[:6]

    async def call(path: str, body: dict) -> dict:
        for attempt in range(5):
            response = await http.fetch(base + path, method="POST", body=json.dumps(body),
                                        headers={"Content-Type": "application/json"}, raise_error=False,
                                        request_timeout=120)
            if response.code in (200, 201):
                return json.loads(response.body)
            if attempt == 4 or response.code not in (429, 503, 599):
                raise SystemExit(f"{path}: {response.code} {response.body!r}")
            await asyncio.sleep(1 + attempt)
        raise AssertionError

    async def one(i: int) -> tuple[str, str]:
        name = f"{prefix}{i:05d}"
        user = await call("/api/v1/users/register", {"username": name, "password": PASSWORD})
        login = await call("/api/v1/users/login", {"username": name, "password": PASSWORD})
        return user["user_id"], login["token"]

    out: list[tuple[str, str]] = []
    for start in range(0, users, 200):
        out += await asyncio.gather(*(one(i) for i in range(start, min(users, start + 200))))
    return out


async def in_batches(coros, size: int) -> None:
    coros = list(coros)
    for start in range(0, len(coros), size):
        await asyncio.gather(*coros[start:start + size])


# --- sampling ---------------------------------------------------------------------------

class Probe:
    def __init__(self, servers: Servers):
        self.servers = servers
        self.redis = aioredis.Redis(host="127.0.0.1", port=servers.redis_port)

    async def read(self, counters: Counters) -> dict:
        info = await self.redis.info("all")
        stats = {k: v for k, v in info.items() if k.startswith("cmdstat_")}
        pids = self.servers.gateway_pids
        return {
            "t": time.monotonic(),
            "gateway_cpu": sum(cpu_seconds(pid) for pid in pids),
            "gateway_rss": sum(rss_bytes(pid) for pid in pids),
            "redis_cpu": float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
            "redis_used_memory": int(info["used_memory"]),
            "pubsub_channels": int(info["pubsub_channels"]),
            "redis_ops": int(info["instantaneous_ops_per_sec"]),
            "publish": int(stats.get("cmdstat_publish", {}).get("calls", 0)),
            "evalsha": int(stats.get("cmdstat_evalsha", {}).get("calls", 0)),
            "snapshot_frames": counters.snapshot_frames,
            "change_frames": counters.change_frames,
            "typing_frames": counters.typing_frames,
        }


class Sampler:
    """Samples every `every` seconds into `samples` (tagged with the phase) while running."""

    def __init__(self, probe: Probe, counters: Counters, every: float):
        self.probe, self.counters, self.every = probe, counters, every
        self.samples: list[dict] = []
        self.phase = ""
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            sample = await self.probe.read(self.counters)
            sample["phase"] = self.phase
            self.samples.append(sample)
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self.task:
            self.task.cancel()


def delta(a: dict, b: dict, key: str) -> float:
    return b[key] - a[key]


# --- the bench --------------------------------------------------------------------------

async def settle(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def subscribe_all(clients: list[Client], per_user: dict[int, list[str]], empty: bool = False) -> None:
    async def one(client: Client) -> None:
        await client.subscribe([] if empty else per_user[client.index])
        await asyncio.wait_for(client.answered.wait(), 120)

    await in_batches((one(c) for c in clients), 200)


async def churn(clients: list[Client], args, subscribe: bool, per_user: dict[int, list[str]]) -> int:
    """Close and reopen args.reconnect of the sockets per minute, spread evenly, for
    args.seconds; returns once every socket closed is back (and answered)."""
    interval = 60.0 / (args.reconnect * len(clients))
    count = int(args.seconds / interval)
    rng = random.Random(args.seed + 1)
    tasks = []

    async def cycle(client: Client) -> None:
        try:
            await client.close()
            await asyncio.sleep(args.away)
            await client.open()
            if subscribe:
                await client.subscribe(per_user[client.index])
                await asyncio.wait_for(client.answered.wait(), 60)
        finally:
            client.busy = False

    started = time.monotonic()
    for k in range(count):
        await asyncio.sleep(max(0.0, started + k * interval - time.monotonic()))
        while True:
            client = clients[rng.randrange(len(clients))]
            if not client.busy:
                break
        client.busy = True
        tasks.append(asyncio.ensure_future(cycle(client)))
    await asyncio.gather(*tasks)
    return count


def window(samples_before: dict, samples_after: dict) -> dict:
    a, b = samples_before, samples_after
    return {k: delta(a, b, k) for k in ("t", "gateway_cpu", "redis_cpu", "publish", "evalsha", "snapshot_frames",
                                        "change_frames", "typing_frames")}


async def run(args) -> dict:
    servers = Servers(args.port, args.redis_port, args.gateways)
    servers.start()
    results: dict = {"args": vars(args), "phases": [], "typing": None}
    try:
        base = f"http://127.0.0.1:{args.port}"
        ws_url = f"ws://127.0.0.1:{args.port}/ws"
        t0 = time.monotonic()
        accounts = await register(base, args.users, args.concurrency)
        log(f"{len(accounts)} users registered and logged in in {time.monotonic() - t0:.1f} s")
        counters = Counters()
        clients = [Client(i, uid, token, ws_url, counters) for i, (uid, token) in enumerate(accounts)]
        rng = random.Random(args.seed)
        ids = [c.user_id for c in clients]
        per_user = {}
        for c in clients:
            chosen = rng.sample(range(len(ids) - 1), args.per)
            per_user[c.index] = [ids[j if j < c.index else j + 1] for j in chosen]  # never oneself
        probe = Probe(servers)
        sampler = Sampler(probe, counters, args.every)
        sampler.phase = "empty"
        empty = await probe.read(counters)
        t0 = time.monotonic()
        await in_batches((c.open() for c in clients), 100)
        log(f"{len(clients)} sockets open in {time.monotonic() - t0:.1f} s")
        sampler.start()
        await settle(args.grace + 5)
        opened = await probe.read(counters)
        results["sockets"] = {"rss_empty": empty["gateway_rss"], "rss_open": opened["gateway_rss"],
                              "redis_memory_open": opened["redis_used_memory"]}
        for number, kind in enumerate(args.phases.split(",")):
            kind = kind.strip().upper()
            name = f"{number + 1}{kind}"
            sampler.phase = name
            row: dict = {"phase": name, "kind": kind}
            if kind == "B":
                await settle(3)
                before = await probe.read(counters)
                t = time.monotonic()
                await subscribe_all(clients, per_user)
                row["subscribe_seconds"] = time.monotonic() - t
                await settle(5)
                after = await probe.read(counters)
                subs = len(clients) * args.per
                row.update(subscriptions=subs,
                           rss_before=before["gateway_rss"], rss_after=after["gateway_rss"],
                           bytes_per_subscription=(after["gateway_rss"] - before["gateway_rss"]) / subs,
                           redis_bytes_per_subscription=(after["redis_used_memory"] - before["redis_used_memory"])
                           / subs,
                           channels=after["pubsub_channels"],
                           subscribe_cpu=after["gateway_cpu"] - before["gateway_cpu"],
                           snapshot_frames=after["snapshot_frames"] - before["snapshot_frames"])
            idle_a = await probe.read(counters)
            await settle(args.idle)
            idle_b = await probe.read(counters)
            idle = window(idle_a, idle_b)
            row["idle"] = idle
            idle_rate = idle["gateway_cpu"] / idle["t"]
            redis_idle_rate = idle["redis_cpu"] / idle["t"]
            start = await probe.read(counters)
            reconnects = await churn(clients, args, kind == "B", per_user)
            await settle(2)
            end = await probe.read(counters)
            w = window(start, end)
            row["churn"] = w
            row["reconnects"] = reconnects
            changes = w["publish"]
            row["changes"] = changes
            row["gateway_cpu_rate"] = w["gateway_cpu"] / w["t"]
            row["idle_cpu_rate"] = idle_rate
            row["cpu_per_change"] = (w["gateway_cpu"] - idle_rate * w["t"]) / max(1, changes)
            row["cpu_per_reconnect"] = (w["gateway_cpu"] - idle_rate * w["t"]) / max(1, reconnects)
            row["redis_cpu_per_change"] = (w["redis_cpu"] - redis_idle_rate * w["t"]) / max(1, changes)
            row["frames_per_change"] = w["change_frames"] / max(1, changes)
            row["change_frames_per_second"] = w["change_frames"] / w["t"]
            row["rss_end"] = end["gateway_rss"]
            row["channels_end"] = end["pubsub_channels"]
            if kind == "B":
                await subscribe_all(clients, per_user, empty=True)
                await settle(3)
                row["channels_after_unsubscribe"] = (await probe.read(counters))["pubsub_channels"]
            results["phases"].append(row)
            log(f"phase {name}: {reconnects} reconnects, {changes} changes published, "
                f"{w['change_frames']} change frames in {w['t']:.0f} s; gateway CPU {w['gateway_cpu']:.2f} s "
                f"(idle {idle_rate * 100:.1f}% of a CPU), {row['cpu_per_change'] * 1e3:.2f} ms per change; "
                f"RSS {end['gateway_rss'] / 2**20:.1f} MiB; channels {end['pubsub_channels']}"
                + (f"; {row['bytes_per_subscription']:.0f} B/subscription (gateway RSS), "
                   f"{row['redis_bytes_per_subscription']:.0f} B (Redis), "
                   f"{row['channels_after_unsubscribe']} channels after unsubscribing" if kind == "B" else ""))
        if args.typing_sockets:
            sampler.phase = "typing"
            results["typing"] = await typing_bench(clients[:args.typing_sockets], args, probe, counters)
        sampler.stop()
        results["samples"] = sampler.samples
        results["counters"] = vars(counters)
        for c in clients:
            if c.ws is not None:
                c.ws.close()
    finally:
        servers.stop()
    return results


async def typing_bench(clients: list[Client], args, probe: Probe, counters: Counters) -> dict:
    """Each socket sends one typing frame a second, start and stop in turn, to the next one's user."""
    n = len(clients)
    idle_a = await probe.read(counters)
    await settle(args.typing_seconds)
    idle_b = await probe.read(counters)
    idle = window(idle_a, idle_b)
    sent = 0

    async def typer(i: int, until: float) -> None:
        nonlocal sent
        client, peer = clients[i], clients[(i + 1) % n]
        await asyncio.sleep(i / n)  # spread over the second
        state = "start"
        while time.monotonic() < until:
            await client.ws.write_message(orjson.dumps({"type": "typing", "to_user_id": peer.user_id,
                                                        "state": state}).decode())
            sent += 1
            state = "stop" if state == "start" else "start"
            await asyncio.sleep(1.0)

    start = await probe.read(counters)
    until = time.monotonic() + args.typing_seconds
    await asyncio.gather(*(typer(i, until) for i in range(n)))
    await settle(1)
    end = await probe.read(counters)
    w = window(start, end)
    idle_rate = idle["gateway_cpu"] / idle["t"]
    row = {"sockets": n, "sent": sent, "received": w["typing_frames"], "published": w["publish"],
           "idle": idle, "window": w,
           "cpu_per_frame": (w["gateway_cpu"] - idle_rate * w["t"]) / max(1, sent),
           "redis_cpu_per_frame": (w["redis_cpu"] - idle["redis_cpu"] / idle["t"] * w["t"]) / max(1, sent),
           "gateway_cpu_rate": w["gateway_cpu"] / w["t"], "idle_cpu_rate": idle_rate}
    log(f"typing: {n} sockets sent {sent} frames, {w['typing_frames']} received, {w['publish']} published; "
        f"gateway {row['cpu_per_frame'] * 1e6:.0f} us per frame (CPU {row['gateway_cpu_rate'] * 100:.1f}% "
        f"against {idle_rate * 100:.1f}% idle)")
    return row


def table(results: dict) -> str:
    lines = ["| phase | reconnects | changes | change frames / change | gateway CPU % (idle %) | "
             "gateway ms CPU / change | Redis ms CPU / change | gateway ms CPU / reconnect | RSS MiB | channels |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in results["phases"]:
        lines.append(f"| {row['phase']} | {row['reconnects']} | {row['changes']} | {row['frames_per_change']:.1f} | "
                     f"{row['gateway_cpu_rate'] * 100:.1f} ({row['idle_cpu_rate'] * 100:.1f}) | "
                     f"{row['cpu_per_change'] * 1e3:.2f} | {row['redis_cpu_per_change'] * 1e3:.3f} | "
                     f"{row['cpu_per_reconnect'] * 1e3:.2f} | {row['rss_end'] / 2**20:.1f} | {row['channels_end']} |")
    subs = [r for r in results["phases"] if r["kind"] == "B"]
    if subs:
        lines += ["", "| phase | subscriptions | subscribe s | gateway CPU s to subscribe | RSS before → after MiB | "
                  "B / subscription (gateway) | B / subscription (Redis) | channels | after unsubscribe |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in subs:
            lines.append(f"| {r['phase']} | {r['subscriptions']:,} | {r['subscribe_seconds']:.1f} | "
                         f"{r['subscribe_cpu']:.2f} | {r['rss_before'] / 2**20:.1f} → {r['rss_after'] / 2**20:.1f} | "
                         f"{r['bytes_per_subscription']:.0f} | {r['redis_bytes_per_subscription']:.0f} | "
                         f"{r['channels']} | {r['channels_after_unsubscribe']} |")
    t = results.get("typing")
    if t:
        lines += ["", f"typing: {t['sockets']} sockets, {t['sent']} frames sent, {t['received']} received, "
                  f"{t['published']} published; gateway {t['cpu_per_frame'] * 1e6:.0f} us CPU per frame "
                  f"({t['gateway_cpu_rate'] * 100:.1f}% of a CPU against {t['idle_cpu_rate'] * 100:.1f}% idle), "
                  f"Redis {t['redis_cpu_per_frame'] * 1e6:.0f} us per frame"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8871)
    parser.add_argument("--redis-port", type=int, default=6411)
    parser.add_argument("--gateways", type=int, default=1)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--per", type=int, default=50, help="users each socket subscribes to")
    parser.add_argument("--seconds", type=float, default=120, help="churn window of each phase")
    parser.add_argument("--reconnect", type=float, default=0.10, help="fraction of the sockets reconnecting a minute")
    parser.add_argument("--away", type=float, default=15.0, help="seconds a closed socket stays closed")
    parser.add_argument("--grace", type=float, default=10.0, help="the server's COURIER_PRESENCE_GRACE")
    parser.add_argument("--idle", type=float, default=15.0, help="idle window before each churn window")
    parser.add_argument("--phases", default="A,B,A,B")
    parser.add_argument("--typing-sockets", type=int, default=200)
    parser.add_argument("--typing-seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=16, help="registrations at a time")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between two samples")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--out", default="", help="write every figure and sample here (JSON)")
    args = parser.parse_args()
    os.environ.setdefault("COURIER_PRESENCE_GRACE", str(args.grace))
    try:
        import uvloop  # the gateway's loop; the clients' too when installed
        uvloop.install()
    except ImportError:
        pass
    results = asyncio.run(run(args))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    print(table(results))


if __name__ == "__main__":
    main()
