#!/usr/bin/env python3
"""What one wake-up costs on this machine: the yardstick for reading any benchmark figure.

Every push server in the bench spends most of a message waiting for, and waking up
on, another process (load.js, Redis, the gateway) over loopback TCP. What that costs
is a property of the machine, not of the server: on a VM whose idle vCPUs halt and
are woken by an inter-processor interrupt through the hypervisor, it can be several
times what it is on another. This measures it, so that figures from two machines can
be told apart from a change in the code:

- round trip: one byte back and forth between two processes over loopback TCP
  (TCP_NODELAY), the two on different CPUs and then on one;
- wake-up CPU: the CPU time a minimal asyncio echo server (uvloop when installed)
  spends per request when a client on the other CPU sends one request every
  millisecond - the server sleeps between requests, as a push server does.

    python3 scripts/bench/machine_probe.py [--rounds 20000] [--rate 1000] [--seconds 5]

Needs two CPUs (os.sched_setaffinity); prints one line per measure. Loopback only.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time


def _pair() -> tuple[socket.socket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    for end in (client, server):
        end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client, server


def round_trip_us(rounds: int, parent_cpu: int, child_cpu: int) -> float:
    client, server = _pair()
    child = os.fork()
    if child == 0:
        os.sched_setaffinity(0, {child_cpu})
        for _ in range(rounds):
            server.recv(1)
            server.send(b"x")
        os._exit(0)
    os.sched_setaffinity(0, {parent_cpu})
    client.send(b"x")  # one round first: the child is running and pinned
    client.recv(1)
    started = time.perf_counter()
    for _ in range(rounds - 1):
        client.send(b"x")
        client.recv(1)
    elapsed = time.perf_counter() - started
    os.waitpid(child, 0)
    client.close()
    server.close()
    return elapsed / (rounds - 1) * 1e6


class _Echo(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def _serve_echo(listener: socket.socket, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    try:
        import uvloop
        new_loop = uvloop.new_event_loop
    except ImportError:
        new_loop = asyncio.new_event_loop
    loop = new_loop()
    loop.run_until_complete(loop.create_server(_Echo, sock=listener))
    loop.run_forever()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wake_cpu_us(rate: int, seconds: float, client_cpu: int, server_cpu: int) -> float:
    listener = socket.create_server(("127.0.0.1", 0))
    server = os.fork()
    if server == 0:
        _serve_echo(listener, server_cpu)
        os._exit(0)
    try:
        os.sched_setaffinity(0, {client_cpu})
        client = socket.create_connection(listener.getsockname())
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = b"x" * 100
        client.send(payload)
        client.recv(1000)
        count = int(rate * seconds)
        cpu_before = _cpu_seconds(server)
        started = time.perf_counter()
        for i in range(count):
            due = started + i / rate
            while time.perf_counter() < due:  # spin: a sleep would add this side's wake-ups
                pass
            client.send(payload)
            client.recv(1000)
        return (_cpu_seconds(server) - cpu_before) / count * 1e6
    finally:
        os.kill(server, 9)
        os.waitpid(server, 0)
        listener.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("machine_probe: needs two CPUs")
    first, second = cpus[:2]
    print(f"loopback TCP round trip: {round_trip_us(args.rounds, first, second):.1f} us across two CPUs, "
          f"{round_trip_us(args.rounds, first, first):.1f} us on one")
    print(f"echo server CPU per request at {args.rate}/s: "
          f"{wake_cpu_us(args.rate, args.seconds, first, second):.1f} us with the client on the other CPU, "
          f"{wake_cpu_us(args.rate, args.seconds, first, first):.1f} us on the same one")


if __name__ == "__main__":
    main()
