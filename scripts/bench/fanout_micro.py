#!/usr/bin/env python3
"""CPU cost of one group notification inside a gateway process, without the network's noise:
parse the notification as the Redis subscriber does, then Gateway.on_notification to N
connections whose channels are real WebSocket handlers' write path (entrypoints.ws,
entrypoints.socket_writer) over
socketpairs drained by a child process. Prints microseconds per notification and per frame.

    fanout_micro.py [--members 1000] [--notifications 300] [--per-recipient-cursors] [--null]

--per-recipient-cursors publishes one cursor per recipient (the notification of Courier before
the shared cursor); --null replaces the sockets with channels that drop the frame (Python only).
Run it with the Courier checkout to measure on PYTHONPATH (python -P keeps the cwd out)."""
from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import socket
import time
import uuid

import orjson

from adapters.redis.subscriber import parse_notification
from application.gateway import Gateway


def drain(fds: list[int]) -> None:
    sel = selectors.DefaultSelector()
    for fd in fds:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            try:
                if not os.read(key.fd, 1 << 16):
                    sel.unregister(key.fd)
            except BlockingIOError:
                pass
        if not sel.get_map():
            return


class _Stream:
    """What tornado_overrides.write_to_stream reads of Tornado's IOStream."""

    def __init__(self, sock):
        self.socket = sock
        self._write_buffer = b""
        self._connecting = False

    def write(self, data):  # only reached when the kernel buffer is full
        self.socket.setblocking(True)
        self.socket.sendall(data)
        self.socket.setblocking(False)

    def closed(self):
        return False


class _Protocol:
    def __init__(self, sock):
        self.stream = _Stream(sock)

    def is_closing(self):
        return False


def make_channel(sock, writer):
    """A SocketHandler as far as its push path goes (send -> SocketWriter -> write_to_stream)."""
    from entrypoints import ws

    handler = ws.SocketHandler.__new__(ws.SocketHandler)
    handler.writer = writer
    handler.gone = False
    handler.ws_connection = _Protocol(sock)
    return handler


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--notifications", type=int, default=300)
    parser.add_argument("--per-recipient-cursors", action="store_true")
    parser.add_argument("--null", action="store_true")
    parser.add_argument("--per-turn", type=int, default=1,
                        help="notifications handled in one turn of the event loop (a subscriber behind)")
    args = parser.parse_args()

    from entrypoints import socket_writer
    from entrypoints.http import tornado_overrides

    pairs = [socket.socketpair() for _ in range(args.members)]
    pid = os.fork()
    if pid == 0:
        for a, _ in pairs:
            a.close()
        drain([b.fileno() for _, b in pairs])
        os._exit(0)
    for _, b in pairs:
        b.close()
    writer = socket_writer.SocketWriter()
    if args.null:
        socket_writer.write_to_stream = lambda stream, data: None
    gateway = Gateway(inbox=None, encode=lambda d: orjson.dumps(d.public()))
    users = [str(uuid.uuid4()) for _ in range(args.members)]
    original = tornado_overrides.PLAIN_STREAMS
    tornado_overrides.PLAIN_STREAMS = frozenset({_Stream})  # so that write_to_stream takes its fast path on it
    try:
        from application.gateway import Connection

        for user, (a, _) in zip(users, pairs, strict=True):
            a.setblocking(False)
            handler = make_channel(a, writer)
            conn = Connection(user, handler, "0-0")
            gateway._by_user.setdefault(user, set()).add(conn)
        sender = str(uuid.uuid4())
        record = {"type": "group", "id": "", "group_id": str(uuid.uuid4()), "from_user_id": sender,
                  "content": "bench|x|1|12345.678 " + "x" * 60, "created_at": 1_700_000_000}
        to = b",".join(orjson.dumps(u) for u in users)
        started = time.process_time()
        wall = time.perf_counter()
        for i in range(args.notifications):
            record["id"] = str(uuid.uuid4())
            ms = 1_800_000_000_000 + i
            if args.per_recipient_cursors:
                cursors = b",".join(orjson.dumps(u) + b':"' + f"{ms}-{n}".encode() + b'"' for n, u in enumerate(users))
                data = b'{"message":' + orjson.dumps(record) + b',"cursors":{' + cursors + b"}}"
            else:
                shared = f"{ms}-0".encode()
                data = b'{"message":' + orjson.dumps(record) + b',"cursor":"' + shared + b'","to":[' + to + b"]}"
            gateway.on_notification(parse_notification(data))
            if (i + 1) % args.per_turn == 0:
                await asyncio.sleep(0)  # end of the loop's turn: queued frames are written
        await asyncio.sleep(0)
        cpu = time.process_time() - started
        wall = time.perf_counter() - wall
    finally:
        tornado_overrides.PLAIN_STREAMS = original
        for a, _ in pairs:
            a.close()
        os.waitpid(pid, 0)
    assert gateway.pushed == args.members * args.notifications, gateway.pushed
    per = cpu / args.notifications
    how = (" (per-recipient cursors)" if args.per_recipient_cursors else "") + (" (null channels)" if args.null else "")
    print(f"{args.members} members x {args.notifications} notifications{how}:"
          f" {per * 1e6:.0f} us CPU per notification, {per / args.members * 1e6:.2f} us per frame,"
          f" {args.members / per:,.0f} frames per CPU-second (wall {wall:.2f} s)")


if __name__ == "__main__":
    asyncio.run(main())
