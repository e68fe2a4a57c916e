"""Helpers shared by the end-to-end tests."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import tornado.httpclient

# The console script next to this interpreter (the venv's bin), as users run it.
COURIER_BIN = str(Path(sys.executable).with_name("courier"))


def with_settings(**overrides):
    """Run one test (or a module, as `pytestmark`) against a server with these settings."""
    return pytest.mark.parametrize("settings_overrides", [overrides], ids=["settings"])


def is_uuid(value) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def assert_error(reply, status: int, code: str | None = None) -> None:
    """The contract's error answer: the status, and exactly {"error": {"code", "message"}}."""
    assert reply.status == status, reply
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply
    body = reply.body
    assert isinstance(body, dict) and set(body) == {"error"}, reply
    assert set(body["error"]) == {"code", "message"}, reply
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], reply
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], reply
    if code is not None:
        assert body["error"]["code"] == code, reply


async def eventually(check, timeout: float = 5.0, interval: float = 0.02):
    """Await `check()` until it returns a truthy value (returned), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: last result {result!r}")
        await asyncio.sleep(interval)


def expired_token(running, user_id: str) -> str:
    """A token signed with the server's own secret that expired a minute ago."""
    from adapters.security import JwtTokenService

    tokens = JwtTokenService(running.settings.resolved_jwt_secret(), 60, now=lambda: time.time() - 120)
    return tokens.issue(user_id).token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CourierProcess:
    """`courier serve`, the real console script, in a directory of its own (embedded
    mode: ./data there), on a free port, with fast argon2. `base_url`/`ws_url` make
    it usable by tests.e2e.client.Api like the in-process server."""

    def __init__(self, cwd, port: int | None = None, **env):
        self.cwd = cwd
        self.port = port or free_port()
        self.env = {
            **os.environ,
            "COURIER_HOST": "127.0.0.1",
            "COURIER_PORT": str(self.port),
            "COURIER_ARGON2_TIME_COST": "1",
            "COURIER_ARGON2_MEMORY_KIB": "8192",
            "COURIER_ARGON2_PARALLELISM": "1",
            "COURIER_SEND_RATE": "0",
            **{k: str(v) for k, v in env.items()},
        }
        self.process: subprocess.Popen | None = None
        self.runs = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def stderr_path(self) -> Path:
        return Path(self.cwd) / f"stderr-{self.runs}.log"

    async def start(self, timeout: float = 20.0) -> None:
        self.runs += 1
        with open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [COURIER_BIN, "serve"], cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=err, stderr=subprocess.STDOUT,
            )
        client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"courier serve exited with {self.process.returncode}:\n{self.output()}")
                try:
                    response = await client.fetch(self.base_url + "/healthz", raise_error=False, request_timeout=1)
                    if response.code == 200:
                        return
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"courier serve did not come up in {timeout}s:\n{self.output()}")
                await asyncio.sleep(0.05)
        finally:
            client.close()

    def output(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    async def wait(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"courier serve did not exit within {timeout}s:\n{self.output()}")
            await asyncio.sleep(0.02)
        return self.process.returncode

    async def terminate(self, timeout: float = 10.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def kill(self) -> int:
        self.process.kill()  # SIGKILL: no shutdown code runs
        return await self.wait()

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
