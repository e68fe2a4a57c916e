"""The load generator's two clients, written on asyncio protocols (no library beyond the
standard one; uvloop when it is there): an HTTP/1.1 keep-alive client and a WebSocket
receiver.

They do only what the benchmark needs, and as little as possible of it per message, since
the load generator shares the machine's cores with the server it measures:

- HTTP: one request at a time on a connection (no pipelining), JSON bodies, answers with
  Content-Length or chunked; a Pool hands connections out and queues requests past its size.
- WebSocket (RFC 6455, client side): the opening handshake, text frames from the server
  (unmasked, as the RFC has it), pings answered with pongs, the closing handshake. Frames are
  parsed straight from what the socket read; the hook gets (socket index, payload bytes,
  time read). The client only ever sends control frames, masked with a zero key (a client
  must mask; the key's value only matters to proxies, and there are none on loopback).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import quote

now = time.perf_counter  # CLOCK_MONOTONIC: the same clock for the send and the frame

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HttpError(Exception):
    pass


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, content length or -1, chunked) of a response head (without its blank line)."""
    status = int(head[9:12])
    lower = head.lower()
    i = lower.find(b"\r\ncontent-length:")
    if i >= 0:
        j = lower.find(b"\r\n", i + 2)
        return status, int(head[i + 17:j if j >= 0 else len(head)]), False
    if b"\r\ntransfer-encoding:" in lower and b"chunked" in lower:
        return status, -1, True
    return status, 0, False


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """The body of a chunked message from buf[start:], and where it ends; None: not all there."""
    body = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)  # no trailers expected: the chunk line's CRLF + CRLF
            if end < 0:
                return None
            return bytes(body), end + 4
        if len(buf) < eol + 2 + size + 2:
            return None
        body += buf[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2


class HttpConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; request() sends a request made by Pool.build."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        status, length, chunked = _parse_head(bytes(buf[:end]))
        if chunked:
            got = _dechunk(buf, end + 4)
            if got is None:
                return
            body, stop = got
        else:
            stop = end + 4 + length
            if len(buf) < stop:
                return
            body = bytes(buf[end + 4:stop])
        del buf[:stop]
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))

    def connection_lost(self, exc) -> None:
        self.closed = True
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(HttpError(f"connection closed{f': {exc}' if exc else ''}"))

    def request(self, data: bytes) -> asyncio.Future:
        if self.closed or self.transport is None:
            raise HttpError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Up to `size` keep-alive connections to host:port; a request past them waits for one."""

    def __init__(self, host: str, port: int, size: int = 64, prefix: str = "/api/v1") -> None:
        self.host, self.port, self.size, self.prefix = host, port, size, prefix
        self._hosthdr = f"Host: {host}:{port}\r\n".encode()
        self.idle: list[HttpConn] = []
        self.count = 0
        self.waiters: deque[asyncio.Future] = deque()

    def build(self, method: str, path: str, body: bytes | None = None, token: str | None = None) -> bytes:
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode() + self._hosthdr
        if token:
            head += f"Authorization: Bearer {token}\r\n".encode()
        if body is None:
            return head + b"\r\n"
        return head + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body

    async def connect(self) -> HttpConn:
        _, conn = await asyncio.get_running_loop().create_connection(HttpConn, self.host, self.port)
        return conn

    async def _acquire(self) -> HttpConn:
        while True:
            while self.idle:
                conn = self.idle.pop()
                if not conn.closed:
                    return conn
                self.count -= 1
            if self.count < self.size:
                self.count += 1
                try:
                    return await self.connect()
                except BaseException:
                    self.count -= 1
                    self._wake(None)
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            conn = await waiter
            if conn is not None:
                return conn

    def _wake(self, conn: HttpConn | None) -> bool:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def _release(self, conn: HttpConn) -> None:
        if conn.closed:
            self.count -= 1
            self._wake(None)  # a waiter may open a connection in its place
        elif not self._wake(conn):
            self.idle.append(conn)

    async def send(self, data: bytes) -> tuple[int, bytes]:
        conn = await self._acquire()
        try:
            return await conn.request(data)
        except BaseException:
            conn.close()
            raise
        finally:
            self._release(conn)

    async def request(self, method: str, path: str, body: bytes | None = None,
                      token: str | None = None) -> tuple[int, bytes]:
        return await self.send(self.build(method, path, body, token))

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
        self.count = 0


class Protocol:
    """Counters of what should never happen, over every socket of a run."""

    binary = 0
    unparsable = 0
    unexpected_close = 0


FrameHook = Callable[[int, bytes, float], None]


def _ignore(idx: int, payload: bytes, t: float) -> None:
    pass


class Hub:
    """One frame hook for every socket; each scenario puts its own in place."""

    on_frame: FrameHook = _ignore


_PONG_HEAD = b"\x8a"
_CLOSE_1000 = b"\x88\x82\x00\x00\x00\x00\x03\xe8"  # close, masked (zero key), status 1000


def _control(opcode_byte: bytes, payload: bytes) -> bytes:
    # masked with a zero key: the payload goes as it is
    return opcode_byte + bytes((0x80 | len(payload),)) + b"\x00\x00\x00\x00" + payload


class WsConn(asyncio.Protocol):
    """A WebSocket client socket that takes in text frames and hands them to Hub.on_frame."""

    def __init__(self, idx: int, request: bytes, key: bytes, opened: asyncio.Future) -> None:
        self.idx = idx
        self.request = request
        self.accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.opened = opened
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.open = False
        self.closing = False
        self.closed_waiter: asyncio.Future | None = None
        self.fragments: list[bytes] | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        t = now()
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            head = data[:end]
            data = data[end + 4:]
            if head[9:12] != b"101" or self.accept not in head:
                if not self.opened.done():
                    self.opened.set_exception(HttpError(head.split(b"\r\n", 1)[0].decode("latin-1")))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.upgraded = self.open = True
            if not self.opened.done():
                self.opened.set_result(self)
            if not data:
                return
        n = len(data)
        pos = 0
        hook = Hub.on_frame
        while n - pos >= 2:
            b0 = data[pos]
            length = data[pos + 1] & 0x7F
            h = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2:pos + 4], "big")
                h = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                h = 10
            stop = pos + h + length
            if stop > n:
                break
            payload = data[pos + h:stop]
            pos = stop
            if b0 == 0x81:  # a whole text frame: nearly every frame
                hook(self.idx, payload, t)
            else:
                self._other(b0, payload, t)
        if pos < n:
            self.buf = data[pos:]

    def _other(self, b0: int, payload: bytes, t: float) -> None:
        opcode = b0 & 0x0F
        if opcode == 0x9:  # ping
            self.transport.write(_control(_PONG_HEAD, payload[:125]))  # type: ignore[union-attr]
        elif opcode == 0x8:  # close: answer it
            if not self.closing:
                self.closing = True
                if not self._benchmark_closing():
                    Protocol.unexpected_close += 1
                self.transport.write(_control(b"\x88", payload[:2]))  # type: ignore[union-attr]
            self.transport.close()  # type: ignore[union-attr]
        elif opcode in (0x1, 0x2, 0x0):  # fragments, binary
            if opcode == 0x2:
                Protocol.binary += 1
            if opcode != 0x0:
                self.fragments = [payload]
            elif self.fragments is not None:
                self.fragments.append(payload)
            if b0 & 0x80 and self.fragments is not None:
                whole = b"".join(self.fragments)
                self.fragments = None
                Hub.on_frame(self.idx, whole, t)

    def _benchmark_closing(self) -> bool:
        return self.closed_waiter is not None

    def connection_lost(self, exc) -> None:
        was_open = self.open
        self.open = False
        if not self.opened.done():
            self.opened.set_exception(HttpError(f"closed before the handshake ended{f': {exc}' if exc else ''}"))
        elif was_open and not self.closing and self.closed_waiter is None:
            Protocol.unexpected_close += 1
        if self.closed_waiter is not None and not self.closed_waiter.done():
            self.closed_waiter.set_result(None)

    async def close(self, timeout: float = 5.0) -> None:
        """The closing handshake (1000), then the TCP connection; aborted after `timeout`."""
        if self.transport is None or self.transport.is_closing():
            return
        self.closed_waiter = asyncio.get_running_loop().create_future()
        if self.open and not self.closing:
            self.closing = True
            self.transport.write(_CLOSE_1000)
        try:
            await asyncio.wait_for(asyncio.shield(self.closed_waiter), timeout)
        except TimeoutError:
            self.transport.abort()


async def open_ws(host: str, port: int, token: str, idx: int, timeout: float = 15.0) -> tuple[WsConn, float]:
    """A socket of user `token` at /ws, opened; and how long the handshake took (ms)."""
    loop = asyncio.get_running_loop()
    key = base64.b64encode(os.urandom(16))
    request = (f"GET /ws?token={quote(token, safe='')} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n").encode() \
        + b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
    opened = loop.create_future()
    t0 = now()
    transport, ws = await asyncio.wait_for(
        loop.create_connection(lambda: WsConn(idx, request, key, opened), host, port), timeout)
    try:
        await asyncio.wait_for(opened, timeout)
    except BaseException:
        transport.abort()
        raise
    return ws, (now() - t0) * 1000.0
