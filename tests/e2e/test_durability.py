"""Durability of the embedded mode: a restart on the same data directory keeps users,
groups, messages and cursors; a kill -9 right after a 201 loses nothing; SIGTERM
stops `courier serve` cleanly."""
from __future__ import annotations

import os

import pytest

from tests.e2e.support import eventually


@pytest.mark.gen_test(timeout=60)
async def test_a_restart_keeps_users_groups_messages_and_cursors(api, courier):
    a, b, c = await api.register("alice"), await api.register("bob"), await api.register("carol")
    group = await api.create_group(a, "kept", [b, c])
    ws_b = await api.connect(b)
    first = (await api.send(a, b, "before the restart 1")).body
    group_msg = (await api.send_group(c, group["group_id"], "group before the restart")).body
    frames = await ws_b.take(2)
    cursor = frames[0]["cursor"]
    missed = (await api.send(a, b, "before the restart 2", client_msg_id="retry-me")).body
    await ws_b.next()

    await courier.restart()
    assert (await ws_b.closed())[0] == 1001

    # The old tokens still work (the signing secret is kept in the data directory).
    me = await api.call("GET", "/api/v1/users/me", token=b.token)
    assert me.status == 200 and me.body == {"user_id": b.user_id, "username": "bob"}, me
    # Users: login, lookup, and a taken name stays taken.
    login = await api.login("alice", a.password)
    assert login.status == 200 and login.body["user_id"] == a.user_id, login
    found = await api.call("GET", "/api/v1/users?username=CAROL", token=a.token)
    assert found.status == 200 and found.body["user_id"] == c.user_id, found
    taken = await api.call("POST", "/api/v1/users/register", {"username": "Bob", "password": "password-123"})
    assert taken.status == 409, taken
    # Groups.
    r = await api.call("GET", f"/api/v1/groups/{group['group_id']}", token=b.token)
    assert r.status == 200 and r.body == group, r
    # Messages: the pull from the old cursor, the history.
    pulled, last = await api.pull_all(b, cursor)
    assert [m["id"] for m in pulled] == [group_msg["id"], missed["id"]]
    assert pulled[0]["cursor"] == frames[1]["cursor"]
    history = await api.history_all(a, f"/conversations/{b.user_id}")
    assert [m["id"] for m in history] == [missed["id"], first["id"]]
    assert [m["id"] for m in await api.history_all(b, f"/groups/{group['group_id']}")] == [group_msg["id"]]
    # Idempotency survives the restart: a retry gets the original, nobody gets it twice.
    retry = await api.send(a, b, "before the restart 2", client_msg_id="retry-me")
    assert retry.status == 201 and retry.body == missed, retry
    # An old cursor still resumes on the socket, then live.
    ws_b = await api.connect(b, cursor=cursor)
    assert [f["id"] for f in await ws_b.take(2)] == [group_msg["id"], missed["id"]]
    new = (await api.send(a, b, "after the restart")).body
    frame = await ws_b.next()
    assert frame["id"] == new["id"]
    # Cursors keep increasing across the restart.
    assert tuple(map(int, frame["cursor"].split("-"))) > tuple(map(int, last.split("-")))
    assert await ws_b.nothing(0.2)


@pytest.mark.gen_test(timeout=60)
async def test_kill_9_right_after_the_201_loses_nothing_and_sigterm_exits_0(process, process_api):
    api = process_api
    await process.start().ready()
    assert (process.directory / "data").is_dir()
    secret = process.directory / "data" / "jwt_secret"
    assert secret.exists() and (os.stat(secret).st_mode & 0o777) == 0o600
    a, b = await api.register("alice"), await api.register("bob")
    group = await api.create_group(a, "g", [b])
    sent = await api.send(a, b, "accepted just before the crash ✓")
    assert sent.status == 201, sent
    assert await process.kill() == -9

    await process.start().ready()
    pulled, _ = await api.pull_all(b)
    assert [m["id"] for m in pulled] == [sent.body["id"]]
    assert pulled[0]["content"] == "accepted just before the crash ✓"

    async def in_history():
        history = await api.history_all(b, f"/conversations/{a.user_id}")
        return [m["id"] for m in history] == [sent.body["id"]]

    await eventually(in_history)
    # A burst of sends, each killed right after its 201, all survive.
    ids = []
    for i in range(2):
        r = await api.send_group(a, group["group_id"], f"burst {i}")
        assert r.status == 201, r
        ids.append(r.body["id"])
        assert await process.kill() == -9
        await process.start().ready()
    pulled, _ = await api.pull_all(b)
    assert [m["id"] for m in pulled] == [sent.body["id"], *ids]

    # SIGTERM: open sockets are told 1001, and the process exits 0.
    ws = await api.connect(b)
    assert await process.terminate() == 0
    assert (await ws.closed())[0] == 1001
    assert "Traceback" not in process.output()
