"""A client socket as the gateway sees it, keeping what it is sent."""
from __future__ import annotations

import json


class RecordingChannel:
    """A client socket as the gateway sees it: keeps every payload it accepts.
    After `accept` frames it reports the connection gone (a slow or closed client)."""

    def __init__(self, accept: int | None = None) -> None:
        self.accept = accept
        self.payloads: list[bytes] = []
        self.refused = 0
        self.drains = 0
        self.closed_for_resume: list[str] = []

    def send(self, payload: bytes) -> bool:
        if self.accept is not None and len(self.payloads) >= self.accept:
            self.refused += 1
            return False
        self.payloads.append(payload)
        return True

    def send_parts(self, parts: tuple[bytes, ...]) -> bool:
        return self.send(b"".join(parts))

    async def drain(self) -> None:
        self.drains += 1

    def resume_later(self, cursor_expired: bool) -> None:
        self.closed_for_resume.append("cursor_expired" if cursor_expired else "try_again")

    @property
    def messages(self) -> list[dict]:
        return [json.loads(p) for p in self.payloads]

    @property
    def ids(self) -> list[str]:
        return [m["id"] for m in self.messages]

    @property
    def cursors(self) -> list[str]:
        return [m["cursor"] for m in self.messages]
