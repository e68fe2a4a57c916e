"""Client: every HTTP call of the Courier API, and `events()`, the event stream."""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote, urlencode

import tornado.httpclient

from courier_client.errors import CourierConnectionError, CourierError, error_from_answer
from courier_client.events import EventStream
from courier_client.retry import backoff_delay, is_retryable

log = logging.getLogger("courier_client")

API = "/api/v1"


def _segment(value: str) -> str:
    return quote(str(value), safe="")


class Client:
    """An async client of one Courier server.

        async with Client("http://127.0.0.1:8080") as client:
            await client.login("alice", "correct horse")
            bob = await client.find_user("bob")
            await client.send_private(bob["user_id"], "hi Bob")
            async for event in client.events():
                print(event)

    `login()` keeps the token (and `user_id`); every call after it is made as that user.
    A token obtained elsewhere may be given as `token=`.

    Retries: a send (`send_private`, `send_group`) is given a client_msg_id (a uuid4) and
    is sent again, with the same id and body, after a network error, a 503, a 429 (after
    its Retry-After) or a 409 send_in_progress, with exponential backoff and jitter, for up
    to `retry_for` seconds; the server delivers it once however many attempts it takes.
    Reads and the idempotent changes (mark read, rename, edit, settings) are retried the
    same way; calls that would not be safe to repeat (register, create a group, add a
    member, delete) are not. Every API error is raised as a CourierError."""

    def __init__(self, base_url: str, token: str | None = None, *, retry_for: float = 30.0,
                 backoff_base: float = 0.2, backoff_max: float = 5.0, request_timeout: float = 30.0,
                 connect_timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.user_id: str | None = None
        self.username: str | None = None
        self.retry_for = retry_for
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self._http: tornado.httpclient.AsyncHTTPClient | None = None

    # --- lifecycle ------------------------------------------------------------

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections (an open event stream is closed by its own close())."""
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def ws_url(self) -> str:
        """The WebSocket's URL: the base URL with ws:// or wss://, and /ws."""
        if self.base_url.startswith("https://"):
            return "wss://" + self.base_url[len("https://"):] + "/ws"
        if self.base_url.startswith("http://"):
            return "ws://" + self.base_url[len("http://"):] + "/ws"
        return self.base_url + "/ws"

    # --- requests -------------------------------------------------------------

    async def request(self, method: str, path: str, body: Any = None, *, query: dict | None = None,
                      auth: bool = True, retry: bool = False) -> Any:
        """One call of the API: `path` under /api/v1, `body` sent as JSON, `query` without
        its None values. Answers the decoded JSON (None for a 204); raises CourierError.
        With `retry`, passing failures (is_retryable) are retried for up to `retry_for` s."""
        url = self.base_url + API + path
        if query:
            query = {k: v for k, v in query.items() if v is not None}
            if query:
                url += "?" + urlencode(query)
        headers = {"Accept": "application/json"}
        if auth:
            if self.token is None:
                raise CourierError(401, "unauthorized", "log in first (or give a token)")
            headers["Authorization"] = "Bearer " + self.token
        payload = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            payload = json.dumps(body).encode()
        elif method in ("POST", "PUT", "PATCH"):
            payload = b""
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        while True:
            try:
                return await self._fetch(method, url, headers, payload)
            except CourierError as error:
                if not retry or not is_retryable(error):
                    raise
                delay = backoff_delay(attempt, self.backoff_base, self.backoff_max)
                if error.retry_after is not None:
                    delay = max(error.retry_after, 0.05)  # as told (never a loop without a pause)
                if time.monotonic() + delay > deadline:
                    raise
                log.info("%s %s: %s; retrying in %.2f s", method, path, error, delay)
                attempt += 1
                await asyncio.sleep(delay)

    async def _object(self, method: str, path: str, body: Any = None, **options: Any) -> dict[str, Any]:
        """request() of a call whose answer is a JSON object."""
        answer = await self.request(method, path, body, **options)
        if not isinstance(answer, dict):
            raise CourierError(200, "unexpected_answer", f"{method} {path} did not answer a JSON object")
        return answer

    async def _fetch(self, method: str, url: str, headers: dict, payload: bytes | None) -> Any:
        if self._http is None:
            # One client of its own (not Tornado's shared per-loop instance), closed by close().
            self._http = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        request = tornado.httpclient.HTTPRequest(
            url, method=method, headers=headers, body=payload, request_timeout=self.request_timeout,
            connect_timeout=self.connect_timeout, follow_redirects=False)
        try:
            response = await self._http.fetch(request, raise_error=False)
        except (OSError, tornado.httpclient.HTTPClientError) as e:
            # Refused, reset, closed or timed out (Tornado's 599): no answer at all.
            raise CourierConnectionError(f"{type(e).__name__}: {e}") from e
        if 200 <= response.code < 300:
            if response.code == 204 or not response.body:
                return None
            return json.loads(response.body)
        raise error_from_answer(response.code, response.body, response.headers.get("Retry-After"))

    # --- accounts -------------------------------------------------------------

    async def register(self, username: str, password: str) -> dict:
        """Create an account: `{"user_id", "username"}`. Not logged in: call login()."""
        return await self._object("POST", "/users/register", {"username": username, "password": password},
                                  auth=False)

    async def login(self, username: str, password: str) -> dict:
        """Log in and keep the token for the calls that follow: `{"user_id", "username",
        "token", "expires_at"}`."""
        answer = await self._object("POST", "/users/login", {"username": username, "password": password},
                                    auth=False, retry=True)
        self.token = answer["token"]
        self.user_id = answer["user_id"]
        self.username = answer["username"]
        return answer

    async def logout(self) -> None:
        """End this token (its sockets close); the client forgets it."""
        await self.request("POST", "/users/logout")
        self.token = None

    async def logout_all(self) -> None:
        """End every token of this user issued until now."""
        await self.request("POST", "/users/logout-all")
        self.token = None

    async def me(self) -> dict:
        """`{"user_id", "username"}` of the logged-in user."""
        answer = await self._object("GET", "/users/me", retry=True)
        self.user_id, self.username = answer["user_id"], answer["username"]
        return answer

    async def settings(self) -> dict:
        """`{"send_read_receipts", "show_presence"}`."""
        return await self._object("GET", "/users/me/settings", retry=True)

    async def update_settings(self, *, send_read_receipts: bool | None = None,
                              show_presence: bool | None = None) -> dict:
        """Change either setting: the user with both settings."""
        body = {k: v for k, v in (("send_read_receipts", send_read_receipts), ("show_presence", show_presence))
                if v is not None}
        return await self._object("PATCH", "/users/me", body, retry=True)

    async def get_user(self, user_id: str) -> dict:
        """`{"user_id", "username"}` for an id (404 user_not_found)."""
        return await self._object("GET", f"/users/{_segment(user_id)}", retry=True)

    async def find_user(self, username: str) -> dict:
        """`{"user_id", "username"}` by username (any spelling that looks the same)."""
        return await self._object("GET", "/users", query={"username": username}, retry=True)

    async def presence(self, user_id: str) -> dict:
        """`{"type": "presence", "user_id", "status": "online" | "offline", "last_seen"}`."""
        return await self._object("GET", f"/users/{_segment(user_id)}/presence", retry=True)

    # --- sending --------------------------------------------------------------

    async def send_private(self, to_user_id: str, content: str, *, client_msg_id: str | None = None) -> dict:
        """Send a private message; answers the message (`id`, `seq`, `created_at`, ...).
        Retried with the same `client_msg_id` (a new uuid4 unless given) until the server
        takes it or `retry_for` runs out: delivered exactly once either way."""
        body = {"to_user_id": to_user_id, "content": content, "client_msg_id": client_msg_id or str(uuid.uuid4())}
        return await self._object("POST", "/messages", body, retry=True)

    async def send_group(self, group_id: str, content: str, *, client_msg_id: str | None = None) -> dict:
        """Send a message to a group; retried as send_private is."""
        body = {"content": content, "client_msg_id": client_msg_id or str(uuid.uuid4())}
        return await self._object("POST", f"/groups/{_segment(group_id)}/messages", body, retry=True)

    async def edit_message(self, message_id: str, content: str) -> dict:
        """The sender edits a message (within the edit window): the message, with `edited_at`."""
        return await self._object("PATCH", f"/messages/{_segment(message_id)}", {"content": content}, retry=True)

    async def delete_message(self, message_id: str) -> None:
        """Delete one's own message (or, in a group one owns, anyone's)."""
        await self.request("DELETE", f"/messages/{_segment(message_id)}")

    # --- history and conversations --------------------------------------------

    async def private_history(self, user_id: str, *, before: int | str | None = None,
                              limit: int | None = None) -> dict:
        """One page of the conversation with `user_id`, newest first:
        `{"messages": [...], "next_before"}` (pass next_before as `before` for the next,
        older page; None at the end)."""
        return await self._object("GET", f"/conversations/{_segment(user_id)}/messages",
                                  query={"before": before, "limit": limit}, retry=True)

    async def group_history(self, group_id: str, *, before: int | str | None = None,
                            limit: int | None = None) -> dict:
        """One page of a group's messages, newest first (as private_history)."""
        return await self._object("GET", f"/groups/{_segment(group_id)}/messages",
                                  query={"before": before, "limit": limit}, retry=True)

    def iter_private_history(self, user_id: str, *, page_size: int = 100) -> AsyncIterator[dict]:
        """Every message with `user_id`, newest first, a page at a time."""
        return _every(lambda before: self.private_history(user_id, before=before, limit=page_size), "messages")

    def iter_group_history(self, group_id: str, *, page_size: int = 100) -> AsyncIterator[dict]:
        """Every message of a group, newest first, a page at a time."""
        return _every(lambda before: self.group_history(group_id, before=before, limit=page_size), "messages")

    async def conversations(self, *, before: str | None = None, limit: int | None = None) -> dict:
        """One page of the user's chats, most recent activity first:
        `{"conversations": [...], "next_before"}`; each has `type`, `user_id`/`username` or
        `group_id`/`name`, `last_message`, `last_seq`, `read_seq`, `unread_count`, `updated_at`."""
        return await self._object("GET", "/conversations", query={"before": before, "limit": limit}, retry=True)

    def iter_conversations(self, *, page_size: int = 100) -> AsyncIterator[dict]:
        """Every chat of the user, most recent activity first."""
        return _every(lambda before: self.conversations(before=before, limit=page_size), "conversations")

    async def mark_read_private(self, user_id: str, seq: int) -> dict:
        """Move the read marker of the chat with `user_id` to `seq`: `{"read_seq", "unread_count"}`."""
        return await self._object("POST", f"/conversations/{_segment(user_id)}/read", {"seq": seq}, retry=True)

    async def mark_read_group(self, group_id: str, seq: int) -> dict:
        """Move the read marker of a group to `seq`: `{"read_seq", "unread_count"}`."""
        return await self._object("POST", f"/groups/{_segment(group_id)}/read", {"seq": seq}, retry=True)

    async def group_reads(self, group_id: str) -> list[dict]:
        """Each member's read marker: `[{"user_id", "read_seq"}, ...]`."""
        reads: list[dict] = (await self._object("GET", f"/groups/{_segment(group_id)}/reads", retry=True))["reads"]
        return reads

    # --- groups ---------------------------------------------------------------

    async def create_group(self, name: str, member_ids: Iterable[str] = (), kind: str | None = None) -> dict:
        """A new group owned by the caller: `{"group_id", "name", "owner_id", "member_ids", "kind",
        "member_count"}`. `kind="channel"`: a broadcast channel, in which only the owner posts
        (a server without large groups answers 400)."""
        body: dict = {"name": name, "member_ids": list(member_ids)}
        if kind is not None:
            body["kind"] = kind
        return await self._object("POST", "/groups", body)

    async def get_group(self, group_id: str) -> dict:
        """A group the caller is in."""
        return await self._object("GET", f"/groups/{_segment(group_id)}", retry=True)

    async def groups(self, *, before: str | None = None, limit: int | None = None) -> dict:
        """One page of the caller's groups, the most recently joined first:
        `{"groups": [...], "next_before"}`."""
        return await self._object("GET", "/groups", query={"before": before, "limit": limit}, retry=True)

    def iter_groups(self, *, page_size: int = 100) -> AsyncIterator[dict]:
        """Every group of the caller, the most recently joined first."""
        return _every(lambda before: self.groups(before=before, limit=page_size), "groups")

    async def rename_group(self, group_id: str, name: str) -> dict:
        """The owner renames a group: the group."""
        return await self._object("PATCH", f"/groups/{_segment(group_id)}", {"name": name}, retry=True)

    async def add_member(self, group_id: str, user_id: str) -> dict:
        """Add a user to a group: the group."""
        return await self._object("POST", f"/groups/{_segment(group_id)}/members", {"user_id": user_id})

    async def invite(self, group_id: str, user_id: str) -> dict:
        """Invite a user to the caller's group (its owner): `{"group_id", "user_id", "invited_by"}`.
        The invitee gets a `group_invited` event and joins with `add_member(group_id, <its own id>)`."""
        return await self._object("POST", f"/groups/{_segment(group_id)}/invitations", {"user_id": user_id},
                                  retry=True)  # inviting again answers the same (200)

    async def remove_member(self, group_id: str, user_id: str) -> None:
        """Remove a member (the owner), or leave (one's own id)."""
        await self.request("DELETE", f"/groups/{_segment(group_id)}/members/{_segment(user_id)}")

    async def leave_group(self, group_id: str) -> None:
        """Leave a group."""
        if self.user_id is None:
            await self.me()
        await self.remove_member(group_id, self.user_id or "")

    # --- the event log --------------------------------------------------------

    async def pull_events(self, cursor: str | None = None, *, limit: int | None = None) -> dict:
        """One page of the user's event log after `cursor` (from the oldest retained event
        without one): `{"events": [...], "next_cursor", "has_more"}`. A cursor older than
        the log retains is a CourierError 410 cursor_expired."""
        return await self._object("GET", "/events", query={"cursor": cursor, "limit": limit}, retry=True)

    def events(self, cursor: str | None = None, *, from_start: bool = False, **options: Any) -> EventStream:
        """The event view as an async iterator: every event of the user's log once, in log
        order, live, across reconnections (see EventStream). Without `cursor` it starts
        at the end of the log as it is now (`from_start=True`: at the oldest retained
        event); with one, right after it."""
        return EventStream(self, cursor, from_start=from_start, **options)


async def _every(fetch: Callable[[Any], Awaitable[dict]], key: str) -> AsyncIterator[dict]:
    """Every item of a listing paged backwards: page[key], then the page before
    page["next_before"], until it is None."""
    before = None
    while True:
        page = await fetch(before)
        for item in page[key]:
            yield item
        before = page["next_before"]
        if before is None:
            return
