"""Logs: the three lines of section 6 (checklist item 8), and no token or password in
any log line, the access log of /ws?token=... included; in-process (caplog) and from
`courier serve` with COURIER_LOG_FILE."""
from __future__ import annotations

import logging
import re

import pytest
import tornado.httpclient
import tornado.websocket

PASSWORD = "Pa55word-XYZZY-never-logged"
WRONG_PASSWORD = "Wr0ng-PLUGH-never-logged"


def lines_of(caplog) -> list[str]:
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        if record.exc_info:
            lines.append(logging.Formatter().formatException(record.exc_info))
    return lines


async def a_session(api):
    """Everything that could leak a secret: register, good and bad logins, sockets with the
    token in the query and in the header, a refused socket, sends, pulls."""
    a = await api.register("alice", PASSWORD)
    b = await api.register("bob", PASSWORD)
    assert (await api.login("alice", WRONG_PASSWORD)).status == 401
    assert (await api.login("nobody", WRONG_PASSWORD)).status == 401
    ws_b = await api.connect(b)  # ?token=...
    ws_a = await api.connect(headers={"Authorization": f"Bearer {a.token}"})
    assert (await api.refused(token=a.token + "tampered")).status == 401
    sent = await api.send(a, b, "hello")
    assert sent.status == 201
    await ws_b.next()
    sent_back = await api.send(b, a, "hello back")
    await ws_a.next()
    assert (await api.pull(b)).status == 200
    assert (await api.call("GET", f"/api/v1/messages?token={a.token}")).status == 401  # token in a URL by mistake
    ws_a.close()
    ws_b.close()
    await ws_a.closed()
    await ws_b.closed()
    return a, b, sent.body, sent_back.body


def check_no_secrets(lines: list[str], a, b) -> None:
    text = "\n".join(lines)
    for secret in (PASSWORD, WRONG_PASSWORD, a.token, b.token, a.token.split(".")[2], b.token.split(".")[2]):
        assert secret not in text
    # Nothing that even looks like a JWT.
    assert not re.search(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+", text), text


@pytest.mark.gen_test(timeout=30)
async def test_the_three_lines_of_section_6_and_no_secrets(api, caplog):
    caplog.set_level(logging.INFO)
    a, b, sent, sent_back = await a_session(api)
    lines = lines_of(caplog)
    # Checklist item 8.
    for line in (
        f"Client {b.user_id} connected",
        f"Client {a.user_id} connected",
        f"Notification published for message {sent['id']} to user {b.user_id}",
        f"Message pushed to user {b.user_id} via WebSocket",
        f"Notification published for message {sent_back['id']} to user {a.user_id}",
        f"Message pushed to user {a.user_id} via WebSocket",
    ):
        assert line in lines, (line, lines)
    # Exactly one of each per message: no line for the sender.
    assert not any(f"to user {a.user_id}" in line and sent["id"] in line for line in lines)
    assert sum(line == f"Message pushed to user {b.user_id} via WebSocket" for line in lines) == 1
    check_no_secrets(lines, a, b)
    # The /ws access log line is there, with the token masked.
    access = [r.getMessage() for r in caplog.records if r.name == "tornado.access"]
    assert any(re.match(r"101 GET /ws\?token=\*\*\* ", line) for line in access), access
    assert any(re.match(r"401 GET /ws\?token=\*\*\* ", line) for line in access), access
    # A normal session logs no warning or error (the access log's 4xx lines aside).
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name != "tornado.access"] \
        == []


@pytest.mark.gen_test(timeout=30)
async def test_a_token_is_masked_however_the_url_spells_it(api, caplog):
    """Tornado decodes query names (tok%65n= is token=), a value may start with a quote,
    and a client may put its token anywhere in a URL: none of it reaches a log line."""
    caplog.set_level(logging.INFO)
    a, b = await api.register(), await api.register()
    encoded_name = await tornado.websocket.websocket_connect(f"{api.running.ws_url}?tok%65n={a.token}&cursor=0-0")
    api.sockets.append(encoded_name)  # accepted: the server read it as token=
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(f"{api.running.ws_url}?token='{b.token}")
    assert refused.value.code == 401
    assert (await api.call("GET", f"/api/v1/users/{b.token}/x")).status == 404
    assert (await api.call("GET", "/api/v1/messages?%70assword=hunter2-never-logged")).status == 401
    encoded_name.close()
    text = "\n".join(lines_of(caplog))
    check_no_secrets(lines_of(caplog), a, b)
    assert "hunter2" not in text
    access = [r.getMessage() for r in caplog.records if r.name == "tornado.access"]
    assert any(re.match(r"101 GET /ws\?tok%65n=\*\*\*&cursor=0-0 ", line) for line in access), access


@pytest.mark.gen_test(timeout=30)
async def test_per_message_lines_are_at_info(api, caplog):
    caplog.set_level(logging.WARNING)
    a, b = await api.register(), await api.register()
    ws = await api.connect(b)
    await api.send(a, b, "quiet")
    await ws.next()
    assert not any("Message pushed" in line or "Notification published" in line or "connected" in line
                   for line in lines_of(caplog))


@pytest.mark.gen_test(timeout=60)
async def test_courier_serve_writes_the_log_file_without_secrets(process, process_api):
    log_file = process.directory / "logs" / "api_gateway.log"
    process.env["COURIER_LOG_FILE"] = "logs/api_gateway.log"
    await process.start().ready()
    a, b, sent, _ = await a_session(process_api)
    assert await process.terminate() == 0
    lines = log_file.read_text(encoding="utf-8").splitlines()
    text = "\n".join(lines)
    for expected in (
        f"Client {b.user_id} connected",
        f"Notification published for message {sent['id']} to user {b.user_id}",
        f"Message pushed to user {b.user_id} via WebSocket",
    ):
        assert expected in text, (expected, text)
    assert re.search(r"101 GET /ws\?token=\*\*\* ", text), text
    check_no_secrets(lines, a, b)
    # stderr has the same lines, and no secrets either.
    stderr = process.output()
    assert f"Message pushed to user {b.user_id} via WebSocket" in stderr
    check_no_secrets(stderr.splitlines(), a, b)
    assert "Traceback" not in text
