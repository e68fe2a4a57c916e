"""The client side of push_callgrind.sh: registers a sender and a recipient, opens a WebSocket
of each (both online, as in the yardstick's push scenario), then sends N private messages
one at a time: each POST waits for its 201 and for the recipient's socket to read the
message's frame before the next, so every push runs the whole way through the gateway -
request, Redis, the pub/sub notification back through the subscriber, the frames written -
and none overlaps another. --pairs K --inflight C: K sender->recipient pairs, C pushes
under way at once (each still waiting for its own frame), for what overlapping pushes
share (a turn of the loop, a read of the subscription). The yardstick's own clients
(loadgen.wire: keep-alive HTTP, the WebSocket receiver), so the gateway sees the requests
and sockets it sees in `make bench`. Standard library only (uvloop when it is there), so
that it runs with the Python of any tree's venv."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadgen.wire import Hub, Pool, open_ws  # noqa: E402

TIMEOUT = 120.0


async def call(pool: Pool, path: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    status, raw = await pool.request("POST", path, json.dumps(body).encode(), token)
    return status, json.loads(raw or b"null")


async def wait_up(pool: Pool) -> None:
    deadline = time.monotonic() + 600
    while True:
        try:
            status, _ = await pool.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            if status == 200:
                return
        except OSError:
            pool.close()
        if time.monotonic() > deadline:
            raise SystemExit("the gateway did not come up")
        await asyncio.sleep(0.5)


async def run(port: int, pushes: int, pairs: int, inflight: int, idle: float) -> None:
    pool = Pool("127.0.0.1", port, size=inflight)
    await wait_up(pool)
    ids, tokens = [], []
    for _ in range(2 * pairs):  # user 2p sends to user 2p + 1
        name = f"cg{uuid.uuid4().hex[:10]}"
        status, user = await call(pool, "/users/register", {"username": name, "password": "password-123"})
        assert status in (200, 201), (status, user)
        status, login = await call(pool, "/users/login", {"username": name, "password": "password-123"})
        assert status == 200, (status, login)
        ids.append(user["user_id"])
        tokens.append(login["token"])
    loop = asyncio.get_running_loop()
    waiting: dict[bytes, asyncio.Future] = {}
    echoes = 0

    def on_frame(idx: int, payload: bytes, t: float) -> None:
        nonlocal echoes
        i = payload.find(b"push|")
        if i < 0:
            return
        tag = payload[i:payload.find(b'"', i)]
        if idx % 2 == 0:
            echoes += 1
            return
        fut = waiting.pop(tag, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    Hub.on_frame = on_frame
    sockets = [(await open_ws("127.0.0.1", port, tokens[i], i, TIMEOUT))[0] for i in range(2 * pairs)]
    await asyncio.sleep(1.0)  # the sockets' opening frames and presence settle before the count's part
    heads = [pool.build("POST", "/messages", None, tokens[2 * p])[:-2] + b"Content-Type: application/json\r\n"
             for p in range(pairs)]
    tos = [json.dumps(ids[2 * p + 1]).encode() for p in range(pairs)]
    turns = iter(range(pushes))

    async def sender() -> None:
        for seq in turns:  # one iterator shared by the senders: each push once
            p = seq % pairs
            tag = b"push|%d" % seq
            frame = loop.create_future()
            waiting[tag] = frame
            body = b'{"to_user_id":' + tos[p] + b',"content":"' + tag + b'"}'
            status, raw = await asyncio.wait_for(
                pool.send(heads[p] + b"Content-Length: %d\r\n\r\n" % len(body) + body), TIMEOUT)
            assert status == 201, (status, raw[:200])
            await asyncio.wait_for(frame, TIMEOUT)

    started = time.monotonic()
    await asyncio.gather(*(sender() for _ in range(inflight)))
    took = time.monotonic() - started
    await asyncio.sleep(idle)
    deadline = time.monotonic() + 5.0
    while echoes and echoes < pushes and time.monotonic() < deadline:  # the last echoes, if any
        await asyncio.sleep(0.05)
    for ws in sockets:
        await ws.close()
    pool.close()
    print(f"pushes {pushes} over {pairs} pairs, {inflight} at a time, in {took:.1f} s; "
          f"echoes to the senders' sockets {echoes}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pushes", type=int, required=True)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--inflight", type=int, default=1, help="pushes under way at once (default one at a time)")
    parser.add_argument("--idle", type=float, default=0.0, help="seconds to hold the sockets open after the pushes")
    args = parser.parse_args()
    asyncio.run(run(args.port, args.pushes, args.pairs, args.inflight, args.idle))


if __name__ == "__main__":
    main()
