"""The addresses of a Courier server a test started on the loopback interface."""
from __future__ import annotations


class LoopbackUrls:
    """base_url and ws_url of a server listening on 127.0.0.1 at `self.port`."""

    port: int | None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"
