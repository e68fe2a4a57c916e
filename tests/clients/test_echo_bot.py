"""examples/echo_bot.py, run as its README says, against a live Courier in both modes:
it registers, answers a private message with "echo: <content>", and, stopped and
started again with its cursor file, logs in and answers what came while it was away,
once."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

from tests.clients.conftest import users
from tests.clients.test_python_client import FAST, _true, eventually

BOT = Path(__file__).resolve().parents[2] / "examples" / "echo_bot.py"


class Bot:
    def __init__(self, url: str, username: str, cursor_file: Path):
        self.args = [sys.executable, str(BOT), "--url", url, "--username", username,
                     "--password", "echo bot password", "--cursor-file", str(cursor_file)]
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> str:
        """Start it; answers the line it prints once it listens."""
        self.process = await asyncio.create_subprocess_exec(
            *self.args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        seen = []
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), 20)
            if not line:
                raise AssertionError("the bot exited:\n" + "".join(seen))
            seen.append(line.decode())
            if b"is listening" in line:
                asyncio.ensure_future(self._drain())
                return line.decode()

    async def _drain(self) -> None:
        while await self.process.stdout.readline():
            pass

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@pytest.mark.gen_test(timeout=90)
async def test_the_echo_bot_answers_every_private_message(deploy, clients, readers, tmp_path):
    courier = await deploy()
    (alice,) = await users(clients, courier.base_url, 1)
    name = "echo-" + uuid.uuid4().hex[:8]
    bot = Bot(courier.base_url, name, tmp_path / "bot.cursor")
    try:
        assert name in await bot.start()  # registered on its first start
        bot_id = (await alice.find_user(name))["user_id"]
        alice_events = readers(alice.events(**FAST))
        await eventually(lambda: _true(alice_events.stream.connected))

        def answers(reader):
            return [e["content"] for e in reader.of_type("private") if e["from_user_id"] == bot_id]

        await alice.send_private(bot_id, "hello bot")
        await alice_events.until(lambda r: answers(r) == ["echo: hello bot"], what="the echo")

        await bot.stop()
        await alice.send_private(bot_id, "while you were away")
        await bot.start()  # logs in this time, and goes on from its cursor file
        await alice.send_private(bot_id, "welcome back")
        await alice_events.until(lambda r: len(answers(r)) == 3, what="three echoes")
        await asyncio.sleep(0.5)  # room for an echo too many
        assert answers(alice_events) == ["echo: hello bot", "echo: while you were away", "echo: welcome back"]
    finally:
        await bot.stop()
