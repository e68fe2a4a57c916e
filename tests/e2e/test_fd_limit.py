"""A gateway out of file descriptors (every socket it may open is open) stops
accepting for a moment instead of spinning on accept(), says so once, keeps
serving what it has, and accepts again once sockets have closed."""
from __future__ import annotations

import asyncio
import os
import socket
import time
import urllib.request

import pytest

FD_LIMIT = 64  # the server process's; its own files (SQLite, epoll, ...) take about 20


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _healthz(url: str) -> int:
    with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
        return response.status


@pytest.mark.gen_test(timeout=60)
async def test_out_of_file_descriptors_the_gateway_pauses_accepting_and_recovers(process):
    process.fd_limit = FD_LIMIT
    await process.start().ready()
    pid = process.process.pid
    held: list[socket.socket] = []
    try:
        # Idle connections the server accepts and keeps (each one of its fds), and more
        # than it can accept: the rest wait in the listen backlog.
        for _ in range(FD_LIMIT + 20):
            held.append(socket.create_connection(("127.0.0.1", process.port)))
        deadline = time.monotonic() + 10
        while _open_fds(pid) < FD_LIMIT - 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert _open_fds(pid) >= FD_LIMIT - 1, "the server never ran out of file descriptors"

        # Out of fds with connections waiting: it neither spins nor floods its log.
        cpu_before = _cpu_seconds(pid)
        await asyncio.sleep(1.0)
        assert _cpu_seconds(pid) - cpu_before < 0.3
        output = process.output()
        assert 1 <= output.count("cannot accept connections") <= 2, output[-3000:]
        assert "Too many open files (this process may open 64 files)" in output
        assert "Traceback" not in output, output[-3000:]

        # Sockets close: it accepts again, the waiting connections and new ones.
        for sock in held:
            sock.close()
        held.clear()
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, _healthz, process.base_url) == 200
    finally:
        for sock in held:
            sock.close()
