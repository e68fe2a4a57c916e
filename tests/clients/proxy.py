"""A TCP proxy in front of a Courier server, to make the network fail on purpose."""
from __future__ import annotations

import asyncio


class Proxy:
    """Forwards 127.0.0.1:<port> to the server. `cut()` aborts every open connection (a
    dropped socket: no close frame, no FIN); `pause()` also stops listening (connections
    are refused) until `resume()`; `freeze()` makes the open connections silent;
    `lose_next_reply(marker)` lets the next request holding `marker` reach the server and
    then cuts its connection before the answer comes back."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port: int | None = None
        self._server: asyncio.AbstractServer | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._lose: bytes | None = None
        self.replies_lost = 0
        self._frozen: set[asyncio.Event] = set()  # the open connections' "frozen" flags

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port or 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def pause(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.cut()
        if server is not None:
            await server.wait_closed()

    async def resume(self) -> None:
        await self.start()

    def freeze(self) -> None:
        """The open connections stay open and carry nothing more, either way (a half-open
        connection: only a ping that gets no pong tells); new connections work."""
        for frozen in self._frozen:
            frozen.set()

    def lose_next_reply(self, marker: bytes) -> None:
        self._lose = marker

    async def close(self) -> None:
        await self.pause()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._transports |= {writer.transport, up_writer.transport}
        lost = asyncio.Event()
        frozen = asyncio.Event()
        self._frozen.add(frozen)

        async def requests() -> None:
            try:
                while data := await reader.read(65536):
                    if self._lose is not None and self._lose in data:
                        self._lose = None
                        lost.set()
                    if not frozen.is_set():
                        up_writer.write(data)
            except OSError:
                pass

        async def replies() -> None:
            try:
                while data := await up_reader.read(65536):
                    if lost.is_set():
                        self.replies_lost += 1
                        await asyncio.sleep(0.2)  # the server finishes what it was asked
                        return
                    if not frozen.is_set():
                        writer.write(data)
            except OSError:
                pass

        try:
            await asyncio.wait([asyncio.ensure_future(requests()), asyncio.ensure_future(replies())],
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._frozen.discard(frozen)
            for transport in (writer.transport, up_writer.transport):
                self._transports.discard(transport)
                transport.abort()
