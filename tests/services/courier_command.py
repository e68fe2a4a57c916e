"""`courier <command>` - the real console script - as a process of its own, for the
end-to-end tests (embedded `serve`, killed and restarted) and the production tests
(`serve` and `worker` against Redis and MariaDB)."""
from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.services.urls import LoopbackUrls

COURIER_BIN = str(Path(sys.executable).with_name("courier"))

# Hashing at the contract's cost would make every registration take a good part of a
# second; the tests check behaviour, not argon2's parameters.
# Cheap hashing, and the per-address limits off: every test client signs up and
# connects from 127.0.0.1 (the tests of those limits set them themselves).
FAST_ENV = {"COURIER_ARGON2_TIME_COST": "1", "COURIER_ARGON2_MEMORY_KIB": "8192",
            "COURIER_ARGON2_PARALLELISM": "1", "COURIER_REGISTRATIONS": "0", "COURIER_HASH_QUEUE": "1000"}


WORKER_READY = "persisting stream:persist"  # what a worker logs once it persists


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CourierCommand(LoopbackUrls):
    """`courier <command>` (the console script) in a process group of its own, so a
    kill reaches everything it started. `base_url`/`ws_url` make a `serve` usable by Api."""

    def __init__(self, command: str, directory: Path, env: dict, name: str | None = None):
        self.command = command
        self.directory = Path(directory)
        self.env = dict(env)
        self.name = name or command
        self.port: int | None = None
        if command == "serve":
            self.port = free_port()
            self.env.update(COURIER_HOST="127.0.0.1", COURIER_PORT=str(self.port))
        self.process: subprocess.Popen | None = None
        self.runs = 0
        self.fd_limit: int | None = None  # RLIMIT_NOFILE of the process (soft), when set

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}-{self.runs}.log"

    def start(self) -> CourierCommand:
        self.runs += 1
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [COURIER_BIN, self.command], cwd=self.directory, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=self._limits if self.fd_limit is not None else None,
            )
        return self

    def _limits(self) -> None:
        # In the child, before exec; only when asked for: preexec_fn makes every start
        # take subprocess's slow path, and it is unsafe with threads running.
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.fd_limit, hard))

    async def ready(self, timeout: float = 20.0) -> CourierCommand:
        """serve: /healthz answers; worker: it logged that it persists."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"courier {self.command} exited with {self.process.returncode}:\n{self.output()}")
            if self.command == "serve":
                if await asyncio.get_running_loop().run_in_executor(None, self._healthy):
                    return self
            elif WORKER_READY in self.output():
                return self
            if time.monotonic() > deadline:
                raise AssertionError(f"courier {self.command} was not ready in {timeout} s:\n{self.output()}")
            await asyncio.sleep(0.05)

    def wait_ready(self, timeout: float = 20.0) -> CourierCommand:
        """ready(), for a test with no event loop of its own. (asyncio.run of ready() would
        drop, unclosed, the loop an earlier Tornado test left current, and its
        ResourceWarning would fail whatever test the collector then runs in.)"""
        deadline = time.monotonic() + timeout
        while not (self._healthy() if self.command == "serve" else WORKER_READY in self.output()):
            if self.process.poll() is not None:
                raise AssertionError(f"courier {self.command} exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"courier {self.command} was not ready in {timeout} s:\n{self.output()}")
            time.sleep(0.05)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send_signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the process group and wait (bounded) for the process to end."""
        self.send_signal(sig)
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"courier {self.command} did not exit within {timeout} s:\n{self.output()}")
            await asyncio.sleep(0.02)
        return self.process.returncode

    async def terminate(self, timeout: float = 10.0) -> int:
        return await self.stop(signal.SIGTERM, timeout)

    def terminate_sync(self, timeout: float = 10.0) -> int:
        """terminate(), for a test with no event loop of its own."""
        self.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"courier {self.command} did not exit within {timeout} s:\n{self.output()}") from None

    async def kill(self) -> int:
        return await self.stop(signal.SIGKILL)  # no shutdown code runs

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.send_signal(signal.SIGKILL)
            self.process.wait(10)
