#!/usr/bin/env python3
"""Resume time for a user in many large groups (issue 18 point 6): a reader in --groups
large groups is offline while --posts messages are posted to them (round robin), then
resumes from its last cursor, --rounds times each way:

  ws      connect /ws?cursor=C&events=1 until the last missed message's frame;
  events  GET /api/v1/events?cursor=C&limit=200, page after page, until has_more is false.

Starts a Redis of its own and Courier in production mode as scripts/bench/courier-target.sh
runs it (a fresh MariaDB database, dropped at the end), with COURIER_LARGE_GROUP=3, so
that groups of four are large: what a resume costs depends on how many streams it merges,
not on how many members each group has. Checks every resume got each missed message once.

    .venv/bin/python scripts/bench/resume_large.py [--groups 50] [--posts 1000] [--rounds 3]

Loopback only; run it with the Courier checkout's .venv (tornado, orjson, redis)."""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from urllib.parse import quote

import orjson
import tornado.httpclient
import tornado.websocket

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from presence_bench import PASSWORD, Servers, log  # noqa: E402 - beside this script


class Http:
    def __init__(self, base: str):
        self.base = base
        self.client = tornado.httpclient.AsyncHTTPClient(max_clients=32)

    async def call(self, method: str, path: str, body=None, token: str | None = None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.client.fetch(self.base + path, method=method, headers=headers,
                                           body=None if body is None else orjson.dumps(body), raise_error=False)
        if response.code >= 300:
            raise SystemExit(f"{method} {path}: {response.code} {response.body[:200]!r}")
        return orjson.loads(response.body) if response.body else None

    async def user(self) -> tuple[str, str]:
        name = "r" + uuid.uuid4().hex[:12]
        created = await self.call("POST", "/api/v1/users/register", {"username": name, "password": PASSWORD})
        login = await self.call("POST", "/api/v1/users/login", {"username": name, "password": PASSWORD})
        return created["user_id"], login["token"]


async def pull_all(http: Http, token: str, cursor: str | None) -> tuple[list[dict], str | None, int]:
    events, pages = [], 0
    while True:
        query = "?limit=200" + (f"&cursor={quote(cursor)}" if cursor else "")
        page = await http.call("GET", "/api/v1/events" + query, token=token)
        pages += 1
        events += page["events"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return events, cursor, pages


async def run(opt) -> None:
    http = Http(f"http://127.0.0.1:{opt.port}")
    reader_id, reader = await http.user()
    posters = [await http.user() for _ in range(3)]
    groups = []
    for index in range(opt.groups):
        body = {"name": f"large {index}", "member_ids": [reader_id, *(user_id for user_id, _ in posters[1:])]}
        groups.append((await http.call("POST", "/api/v1/groups", body, posters[0][1]))["group_id"])
    for group_id in groups:  # one message each, read: the cursor then names every group
        await http.call("POST", f"/api/v1/groups/{group_id}/messages", {"content": "first"}, posters[0][1])
    _, cursor, _ = await pull_all(http, reader, None)
    log(f"reader in {opt.groups} large groups; cursor of {len(cursor or '')} characters")
    missed: list[str] = []
    semaphore = asyncio.Semaphore(8)

    async def post(n: int) -> None:
        async with semaphore:
            _, token = posters[n % len(posters)]
            sent = await http.call("POST", f"/api/v1/groups/{groups[n % len(groups)]}/messages",
                                   {"content": f"missed {n}"}, token)
            missed.append(sent["id"])

    await asyncio.gather(*(post(n) for n in range(opt.posts)))
    expected = set(missed)
    times: dict[str, list[float]] = {"ws": [], "events": []}
    for _ in range(opt.rounds):
        started = time.perf_counter()
        events, _, pages = await pull_all(http, reader, cursor)
        times["events"].append(time.perf_counter() - started)
        got = [e["id"] for e in events if e["type"] == "group"]
        assert len(got) == len(expected) and set(got) == expected, "the pull missed or doubled a message"
        url = f"ws://127.0.0.1:{opt.port}/ws?events=1&token={reader}&cursor={quote(cursor or '')}"
        started = time.perf_counter()
        ws = await tornado.websocket.websocket_connect(url, ping_interval=None)
        seen: list[str] = []
        while len(seen) < len(expected):
            frame = orjson.loads(await ws.read_message())
            if frame.get("type") == "group":
                seen.append(frame["id"])
        times["ws"].append(time.perf_counter() - started)
        ws.close()
        assert set(seen) == expected and len(seen) == len(expected), "the replay missed or doubled a message"
        log(f"events: {times['events'][-1] * 1000:.0f} ms in {pages} pages; ws: {times['ws'][-1] * 1000:.0f} ms")
    for way, values in times.items():
        print(f"resume {way}: {opt.posts} missed posts over {opt.groups} large groups: "
              f"median {statistics.median(values) * 1000:.0f} ms (rounds: "
              + " ".join(f"{v * 1000:.0f}" for v in values) + ")")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8873)
    parser.add_argument("--redis-port", type=int, default=6413)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    opt = parser.parse_args()
    os.environ.setdefault("COURIER_LARGE_GROUP", "3")
    os.environ.setdefault("COURIER_RECEIPTS_MAX_GROUP", "2")  # below COURIER_LARGE_GROUP, as the settings require
    os.environ.setdefault("COURIER_GROUP_CHANGES", "0")  # 50 groups made at once
    servers = Servers(opt.port, opt.redis_port, 1)
    servers.start()
    try:
        asyncio.run(run(opt))
    finally:
        servers.stop()


if __name__ == "__main__":
    main()
