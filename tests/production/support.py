"""Helpers of the production-mode tests: `courier serve` / `courier worker` as
processes of their own, in-process gateways, and the checks every fault test
ends with (nothing lost, nothing doubled: frames and rows counted by message id)."""
from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import time
import uuid
from functools import partial

from sqlalchemy import bindparam, create_engine, pool, text

from entrypoints.settings import Settings
from tests.e2e.client import Api, WsClient
from tests.services import waiting
from tests.services.courier_command import FAST_ENV, CourierCommand  # noqa: F401 - CourierCommand re-exported
from tests.services.urls import LoopbackUrls

LEGACY_CURSOR = re.compile(r"[0-9]+-[0-9]+")  # an own-log position; a large group's member has "2.…" cursors

TEST_DEFAULTS = dict(argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1, registrations=0,
                   hash_queue=1000)


# COURIER_TEST_CLUSTER=1: the tests whose redis_url goes through across_topologies run on the
# local Redis Cluster as well (issue 19), as the e2e suite's (`make test` sets it by default).
TOPOLOGIES = ["single"] + (["cluster"] if os.environ.get("COURIER_TEST_CLUSTER", "") == "1" else [])


def across_topologies(request, redis_url: str) -> str:
    """For a module's own `redis_url` fixture, parametrised over TOPOLOGIES: the claimed
    database, or the session's cluster (tests/services/redis_cluster.py), emptied."""
    if request.param == "single":
        return redis_url
    cluster = request.getfixturevalue("redis_cluster")
    for master in cluster.masters():  # as the claimed database: empty
        cluster.command(master.port, "FLUSHALL")
    return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in cluster.startup_nodes)


def production_settings(redis_url: str, database_url: str, jwt_secret: str, **overrides) -> Settings:
    values = dict(host="127.0.0.1", port=0, redis_url=redis_url, database_url=database_url, jwt_secret=jwt_secret,
                  send_rate=0, log_level="info", **TEST_DEFAULTS)
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings, **extra) -> dict:
    """The environment a `courier` process needs to run with these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env.update(
        COURIER_REDIS_URL=settings.redis_url,
        COURIER_DATABASE_URL=settings.database_url,
        COURIER_JWT_SECRET=settings.jwt_secret,
        COURIER_SEND_RATE=str(settings.send_rate),
        COURIER_LOG_LEVEL=settings.log_level,
        **FAST_ENV,
    )
    env.update({k: str(v) for k, v in extra.items()})
    large = int(env.get("COURIER_LARGE_GROUP") or 0)
    if large > 0 and "COURIER_RECEIPTS_MAX_GROUP" not in extra:
        # Receipts below the threshold, as the settings require (a large group gets none).
        env["COURIER_RECEIPTS_MAX_GROUP"] = str(min(100, large - 1))
    return env


async def start_stack(commands, redis_url: str, mysql_url: str, secret: str, **env):
    """Two `courier serve` processes and a `courier worker`, ready; `env`: more COURIER_*
    settings for the three (e.g. COURIER_LARGE_GROUP=3)."""
    settings = production_settings(redis_url, mysql_url, secret)
    one = commands("serve", settings, name="gateway-1", **env).start()
    two = commands("serve", settings, name="gateway-2", **env).start()
    worker = commands("worker", settings, **env).start()
    await asyncio.gather(one.ready(), two.ready(), worker.ready())
    return one, two, worker


class Gateway(LoopbackUrls):
    """A CourierServer in this process, on the test's loop (like tests/e2e's Running)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.server = None

    async def start(self) -> Gateway:
        from entrypoints.server import CourierServer

        self.server = CourierServer(self.settings)
        await self.server.start()
        self.settings.port = self.server.port
        return self

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()

    @property
    def subscriber(self):
        return self.server.container.subscriber()

    @property
    def port(self) -> int:
        return self.settings.port


# --- sending and counting -------------------------------------------------------

class Sender:
    """Sends like a careful client: each message has a client_msg_id, and a send that
    fails for want of a service (503, or the connection) is retried with the same one
    until it is accepted. `accepted` maps client_msg_id -> message id (from the 201)."""

    def __init__(self, api: Api, account, retry_for: float = 60.0):
        self.api = api
        self.account = account
        self.retry_for = retry_for
        self.accepted: dict[str, str] = {}
        self.attempts: dict[str, int] = {}  # message id -> tries it took to be accepted
        self.unavailable = 0  # 503 (and 409 send_in_progress) answers seen
        self.bodies_503: list = []

    async def send(self, content: str, to=None, group_id: str | None = None) -> str:
        key = uuid.uuid4().hex
        deadline = time.monotonic() + self.retry_for
        tries = 0
        while True:
            tries += 1
            try:
                if group_id is not None:
                    reply = await self.api.send_group(self.account, group_id, content, client_msg_id=key)
                else:
                    reply = await self.api.send(self.account, to, content, client_msg_id=key)
            except OSError:
                reply = None
            if reply is not None and reply.status == 201:
                previous = self.accepted.setdefault(key, reply.body["id"])
                assert previous == reply.body["id"], "a retry with the same client_msg_id got another message"
                self.attempts[reply.body["id"]] = tries
                return reply.body["id"]
            if reply is not None:
                # 503: a service is down; 409 send_in_progress: the first try with this
                # client_msg_id is still pending. A client retries both.
                in_progress = reply.status == 409 and (reply.body or {}).get("error", {}).get("code") == \
                    "send_in_progress"
                assert reply.status == 503 or in_progress, reply
                self.unavailable += 1
                self.bodies_503.append(reply.body)
            if time.monotonic() > deadline:
                raise AssertionError(f"a send was not accepted within {self.retry_for} s: {reply}")
            await asyncio.sleep(0.05)

    @property
    def ids(self) -> set[str]:
        return set(self.accepted.values())


class Collector:
    """Reads every frame of a socket in the background, counting message ids."""

    def __init__(self, ws: WsClient, name: str = "socket"):
        self.ws = ws
        self.name = name
        self.frames: list[dict] = []
        self.closed: tuple | None = None
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            message = await self.ws.ws.read_message()
            if message is None:
                self.closed = (self.ws.ws.close_code, self.ws.ws.close_reason)
                return
            frame = json.loads(message)
            if frame.get("type") != "pong":
                self.frames.append(frame)

    @property
    def counts(self) -> collections.Counter:
        return collections.Counter(frame["id"] for frame in self.frames)

    async def until_has(self, ids: set[str], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= set(self.counts):
            if self.closed is not None:
                raise AssertionError(f"{self.name} closed {self.closed} missing {len(ids - set(self.counts))}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} is missing {len(ids - set(self.counts))} of {len(ids)} "
                                     f"messages after {timeout} s, e.g. {sorted(ids - set(self.counts))[:3]}; "
                                     f"first frames {[f['content'] for f in self.frames[:3]]}")
            await asyncio.sleep(0.02)

    def assert_exactly_once(self, ids: set[str]) -> None:
        counts = self.counts
        doubled = {i: n for i, n in counts.items() if n > 1}
        assert not doubled, f"{self.name} got {len(doubled)} messages more than once"
        assert set(counts) == ids, (f"{self.name}: {len(ids - set(counts))} lost, "
                                    f"{len(set(counts) - ids)} unexpected")
        cursors = [frame["cursor"] for frame in self.frames]
        if all(LEGACY_CURSOR.fullmatch(cursor) for cursor in cursors):
            assert cursors == sorted(cursors, key=lambda c: tuple(int(p) for p in c.split("-"))), \
                f"{self.name}: frames out of cursor order"
        else:  # v2 cursors (large groups) are opaque: each conversation's messages in seq order
            assert_seqs_increasing(self.frames, self.name)

    async def close(self) -> None:
        self.ws.close()
        try:
            await asyncio.wait_for(self._task, 5)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()


def announcements_left(database_url: str) -> int:
    """Announcements stored and not yet marked done (group_announcements' rows)."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT COUNT(*) FROM group_announcements")).scalar()
    finally:
        engine.dispose()


async def until_announced(database_url: str, timeout: float = 20.0) -> None:
    """Wait (bounded) until no stored announcement is left (the relay marked them done)."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    while left := await loop.run_in_executor(None, announcements_left, database_url):
        assert time.monotonic() < deadline, f"{left} announcement(s) not relayed within {timeout} s"
        await asyncio.sleep(0.2)


def stored_ids(database_url: str) -> collections.Counter:
    """Message ids in the messages table, with how many rows each has."""
    engine = create_engine(database_url, poolclass=pool.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, COUNT(*) FROM messages GROUP BY id")).all()
    finally:
        engine.dispose()
    return collections.Counter({row[0]: row[1] for row in rows})


def count_stored(database_url: str, ids: set[str]) -> int:
    engine = create_engine(database_url, poolclass=pool.NullPool, connect_args={"connect_timeout": 1})
    try:
        with engine.connect() as conn:
            query = text("SELECT COUNT(*) FROM messages WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))
            return conn.execute(query, {"ids": sorted(ids)}).scalar()
    finally:
        engine.dispose()


async def until_stored(database_url: str, ids: set[str], timeout: float = 30.0) -> collections.Counter:
    """Wait (bounded) until every id has a row; then return the whole table's counts."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    while True:
        try:
            stored = await loop.run_in_executor(None, stored_ids, database_url)
        except Exception as e:  # noqa: BLE001 - the database may still be coming back
            stored, error = collections.Counter(), e
        else:
            error = None
            if ids <= set(stored):
                return stored
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(ids - set(stored))} of {len(ids)} messages not in the database "
                                 f"after {timeout} s (last error: {error!r})")
        await asyncio.sleep(0.1)


def assert_stored_exactly_once(stored: collections.Counter, ids: set[str]) -> None:
    doubled = {i: n for i, n in stored.items() if n > 1}
    assert not doubled, f"{len(doubled)} messages have more than one row"
    assert set(stored) == ids, f"{len(ids - set(stored))} lost, {len(set(stored) - ids)} unexpected rows"


# Gateways, workers and Redis restarts in these tests: waits are longer than in e2e.
eventually = partial(waiting.eventually, timeout=10.0, interval=0.05)


# --- the event view (issue 14): own sends and group changes in the log ------------

MESSAGE_TYPES = ("private", "group")


def conversation_of(event: dict) -> str:
    """The conversation of a message event: its group, or its private pair."""
    if event["type"] == "group":
        return "g:" + event["group_id"]
    return "p:" + ":".join(sorted((event["from_user_id"], event["to_user_id"])))


def change_of(event: dict) -> tuple:
    """A group change event as (type, group_id, the user added or removed / the name, by_user_id)."""
    detail = event["name"] if event["type"] == "group_updated" else event["user_id"]
    return event["type"], event["group_id"], detail, event["by_user_id"]


def messages_by_conversation(events: list[dict]) -> dict[str, list[dict]]:
    """The message events of a log, per conversation, in log (cursor) order."""
    by_conversation: dict[str, list[dict]] = collections.defaultdict(list)
    for event in events:
        if event["type"] in MESSAGE_TYPES:
            by_conversation[conversation_of(event)].append(event)
    return dict(by_conversation)


def assert_seqs_increasing(events: list[dict], name: str = "socket") -> None:
    """Per conversation, the messages' seqs in the order received only go up (a socket
    that gets some of a conversation's messages: those from others)."""
    for conversation, messages in messages_by_conversation(events).items():
        seqs = [m["seq"] for m in messages]
        assert seqs == sorted(set(seqs)), f"{name}: seqs of {conversation} out of order: {seqs}"


def assert_seqs_gapless(events: list[dict], name: str = "log") -> None:
    """Per conversation, the messages' seqs in log order are 1, 2, 3, ... (a log that has
    every message of its conversations: seqs are taken with the append, atomically, so
    log order is seq order)."""
    for conversation, messages in messages_by_conversation(events).items():
        seqs = [m["seq"] for m in messages]
        assert seqs == list(range(1, len(seqs) + 1)), f"{name}: seqs of {conversation} are not gapless: {seqs}"


class GroupChanges:
    """Group changes made through the API by one actor (rate limit off in these tests),
    remembered as change_of() tuples in the order made: one at a time, so that order
    is their order in every member's log."""

    def __init__(self, api: Api, actor):
        self.api = api
        self.actor = actor
        self.made: list[tuple] = []

    async def create(self, name: str, members) -> dict:
        group = await self.api.create_group(self.actor, name, members)
        self.made.append(("group_updated", group["group_id"], name, self.actor.user_id))
        return group

    async def add(self, group_id: str, user) -> None:
        r = await self.api.call("POST", f"/api/v1/groups/{group_id}/members", {"user_id": user.user_id},
                                self.actor.token)
        assert r.status == 200, r
        self.made.append(("member_added", group_id, user.user_id, self.actor.user_id))

    async def remove(self, group_id: str, user) -> None:
        r = await self.api.call("DELETE", f"/api/v1/groups/{group_id}/members/{user.user_id}", None,
                                self.actor.token)
        assert r.status == 204, r
        self.made.append(("member_removed", group_id, user.user_id, self.actor.user_id))

    async def rename(self, group_id: str, name: str) -> None:
        r = await self.api.call("PATCH", f"/api/v1/groups/{group_id}", {"name": name}, self.actor.token)
        assert r.status == 200 and r.body["name"] == name, r
        self.made.append(("group_updated", group_id, name, self.actor.user_id))

    async def churn(self, group_id: str, guest, rounds: int, pause: float = 0.02) -> None:
        """Add `guest`, rename, remove `guest`: `rounds` times, with pauses between."""
        for i in range(rounds):
            await self.add(group_id, guest)
            await asyncio.sleep(pause)
            await self.rename(group_id, f"name {i}")
            await asyncio.sleep(pause)
            await self.remove(group_id, guest)
            await asyncio.sleep(pause)


async def check_event_view(client: Api, account, socket: Collector, messages: set[str], changes: list[tuple],
                           own_keys: dict[str, str] | None = None) -> list[dict]:
    """`socket` is an event-view socket (/ws?events=1) of `account`, open before anything
    happened to it: it got every event of the log exactly once, in cursor order, frame for
    frame what the event view's pull gives; the log holds exactly the `messages` (ids) and
    the group `changes` (change_of tuples, in that order); per conversation the seqs are
    gapless; own sends carry their client_msg_id (`own_keys`: client_msg_id -> id, when
    known). Returns the log."""
    pulled, _ = await client.events_all(account)
    ids = [e["id"] for e in pulled]
    assert len(ids) == len(set(ids)), f"{socket.name}: an event is twice in the log"
    assert {e["id"] for e in pulled if e["type"] in MESSAGE_TYPES} == messages, \
        f"{socket.name}: the log's messages are not the accepted ones"
    assert [change_of(e) for e in pulled if e["type"] not in MESSAGE_TYPES] == changes, \
        f"{socket.name}: the log's group changes are not those made"
    await socket.until_has(set(ids))
    await asyncio.sleep(0.3)  # room for a late duplicate to show up
    assert socket.closed is None, f"{socket.name} was closed: {socket.closed}"
    socket.assert_exactly_once(set(ids))
    assert socket.frames == pulled, f"{socket.name}: the pushes differ from the pull"
    assert_seqs_gapless(pulled, socket.name)
    for event in pulled:
        if event["type"] in MESSAGE_TYPES and event["from_user_id"] == account.user_id:
            assert "client_msg_id" in event, f"{socket.name}: an own send without its client_msg_id"
            if own_keys is not None:
                assert own_keys[event["client_msg_id"]] == event["id"]
        else:
            assert "client_msg_id" not in event, f"{socket.name}: another's client_msg_id"
    return pulled


async def check_original_view(socket: Collector, account, log: list[dict]) -> None:
    """An original-view socket of the same user, open as long: exactly the messages from
    others of the log, once each, in cursor order, with the cursors and seqs of the log."""
    expected = [{k: v for k, v in e.items() if k != "client_msg_id"} for e in log
                if e["type"] in MESSAGE_TYPES and e["from_user_id"] != account.user_id]
    await socket.until_has({e["id"] for e in expected})
    await asyncio.sleep(0.1)
    assert socket.closed is None, f"{socket.name} was closed: {socket.closed}"
    socket.assert_exactly_once({e["id"] for e in expected})
    assert socket.frames == expected, f"{socket.name}: not the log's messages from others"


async def assert_history_agrees(client: Api, account, log: list[dict]) -> None:
    """Once the worker has stored them: every conversation of the log reads back from the
    history with the same messages and seqs, in seq order (call after until_stored)."""
    for conversation, messages in messages_by_conversation(log).items():
        first = messages[0]
        if first["type"] == "group":
            path = f"/groups/{first['group_id']}"
        else:
            peer = first["to_user_id"] if first["from_user_id"] == account.user_id else first["from_user_id"]
            path = f"/conversations/{peer}"
        history = await client.history_all(account, path, limit=200)
        assert [(m["id"], m["seq"]) for m in reversed(history)] == [(m["id"], m["seq"]) for m in messages], \
            f"the history of {conversation} does not agree with the log"
