"""A small test client of Courier's HTTP API and WebSocket."""
from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import tornado.httpclient
import tornado.websocket


@dataclass
class Reply:
    status: int
    body: object
    headers: dict

    @property
    def json(self):
        return self.body


@dataclass
class Account:
    user_id: str
    username: str
    password: str
    token: str


class Api:
    def __init__(self, running):
        self.running = running
        self.http = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        self.sockets: list[tornado.websocket.WebSocketClientConnection] = []

    def close(self) -> None:
        for ws in self.sockets:
            ws.close()
        self.http.close()

    async def call(self, method: str, path: str, body=None, token: str | None = None, raw: bytes | None = None,
                   headers: dict | None = None) -> Reply:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if payload is None and method in ("POST", "PUT"):
            payload = b""
        response = await self.http.fetch(
            self.running.base_url + path, method=method, body=payload, headers=all_headers,
            raise_error=False, request_timeout=20, allow_nonstandard_methods=True,
        )
        text = response.body.decode() if response.body else ""
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Reply(response.code, parsed, dict(response.headers))

    async def register(self, username: str | None = None, password: str = "password-123") -> Account:
        username = username or "u" + uuid.uuid4().hex[:12]
        r = await self.call("POST", "/api/v1/users/register", {"username": username, "password": password})
        assert r.status == 201, r
        login = await self.call("POST", "/api/v1/users/login", {"username": username, "password": password})
        assert login.status == 200, login
        return Account(r.body["user_id"], username, password, login.body["token"])

    async def login(self, username: str, password: str) -> Reply:
        return await self.call("POST", "/api/v1/users/login", {"username": username, "password": password})

    async def create_group(self, owner: Account, name: str = "team", members: list[Account] = ()) -> dict:
        r = await self.call("POST", "/api/v1/groups", {"name": name, "member_ids": [m.user_id for m in members]},
                            owner.token)
        assert r.status == 201, r
        return r.body

    async def pull(self, account: Account, cursor: str | None = None, limit: int | str | None = None) -> Reply:
        return await self.call("GET", "/api/v1/messages" + _query(cursor=cursor, limit=limit), token=account.token)

    async def pull_all(self, account: Account, cursor: str | None = None, limit: int = 50) -> tuple[list, str | None]:
        """Page through the pull; returns (every message, the last next_cursor)."""
        messages = []
        while True:
            r = await self.pull(account, cursor, limit)
            assert r.status == 200, r
            assert set(r.body) == {"messages", "next_cursor", "has_more"}, r
            messages += r.body["messages"]
            cursor = r.body["next_cursor"]
            if not r.body["has_more"]:
                return messages, cursor

    async def history(self, account: Account, path: str, before: str | None = None,
                      limit: int | str | None = None) -> Reply:
        """path: "/conversations/{peer}" or "/groups/{group_id}". History is read from the
        database, which production fills a moment after the 201: settle first."""
        settle = getattr(self.running, "settle", None)
        if settle is not None:
            await settle()
        return await self.call("GET", f"/api/v1{path}/messages" + _query(before=before, limit=limit),
                               token=account.token)

    async def history_all(self, account: Account, path: str, limit: int | None = None) -> list:
        """Every page of a history call, newest first, following next_before until null."""
        messages, before = [], None
        while True:
            r = await self.history(account, path, before, limit)
            assert r.status == 200, r
            assert set(r.body) == {"messages", "next_before"}, r
            messages += r.body["messages"]
            before = r.body["next_before"]
            if before is None:
                return messages
            assert r.body["messages"], r  # a non-null next_before after an empty page would loop

    async def send(self, sender: Account, to: Account, content: str, **extra) -> Reply:
        return await self.call("POST", "/api/v1/messages",
                               {"to_user_id": to.user_id, "content": content, **extra}, sender.token)

    async def send_group(self, sender: Account, group_id: str, content: str, **extra) -> Reply:
        return await self.call("POST", f"/api/v1/groups/{group_id}/messages", {"content": content, **extra},
                               sender.token)

    async def events(self, account: Account, cursor: str | None = None, limit: int | str | None = None) -> Reply:
        """The event view's pull (GET /api/v1/events)."""
        return await self.call("GET", "/api/v1/events" + _query(cursor=cursor, limit=limit), token=account.token)

    async def events_all(self, account: Account, cursor: str | None = None,
                         limit: int = 200) -> tuple[list, str | None]:
        """Page through the event view's pull; returns (every event, the last next_cursor)."""
        events = []
        while True:
            r = await self.events(account, cursor, limit)
            assert r.status == 200, r
            assert set(r.body) == {"events", "next_cursor", "has_more"}, r
            events += r.body["events"]
            cursor = r.body["next_cursor"]
            if not r.body["has_more"]:
                return events, cursor

    async def connect(self, account: Account | None = None, token: str | None = None, cursor: str | None = None,
                      headers: dict | None = None, events: bool | str = False) -> WsClient:
        url = self.running.ws_url
        query = []
        if token is None and account is not None:
            token = account.token
        if token is not None:
            query.append("token=" + quote(token))
        if cursor is not None:
            query.append("cursor=" + quote(cursor))
        if events:
            query.append("events=" + ("1" if events is True else quote(events)))
        if query:
            url += "?" + "&".join(query)
        request = tornado.httpclient.HTTPRequest(url, headers=headers or {})
        ws = await tornado.websocket.websocket_connect(request)
        self.sockets.append(ws)
        return WsClient(ws)

    async def refused(self, **kwargs) -> Reply:
        """Connect expecting the server to refuse the upgrade; returns its HTTP answer."""
        try:
            await self.connect(**kwargs)
        except tornado.httpclient.HTTPClientError as error:
            response = error.response
            text = response.body.decode() if response is not None and response.body else ""
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
            return Reply(error.code, body, dict(response.headers) if response is not None else {})
        raise AssertionError("the WebSocket upgrade was accepted")


def _query(**params) -> str:
    items = [f"{k}={quote(str(v))}" for k, v in params.items() if v is not None]
    return "?" + "&".join(items) if items else ""


class WsClient:
    def __init__(self, ws: tornado.websocket.WebSocketClientConnection):
        self.ws = ws

    async def next(self, timeout: float = 5.0):
        """The next frame as JSON; None when the socket closed."""
        message = await asyncio.wait_for(self.ws.read_message(), timeout)
        return None if message is None else json.loads(message)

    async def nothing(self, within: float = 0.3) -> bool:
        """True when no frame arrives within `within` seconds."""
        try:
            message = await asyncio.wait_for(self.ws.read_message(), within)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected frame: {message!r}")

    async def take(self, count: int, timeout: float = 10.0) -> list:
        """The next `count` frames."""
        frames = []
        for _ in range(count):
            frame = await self.next(timeout)
            assert frame is not None, f"closed after {len(frames)} of {count} frames: {self.ws.close_code}"
            frames.append(frame)
        return frames

    def send(self, obj, binary: bool | None = None) -> None:
        """A dict goes as JSON text; str as text; bytes as binary unless binary=False
        (then as a text frame of those raw bytes, valid UTF-8 or not)."""
        if binary is None:
            binary = isinstance(obj, bytes)
        self.ws.write_message(obj if isinstance(obj, str | bytes) else json.dumps(obj), binary=binary)

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        """Wait for the server to close; returns (code, reason)."""
        while True:
            message = await asyncio.wait_for(self.ws.read_message(), timeout)
            if message is None:
                return self.ws.close_code, self.ws.close_reason

    def close(self) -> None:
        self.ws.close()
