"""examples/echo_bot.py answers a message written on the chat page (issue 17's "done
when"): the bot runs as its docstring says, against a live `courier serve`, and a person
on the page sees its answer come in."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.browser.test_chat_page import expect_shown, register, start_chat, write

pytestmark = pytest.mark.browser

BOT = Path(__file__).resolve().parents[2] / "examples" / "echo_bot.py"


@pytest.fixture
def echo_bot(server, tmp_path):
    name = "echo-" + uuid.uuid4().hex[:8]
    log = tmp_path / "bot.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(BOT), "--url", server.base_url, "--username", name],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while "is listening" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the bot did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield name
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_the_echo_bot_answers_a_message_sent_from_the_chat_page(server, pages, echo_bot):
    page = pages.open(server.base_url)
    register(page, "human")
    start_chat(page, echo_bot)
    write(page, "hello bot")
    expect_shown(page, ["hello bot", "echo: hello bot"])
    write(page, "and again")
    expect_shown(page, ["hello bot", "echo: hello bot", "and again", "echo: and again"])
    assert not pages.errors
