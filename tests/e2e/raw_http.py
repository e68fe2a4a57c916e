"""HTTP over a bare TCP socket: requests no HTTP client library would send (malformed,
oversized, trickled), and the answer read byte for byte as the server wrote it."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

CLOSE_WITHIN = 10.0  # seconds: generous, the machine is slow and shared


@dataclass
class RawAnswer:
    status: int | None  # None: the server wrote nothing before closing
    headers: dict[str, str]  # names in lower case
    body: bytes
    closed: bool  # the server ended the connection (EOF or reset) within the wait
    seconds: float  # from the end of the request to the end of the connection

    def json(self):
        return json.loads(self.body)


def parse(raw: bytes, closed: bool, seconds: float) -> RawAnswer:
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head:
        return RawAnswer(None, {}, b"", closed, seconds)
    status_line, *lines = head.decode("latin1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(status_line.split(" ")[1]), headers, body, closed, seconds)


async def read_to_the_end(reader: asyncio.StreamReader, within: float) -> tuple[bytes, bool]:
    """Everything the server writes until it ends the connection; (data, ended in time)."""
    data = b""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


async def exchange(port: int, *parts: bytes, pause: float = 0.0, within: float = CLOSE_WITHIN) -> RawAnswer:
    """Send `parts` (with `pause` seconds between them), then read until the server ends
    the connection (at most `within` seconds). A server that closes while the request is
    still being sent does not fail the write: what it answered is read all the same."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index, part in enumerate(parts):
            if index and pause:
                await asyncio.sleep(pause)
            try:
                writer.write(part)
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                break
        started = time.monotonic()
        data, closed = await read_to_the_end(reader, within)
        return parse(data, closed, time.monotonic() - started)
    finally:
        writer.close()


def assert_json_error(answer: RawAnswer, status: int, code: str | None = None) -> None:
    """The contract's error answer on the wire, then the end of the connection."""
    assert answer.status == status, answer
    assert answer.headers.get("content-type", "").startswith("application/json"), answer
    assert answer.headers.get("connection") == "close", answer
    assert answer.headers.get("server") == "Courier", answer
    assert int(answer.headers["content-length"]) == len(answer.body), answer
    error = answer.json()
    assert set(error) == {"error"} and set(error["error"]) == {"code", "message"}, answer
    assert error["error"]["message"], answer
    if code is not None:
        assert error["error"]["code"] == code, answer
    assert answer.closed, answer
