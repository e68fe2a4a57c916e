"""A TCP proxy that loses the reply of one command: for the at-most-once paths."""
from __future__ import annotations

import asyncio


class ReplyDropper:
    """A TCP proxy to Redis that, once armed, lets the next `command` (EVALSHA unless
    told) through and then cuts the connection before the reply comes back: Redis
    ran it, the client never hears of it."""

    def __init__(self, port: int, command: bytes = b"EVALSHA"):
        self.port = port
        self.command = command
        self.armed = False
        self._server = None
        self._tasks: set[asyncio.Task] = set()
        self._transports: list = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    async def _serve(self, client_reader, client_writer):
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._transports += [client_writer.transport, upstream_writer.transport]
        cut = asyncio.Event()

        async def requests():
            while data := await client_reader.read(65536):
                if self.armed and self.command in data:
                    self.armed = False
                    cut.set()  # from now on replies are dropped
                    upstream_writer.write(data)
                    break
                upstream_writer.write(data)
            await asyncio.sleep(0.1)  # Redis runs it meanwhile
            client_writer.transport.abort()
            upstream_writer.transport.abort()

        async def replies():
            while data := await upstream_reader.read(65536):
                if not cut.is_set():
                    client_writer.write(data)

        for job in (requests(), replies()):
            task = asyncio.ensure_future(job)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._server.close()
        for transport in self._transports:
            transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
