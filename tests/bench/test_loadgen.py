"""The load generator of `make bench` (scripts/bench/loadgen) keeps working: its wire pieces
on hand-made bytes, and a smoke run of every scenario, small, against an embedded
`courier serve` (about 15 s): each scenario measured, every message delivered, the rows
printed."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.services.courier_command import FAST_ENV, CourierCommand

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "bench"))

from loadgen import rows  # noqa: E402
from loadgen.measure import pcts  # noqa: E402
from loadgen.wire import HttpConn, Hub, WsConn  # noqa: E402


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_websocket_frames_split_anywhere_arrive_whole_and_pings_are_answered() -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()
        opened = loop.create_future()
        ws = WsConn(7, b"GET /ws HTTP/1.1\r\n\r\n", b"dGhlIHNhbXBsZSBub25jZQ==", opened)
        transport = FakeTransport()
        ws.connection_made(transport)
        assert transport.written.startswith(b"GET /ws")
        got = []
        Hub.on_frame = lambda idx, payload, t: got.append((idx, payload))
        big = b"x" * 300  # a 16-bit length
        stream = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                  + b"\x81\x05hello" + b"\x89\x02hi" + b"\x81\x7e\x01\x2c" + big
                  + b"\x01\x03abc" + b"\x80\x03def")  # a fragmented text message
        for i in range(0, len(stream), 3):  # three bytes at a time
            ws.data_received(stream[i:i + 3])
        assert opened.done() and opened.result() is ws
        assert got == [(7, b"hello"), (7, big), (7, b"abcdef")]
        assert transport.written.endswith(b"\x8a\x82\x00\x00\x00\x00hi")  # the pong, masked
        Hub.on_frame = lambda idx, payload, t: None

    asyncio.run(go())


def test_http_answers_with_a_length_or_chunked() -> None:
    async def go() -> None:
        conn = HttpConn()
        conn.connection_made(FakeTransport())
        first = conn.request(b"POST / HTTP/1.1\r\n\r\n")
        conn.data_received(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{")
        assert not first.done()
        conn.data_received(b"}")
        assert first.result() == (201, b"{}")
        second = conn.request(b"GET / HTTP/1.1\r\n\r\n")
        conn.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        assert second.result() == (200, b"abcde")

    asyncio.run(go())


def test_figures_and_their_ratios() -> None:
    assert pcts([float(x) for x in range(1, 101)]) == {"n": 100, "p50": 50, "p90": 90, "p99": 99, "max": 100}
    a = [{"sends_per_s": 1000, "push_2000_p99_ms": 10.0}, {"sends_per_s": 1200, "push_2000_p99_ms": 20.0}]
    b = [{"sends_per_s": 1100, "push_2000_p99_ms": 5.0}, {"sends_per_s": 1200, "push_2000_p99_ms": 30.0}]
    out = rows.compare(a, b)
    sends = next(line for line in out.splitlines() if line.startswith("sends_per_s"))
    assert "1.050" in sends  # median of 1.10 and 1.00
    side = rows.side_by_side({"courier": {"sends_per_s": 900.0, "push_2000_p99_ms": 4.0},
                              "floor_py": {"sends_per_s": 600.0, "push_2000_p99_ms": 8.0},
                              "aiohttp_py": {"sends_per_s": 1200.0, "push_2000_p99_ms": 2.0},
                              "ws_node": {"sends_per_s": 9000.0, "push_2000_p99_ms": 1.0}})
    assert "0.75 (aiohttp_py; higher is better)" in side  # 900 / 1200, node left out
    assert "2.00 (aiohttp_py; lower is better)" in side


@pytest.mark.bench
def test_a_smoke_run_of_every_scenario_against_embedded_courier(tmp_path) -> None:
    env = {**os.environ, **FAST_ENV, "COURIER_DATA_DIR": str(tmp_path / "data"), "COURIER_SEND_RATE": "0",
           "COURIER_WS_MAX_PER_ADDRESS": "0", "COURIER_LOG_LEVEL": "warning", "COURIER_ARGON2_MEMORY_KIB": "64"}
    env.pop("COURIER_REDIS_URL", None)
    env.pop("COURIER_DATABASE_URL", None)
    server = CourierCommand("serve", tmp_path, env).start()
    try:
        deadline = time.monotonic() + 20
        while not server._healthy():
            assert server.running, server.output()
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        out = tmp_path / "rows.jsonl"
        run = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "bench" / "loadgen"), "--base", server.base_url,
             "--pid", str(server.process.pid), "--out", str(out), "--connect", "40,60", "--pairs", "10",
             "--rates", "50,100", "--push-seconds", "1.5", "--tp-concurrency", "4", "--tp-seconds", "1.5",
             "--fanout", "30@20", "--fanout-seconds", "1.5", "--max-seconds", "60",
             "--connect-settle", "0.5", "--pause", "0.2"],
            capture_output=True, text=True, timeout=90)
        assert run.returncode == 0, run.stdout + run.stderr
        recs = [json.loads(line) for line in out.read_text().splitlines()]
        by = {}
        for r in recs:
            by.setdefault(r["scenario"], []).append(r)
        assert [r["n"] for r in by["connect"]] == [40, 60]
        assert all(r["fail"] == 0 and r["open_after_settle"] == r["n"] for r in by["connect"])
        assert by["connect"][-1]["rss_per_conn_kb"] is not None
        for r in by["push"]:
            assert r["accepted"] == r["messages"] and r["lost"] == 0 and r["duplicates"] == 0
            assert r["misrouted"] == 0 and r["echo_to_sender"] == 0 and r["latency_ms"]["n"] == r["messages"]
        assert by["throughput"][0]["all_delivered"] and by["throughput"][0]["accepted"] > 0
        fan = by["fanout"][0]
        assert fan["accepted"] == 30 and fan["delivered"] == fan["expected_deliveries"] == 30 * 29
        assert by["protocol"][0] == {**by["protocol"][0], "binary": 0, "unparsable": 0, "unexpected_close": 0}
        figures = by["rows"][0]["rows"]
        assert {"push_100_p99_ms", "sends_per_s", "fanout_30_20_last_p99_ms", "connect_60_s",
                "kb_per_socket_60"} <= set(figures)
        titles = ("push 50/s", "push 100/s", "max sends/s", "fan-out 30 @ 20/s", "connect 60", "memory per open socket")
        assert all(title in run.stdout for title in titles), run.stdout
        assert "load generator:" in run.stdout and "machine:" in run.stdout
    finally:
        server.cleanup()
