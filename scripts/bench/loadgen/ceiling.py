"""The load generator's own ceiling: how many frames it takes in, and how many closed-loop
requests it makes, per second of one core, with no server to wait for.

A child process plays the server on loopback - it accepts WebSocket upgrades and then
writes group-message frames (a Courier push's size and shape) to every socket at --rate
messages a second (1000 sockets at 100/s: the fan-out 1000 @ 100/s row's 100,000 frames/s,
each socket's frame read on its own, as in a fan-out), or answers every HTTP request at
once with a 201 of a send's size - while this process receives with the load generator's
own WsConn and frame hook (the fan-out scenario's work per frame) or sends with its HttpConn
(the throughput scenario's request formatting). CPU is this
process's own (os.times), so the figure per frame and per request holds on a shared machine;
the rates are what one core does when this process gets all of it.

    python scripts/bench/loadgen ceiling [--sockets 1000] [--rate 100] [--seconds 5] [--senders 32]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import multiprocessing
import os
import socket

from . import scenarios
from .measure import self_cpu
from .wire import HttpConn, Hub, now, open_ws

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_FRAME_JSON = (b'{"type":"group","id":"01JDX3K6Q9W8B5M2N4P7R1T3V5","group_id":"01JDX3K6Q9W8B5M2N4P7R1T3V6",'
               b'"from_user_id":"01JDX3K6Q9W8B5M2N4P7R1T3V7","content":"bench|c1|%d|%.6f",'
               b'"created_at":1764547200,"seq":%d,"cursor":"1764547200000-%d"}')
_ANSWER = (b"HTTP/1.1 201 Created\r\nServer: x\r\nContent-Type: application/json; charset=UTF-8\r\n"
           b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\nContent-Length: 230\r\n\r\n" + b"x" * 230)


def _frame(seq: int) -> bytes:
    payload = _FRAME_JSON % (seq, now(), seq, seq)
    n = len(payload)
    head = bytes((0x81, n)) if n < 126 else bytes((0x81, 126)) + n.to_bytes(2, "big")
    return head + payload


def _child(listener: socket.socket, mode: str, seconds: float, rate: float) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass

    async def ws_server() -> None:
        writers: list[asyncio.StreamWriter] = []
        ready = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            writers.append(writer)
            ready.set()
            await reader.read()  # until the client closes

        server = await asyncio.start_server(handle, sock=listener)
        await ready.wait()
        await asyncio.sleep(1.0)  # the rest of the sockets
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds + 3
        seq = 0
        due = loop.time()
        while loop.time() < end:
            frame = _frame(seq)
            seq += 1
            for w in writers:
                w.write(frame)
                if w.transport.get_write_buffer_size() > 1 << 20:
                    await w.drain()
            due += 1 / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
        server.close()

    async def http_server() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    i = head.lower().find(b"content-length:")
                    if i >= 0:
                        await reader.readexactly(int(head[i + 15:head.find(b"\r\n", i)]))
                    writer.write(_ANSWER)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass

        server = await asyncio.start_server(handle, sock=listener)
        await asyncio.sleep(seconds + 10)
        server.close()

    asyncio.run(ws_server() if mode == "ws" else http_server())


def _start(mode: str, seconds: float, rate: float = 0) -> tuple[multiprocessing.Process, int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    child = multiprocessing.get_context("fork").Process(target=_child, args=(listener, mode, seconds, rate),
                                                      daemon=True)
    child.start()
    listener.close()
    return child, port


async def frames(sockets: int, rate: float, seconds: float) -> dict:
    child, port = _start("ws", seconds, rate)
    socks = [await open_ws("127.0.0.1", port, "t", i) for i in range(sockets)]
    got = [0]
    lat: list[float] = []

    def on_frame(idx: int, payload: bytes, t: float) -> None:  # the fan-out scenario's work
        parts = scenarios.content_of(payload)
        if parts is None or len(parts) != 4 or parts[1] != b"c1":
            return
        int(parts[2])
        lat.append((t - float(parts[3])) * 1000)
        got[0] += 1

    Hub.on_frame = on_frame
    await asyncio.sleep(1.5)
    n0, c0, t0 = got[0], self_cpu(), now()
    await asyncio.sleep(seconds)
    n1, c1, t1 = got[0], self_cpu(), now()
    Hub.on_frame = scenarios._noop
    for ws, _ in socks:
        ws.transport.abort()
    child.terminate()
    child.join(5)
    frames_n, cpu = n1 - n0, c1 - c0
    return {"sockets": sockets, "offered_per_s": round(sockets * rate), "frames_per_s": round(frames_n / (t1 - t0)),
            "cpu_pct": round(cpu / (t1 - t0) * 100),
            "us_per_frame": round(cpu / frames_n * 1e6, 2) if frames_n else None}


async def requests(senders: int, seconds: float) -> dict:
    child, port = _start("http", seconds)
    await asyncio.sleep(0.3)
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(HttpConn, "127.0.0.1", port))[1] for _ in range(senders)]
    head = (b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + b"t" * 180
            + b"\r\nContent-Type: application/json\r\nContent-Length: ")
    body_head = b'{"to_user_id":"01JDX3K6Q9W8B5M2N4P7R1T3V7","content":"bench|c1|'
    count = [0]
    stop = [False]

    async def sender(conn: HttpConn) -> None:
        seq = 0
        while not stop[0]:
            status, _ = await conn.request(scenarios._message(head, body_head, seq, now()))
            seq += 1
            count[0] += 1

    tasks = [asyncio.ensure_future(sender(c)) for c in conns]
    await asyncio.sleep(1.0)
    n0, c0, t0 = count[0], self_cpu(), now()
    await asyncio.sleep(seconds)
    n1, c1, t1 = count[0], self_cpu(), now()
    stop[0] = True
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in conns:
        c.close()
    child.terminate()
    child.join(5)
    n, cpu = n1 - n0, c1 - c0
    return {"senders": senders, "requests_per_s": round(n / (t1 - t0)), "cpu_pct": round(cpu / (t1 - t0) * 100),
            "us_per_request": round(cpu / n * 1e6, 2) if n else None}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="loadgen ceiling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockets", type=int, default=1000)
    p.add_argument("--rate", type=float, default=100, help="messages a second, each to every socket")
    p.add_argument("--senders", type=int, default=32)
    p.add_argument("--seconds", type=float, default=5)
    opt = p.parse_args(argv)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    f = asyncio.run(frames(opt.sockets, opt.rate, opt.seconds))
    r = asyncio.run(requests(opt.senders, opt.seconds))
    us_f, us_r = f["us_per_frame"], r["us_per_request"]
    if us_f:
        print(f"frames in over {f['sockets']} sockets: {f['frames_per_s']:,}/s of {f['offered_per_s']:,}/s offered, "
              f"at {f['cpu_pct']}% of a core: {us_f} us CPU each -> ceiling ~{1e6 / us_f:,.0f} frames/s per core")
    if us_r:
        print(f"closed-loop requests on {r['senders']} connections: {r['requests_per_s']:,}/s at {r['cpu_pct']}% "
              f"of a core: {us_r} us CPU each -> ceiling ~{1e6 / us_r:,.0f} requests/s per core")
    if us_f and us_r:
        both = us_f + us_r
        print(f"a closed-loop send with its frame: ~{both:.1f} us -> ~{1e6 / both:,.0f} sends/s per core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(os.sys.argv[1:]))
