"""An echo bot: it answers every private message it gets with "echo: <content>".

With `make run` serving in one terminal (http://127.0.0.1:8080), in another:

    .venv/bin/pip install ./clients/python     # once (make .venv/.test-deps does it too)
    .venv/bin/python examples/echo_bot.py

then open http://127.0.0.1:8080/, start a chat with `echo-bot` and write to it.

It logs in as `--username` (registering it the first time), reads its event stream
(courier_client's events(): resumes after any drop, each event once) and answers each
private message from someone else. A reply's client_msg_id is made from the message it
answers, so a message seen again (the bot restarted from its saved cursor) is never
answered twice. With `--cursor-file`, the bot keeps its place there and, started again,
answers what came while it was away; without, it answers what comes from its start on.
When its token expires it logs in again and goes on from where it was.

Options (or environment variables): --url (COURIER_URL, http://127.0.0.1:8080),
--username (ECHO_BOT_USERNAME, echo-bot), --password (ECHO_BOT_PASSWORD),
--cursor-file (ECHO_BOT_CURSOR_FILE).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from courier_client import RESYNC, Client, CourierError

log = logging.getLogger("echo_bot")


async def log_in(client: Client, username: str, password: str) -> None:
    """Log in; the first time, register the account first."""
    try:
        await client.login(username, password)
    except CourierError as error:
        if error.status != 401:
            raise
        await client.register(username, password)  # 409 username_taken: someone else's (wrong password)
        await client.login(username, password)
        log.info("registered %s", username)


def reply_to(event: dict, my_user_id: str | None) -> str | None:
    """The answer to an event: "echo: <content>" for a private message from someone else."""
    if event.get("type") != "private" or event.get("from_user_id") == my_user_id:
        return None
    return "echo: " + event.get("content", "")


async def run(url: str, username: str, password: str, cursor_file: Path | None = None) -> None:
    cursor = None
    if cursor_file is not None and cursor_file.exists():
        cursor = cursor_file.read_text().strip() or None
    async with Client(url) as client:
        await log_in(client, username, password)
        print(f"echo bot {client.username} ({client.user_id}) is listening on {url}", flush=True)
        while True:
            stream = client.events(cursor=cursor)
            try:
                async with stream:
                    async for event in stream:
                        answer = reply_to(event, client.user_id)
                        if answer is not None:
                            await client.send_private(event["from_user_id"], answer,
                                                      client_msg_id="echo:" + event["id"])
                        elif event["type"] == RESYNC:
                            log.warning("the bot was away longer than the server keeps: some messages went unanswered")
                        if cursor_file is not None and stream.cursor and stream.cursor != cursor:
                            cursor_file.write_text(stream.cursor)
                        cursor = stream.cursor
            except CourierError as error:
                if error.status != 401:
                    raise
                cursor = stream.cursor
                log.info("token expired: logging in again")
                await log_in(client, username, password)


def main() -> None:
    parser = argparse.ArgumentParser(description="A Courier bot that answers every private message.")
    parser.add_argument("--url", default=os.environ.get("COURIER_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--username", default=os.environ.get("ECHO_BOT_USERNAME", "echo-bot"))
    parser.add_argument("--password", default=os.environ.get("ECHO_BOT_PASSWORD", "echo bot password"))
    parser.add_argument("--cursor-file", type=Path, default=os.environ.get("ECHO_BOT_CURSOR_FILE"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(args.url, args.username, args.password, args.cursor_file))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
