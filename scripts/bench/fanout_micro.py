#!/usr/bin/env python3
"""CPU cost of one group notification inside a gateway process, without the network's noise:
parse the notification as the Redis subscriber does, then Gateway.on_notification to N
connections whose channels are real WebSocket handlers' write path (entrypoints.ws,
entrypoints.socket_writer) over
socketpairs drained by a child process. Prints microseconds per notification and per frame.

    fanout_micro.py [--members 1000] [--notifications 300] [--per-recipient-cursors] [--null]
    fanout_micro.py --large [--members 2000] [--notifications 100] [--other-groups 3] [--rounds 5] [--null]
                    [--spliced-only]

--per-recipient-cursors publishes one cursor per recipient (the notification of Courier before
the shared cursor); --null replaces the sockets with channels that drop the frame (Python only).
--large: N VectorConnections in one large group, each with its own cursor (own position plus
--other-groups other moved groups); each notification is one entry of the group's stream
(Gateway._push_group). It measures, on the same sockets and in alternating rounds, the
per-connection build of step 3 (the whole vector formatted, the whole entry encoded per
socket) against the spliced frame of step 4 (docs/design/large-groups.md, section 6.3).
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
from entrypoints.container import encode_delivery


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


class _Follows:
    async def follow(self, group_ids):
        pass

    async def unfollow(self, group_ids):
        pass


def _per_connection_class():
    """VectorConnection with step 3's push_group: the frame built whole for each socket."""
    from application.vector_connection import VectorConnection, _inside
    from domain.events import Delivery
    from domain.model import Message

    class PerConnection(VectorConnection):
        __slots__ = ()

        def push_group(self, stream, position, splice):
            slot = self.vector.slots.get(stream)
            if slot is None or position <= slot.pos or not _inside(slot, position):
                return False
            slot.pos = position
            event = splice.event
            if not (self.events or (isinstance(event, Message) and event.from_user_id != self.user_id)):
                return False
            cursor = self.vector.text()
            if cursor is None:
                return False
            return self.channel.send(encode_delivery(Delivery(event, cursor), self.user_id if self.events else None))

    return PerConnection


async def large(args, handlers) -> None:
    """--large: see the module's doc. Prints microseconds per socket of each build, and
    their ratio, from the same run."""
    from application.connection import Connection
    from application.ports import GroupNotification
    from application.vector_connection import VectorConnection
    from domain.model import GROUP, Message
    from domain.vector import Interval, Slot, Vector
    from entrypoints.container import encode_parts

    gateway = Gateway(inbox=None, encode=encode_delivery, timeline=object(), subscriber=_Follows(),
                      encode_parts=encode_parts)
    group_id, sno, join = str(uuid.uuid4()), 4, (1_799_000_000_000, 0)  # others: 100 and up
    conns = []
    for n, handler in enumerate(handlers):
        user = str(uuid.uuid4())
        slots = {sno: Slot(group_id, sno, (Interval(join),), join)}
        for other in range(args.other_groups):  # other groups, moved past their join: listed
            stream = 100 + (n * 7 + other * 131) % 5000
            slots[stream] = Slot(str(other), stream, (Interval(join),), (join[0] + 1 + other, n % 5))
        vector = Vector(own=(1_799_500_000_000 + n, 0), slots=slots)
        conn = VectorConnection.of(Connection(user, handler, "0-0"), vector, gateway._frames)
        gateway._by_user.setdefault(user, set()).add(conn)
        await gateway._by_group.place(conn)
        conns.append(conn)
    sender = str(uuid.uuid4())
    spliced, per_connection = VectorConnection, _per_connection_class()
    results: dict[str, list[float]] = {"per-connection": [], "spliced": []}
    ms = 1_800_000_000_000
    for round_ in range(args.rounds):
        builds = (("spliced", spliced),) if args.spliced_only \
            else (("per-connection", per_connection), ("spliced", spliced))
        for name, cls in builds:
            for conn in conns:
                conn.__class__ = cls
                conn._prefix = None
            pushed = gateway.pushed
            started = time.process_time()
            for i in range(args.notifications):
                ms += 1
                event = Message(GROUP, str(uuid.uuid4()), sender, "bench|x|1|12345.678 " + "x" * 60,
                                1_700_000_000, group_id=group_id, seq=ms - 1_800_000_000_000)
                gateway.on_notification(GroupNotification(event, group_id, (ms, 0)))
                if (i + 1) % args.per_turn == 0:
                    await asyncio.sleep(0)  # end of the loop's turn: queued frames are written
            await asyncio.sleep(0)
            cpu = time.process_time() - started
            assert gateway.pushed - pushed == len(conns) * args.notifications, (name, gateway.pushed - pushed)
            results[name].append(cpu / args.notifications / len(conns) * 1e6)
            print(f"round {round_ + 1} {name:>14}: {results[name][-1]:.2f} us per socket")
    if args.spliced_only:
        return
    old, new = sorted(results["per-connection"]), sorted(results["spliced"])
    mid = len(old) // 2
    print(f"{len(conns)} VectorConnections in one large group (+{args.other_groups} other groups each),"
          f" {args.notifications} notifications x {args.rounds} rounds"
          f"{' (null channels)' if args.null else ''}: median per socket per-connection {old[mid]:.2f} us,"
          f" spliced {new[mid]:.2f} us, spliced/per-connection x{new[mid] / old[mid]:.2f}"
          f" (best x{new[0] / old[0]:.2f})")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--notifications", type=int, default=300)
    parser.add_argument("--per-recipient-cursors", action="store_true")
    parser.add_argument("--null", action="store_true")
    parser.add_argument("--per-turn", type=int, default=1,
                        help="notifications handled in one turn of the event loop (a subscriber behind)")
    parser.add_argument("--large", action="store_true", help="large-group frames: per-connection vs spliced")
    parser.add_argument("--other-groups", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spliced-only", action="store_true", help="with --large: the spliced build alone (callgrind)")
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
    gateway = Gateway(inbox=None, encode=encode_delivery)
    users = [str(uuid.uuid4()) for _ in range(args.members)]
    original = tornado_overrides.PLAIN_STREAMS
    tornado_overrides.PLAIN_STREAMS = frozenset({_Stream})  # so that write_to_stream takes its fast path on it
    try:
        from application.gateway import Connection

        if args.large:
            handlers = []
            for a, _ in pairs:
                a.setblocking(False)
                handlers.append(make_channel(a, writer))
            return await large(args, handlers)
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
