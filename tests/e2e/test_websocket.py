"""The WebSocket: auth before the upgrade, ping/pong, bad frames, token expiry,
shutdown, origins and CORS, several sockets per user, slow readers."""
from __future__ import annotations

import asyncio
import base64
import gc
import os
import time

import pytest

from adapters.security import JwtTokenService
from tests.e2e.support import assert_error, eventually, expired_token, with_settings

ALLOWED = "https://app.example.com"


async def still_serving(api, sender=None, receiver=None):
    """The process survived: a new socket connects, answers a ping and gets a push."""
    sender = sender or await api.register()
    receiver = receiver or await api.register()
    ws = await api.connect(receiver)
    ws.send({"type": "ping"})
    assert await ws.next() == {"type": "pong"}
    r = await api.send(sender, receiver, "still here")
    assert r.status == 201, r
    assert (await ws.next())["id"] == r.body["id"]
    assert (await api.call("GET", "/healthz")).status == 200


@pytest.mark.gen_test(timeout=30)
async def test_a_missing_bad_or_expired_token_is_401_before_the_upgrade(api, courier):
    a = await api.register()
    foreign = JwtTokenService("another-secret-of-at-least-32-bytes!!", 3600).issue(a.user_id).token
    expired = expired_token(courier, a.user_id)
    assert_error(await api.refused(), 401, "invalid_token")
    for token in ("garbage", foreign, expired, a.token + "x"):
        assert_error(await api.refused(token=token), 401, "invalid_token")
        assert_error(await api.refused(headers={"Authorization": f"Bearer {token}"}), 401, "invalid_token")
    assert_error(await api.refused(headers={"Authorization": a.token}), 401)  # no scheme
    # A valid token in the header works as well as in the query.
    ws = await api.connect(headers={"Authorization": f"Bearer {a.token}"})
    ws.send({"type": "ping"})
    assert await ws.next() == {"type": "pong"}


@pytest.mark.gen_test(timeout=30)
async def test_a_malformed_cursor_is_400_before_the_upgrade(api):
    a = await api.register()
    assert_error(await api.refused(account=a, cursor="not-a-cursor"), 400, "invalid_cursor")


@pytest.mark.gen_test(timeout=30)
async def test_json_ping_gets_pong_and_other_frames_are_ignored(api):
    a = await api.register()
    ws = await api.connect(a)
    for _ in range(3):
        ws.send({"type": "ping"})
        assert await ws.next() == {"type": "pong"}
    ws.send({"type": "something-new", "data": [1, 2]})
    ws.send({})
    ws.send({"type": "ping", "id": 7})
    assert await ws.next() == {"type": "pong"}
    assert await ws.nothing(0.1)


@with_settings(ws_max_message_size=1024)
@pytest.mark.gen_test(timeout=30)
async def test_an_oversized_frame_closes_1009_and_the_process_keeps_serving(api):
    a, b = await api.register(), await api.register()
    ws = await api.connect(a)
    ws.send({"type": "ping", "pad": "x" * 900})  # under the limit: fine
    assert await ws.next() == {"type": "pong"}
    ws.send({"type": "ping", "pad": "x" * 2000})
    code, _ = await ws.closed()
    assert code == 1009
    await still_serving(api, b, a)


@pytest.mark.parametrize("frame, binary", [
    ("this is not json", None),
    ("{\"type\": \"ping\"", None),
    ("[1, 2, 3]", None),
    ("\"ping\"", None),
    (b"\x00\x01binary", None),
    (b"{\"type\": \"ping\"}", True),
    (b"\xff\xfe\xfd not utf-8", False),
], ids=["text", "truncated-json", "json-array", "json-string", "binary", "binary-json", "invalid-utf8-text"])
@pytest.mark.gen_test(timeout=30)
async def test_garbage_closes_1008_and_the_process_keeps_serving(api, frame, binary):
    a, b = await api.register(), await api.register()
    ws = await api.connect(a)
    ws.send(frame, binary=binary)
    code, _ = await ws.closed()
    assert code == 1008
    await still_serving(api, b, a)


@with_settings(token_ttl=2)
@pytest.mark.gen_test(timeout=30)
async def test_the_socket_closes_4001_when_the_token_expires(api):
    a = await api.register()
    login = await api.login(a.username, a.password)
    ws = await api.connect(token=login.body["token"])
    started = time.time()
    code, reason = await ws.closed(timeout=5)
    assert (code, reason) == (4001, "token expired")
    assert login.body["expires_at"] - 1 <= time.time() <= login.body["expires_at"] + 3
    assert time.time() - started <= 4
    # The client logs in again and reconnects.
    again = await api.login(a.username, a.password)
    ws = await api.connect(token=again.body["token"])
    ws.send({"type": "ping"})
    assert await ws.next() == {"type": "pong"}


@pytest.mark.gen_test(timeout=30)
async def test_shutdown_closes_sockets_with_1001(api, courier):
    a, b = await api.register(), await api.register()
    ws_a, ws_b = await api.connect(a), await api.connect(b)
    await courier.server.stop()
    courier.server = None
    assert (await ws_a.closed())[0] == 1001
    assert (await ws_b.closed())[0] == 1001


@with_settings(allowed_origins=f"{ALLOWED}, https://second.example.org/")
@pytest.mark.gen_test(timeout=30)
async def test_origins_are_checked_when_allowed_origins_is_set(api):
    a = await api.register()
    assert_error(await api.refused(account=a, headers={"Origin": "https://evil.example.com"}), 403)
    assert_error(await api.refused(account=a, headers={"Origin": "null"}), 403)
    assert_error(await api.refused(account=a, headers={"Origin": ALLOWED + ".evil.example.com"}), 403)
    for origin in (ALLOWED, "https://second.example.org"):
        ws = await api.connect(a, headers={"Origin": origin})
        ws.send({"type": "ping"})
        assert await ws.next() == {"type": "pong"}
    # Not a browser (no Origin): nothing to check.
    ws = await api.connect(a)
    ws.send({"type": "ping"})
    assert await ws.next() == {"type": "pong"}


@with_settings(allowed_origins=ALLOWED)
@pytest.mark.gen_test(timeout=30)
async def test_cors_preflight_answers_the_allowed_origins(api):
    a = await api.register()
    preflight = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    for path in ("/api/v1/messages", "/api/v1/users/login", f"/api/v1/groups/{a.user_id}/members/{a.user_id}"):
        r = await api.call("OPTIONS", path, headers=preflight)
        assert r.status in (200, 204), r
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        methods = {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
        assert {"GET", "POST", "DELETE"} <= methods
        headers = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type"} <= headers
    # The actual request from that origin carries the header too.
    r = await api.call("GET", "/api/v1/users/me", token=a.token, headers={"Origin": ALLOWED})
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == ALLOWED
    # So do error answers, so the web app can read them.
    r = await api.call("GET", "/api/v1/users/me", headers={"Origin": ALLOWED})
    assert_error(r, 401)
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    # Another origin gets no permission.
    r = await api.call("OPTIONS", "/api/v1/messages", headers={**preflight, "Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in r.headers
    assert r.status >= 400
    r = await api.call("GET", "/api/v1/users/me", token=a.token, headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.gen_test(timeout=30)
async def test_any_origin_is_allowed_when_allowed_origins_is_unset(api):
    a = await api.register()
    for origin in ("https://anywhere.example.net", "null"):
        ws = await api.connect(a, headers={"Origin": origin})
        ws.send({"type": "ping"})
        assert await ws.next() == {"type": "pong"}
        r = await api.call("OPTIONS", "/api/v1/messages",
                           headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert r.status in (200, 204) and r.headers["Access-Control-Allow-Origin"] == "*", r


@pytest.mark.gen_test(timeout=30)
async def test_every_socket_of_a_user_gets_the_push_and_none_of_the_senders(api):
    a, b = await api.register(), await api.register()
    b1, b2, b3 = await api.connect(b), await api.connect(b), await api.connect(b)
    a1, a2 = await api.connect(a), await api.connect(a)
    r = await api.send(a, b, "to every device")
    for ws in (b1, b2, b3):
        frame = await ws.next()
        assert frame["id"] == r.body["id"]
    assert await a1.nothing(0.2)
    assert await a2.nothing(0.01)
    # One device going away does not disturb the others.
    b2.close()
    await b2.closed()
    r = await api.send(a, b, "after one closed")
    assert (await b1.next())["id"] == r.body["id"]
    assert (await b3.next())["id"] == r.body["id"]


@with_settings(ws_write_buffer=256 * 1024, max_content_length=100_000)
@pytest.mark.gen_test(timeout=60)
async def test_a_slow_reader_is_dropped_and_resumes_from_its_cursor(api):
    """Frames of ~100 KB to a socket that does not read: once the kernel's buffers and the
    connection's 256 KB are full, the server drops it (1013) instead of buffering more;
    the client resumes from the last cursor it got, as often as it takes."""
    a, b = await api.register(), await api.register()
    ws = await api.connect(b)  # b does not read while a sends
    big = "x" * 99_990
    ids = []
    for i in range(150):
        r = await api.send(a, b, f"{i:03} {big}")
        assert r.status == 201, r
        ids.append(r.body["id"])

    async def read_until_closed(ws):
        frames = []
        while len(received) + len(frames) < len(ids):
            frame = await ws.next(timeout=10)
            if frame is None:
                assert ws.ws.close_code == 1013, (ws.ws.close_code, ws.ws.close_reason)
                break
            frames.append(frame)
        return frames

    received = []
    received += await read_until_closed(ws)
    assert ws.ws.close_code == 1013, "the slow reader was not dropped"
    assert 0 < len(received) < len(ids)
    for _ in range(10):
        if len(received) == len(ids):
            break
        ws = await api.connect(b, cursor=received[-1]["cursor"])
        received += await read_until_closed(ws)
    assert [f["id"] for f in received] == ids


@pytest.mark.gen_test(timeout=30)
async def test_a_websocket_client_that_is_not_a_websocket_gets_an_http_answer(api):
    a = await api.register()
    assert_error(await api.call("GET", f"/ws?token={a.token}"), 400)
    assert_error(await api.call("GET", "/ws", token=a.token), 400)
    assert_error(await api.call("POST", f"/ws?token={a.token}", {"x": 1}), 405)
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    # Tornado's own refusals were plain text: a version other than RFC 6455's, no key.
    old_version = await api.call("GET", f"/ws?token={a.token}", headers={**upgrade, "Sec-WebSocket-Version": "8"})
    assert_error(old_version, 426, "upgrade_required")
    assert old_version.headers["Sec-Websocket-Version"] == "13"
    no_key = {**upgrade, "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": ""}
    assert_error(await api.call("GET", f"/ws?token={a.token}", headers=no_key), 400, "invalid_input")


async def raw_upgrade(port: int, token: str):
    """A WebSocket opened by hand over TCP: (reader, writer) right after the 101."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def client_frame(payload: bytes, masked: bool) -> bytes:
    if not masked:
        return bytes((0x81, len(payload))) + payload
    mask = os.urandom(4)
    return bytes((0x81, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def open_sockets(api) -> float:
    r = await api.call("GET", "/metrics")
    assert r.status == 200, r
    line = next(x for x in r.body.splitlines() if x.startswith("courier_open_sockets "))
    return float(line.split()[1])


@with_settings(ws_ping_interval=0.3, ws_ping_timeout=0.3)
@pytest.mark.gen_test(timeout=30)
async def test_a_peer_that_stops_answering_pings_is_dropped(api, courier):
    """A raw TCP client does the upgrade by hand and then never answers the server's
    ping frames (a dead peer, a half-open connection): the server drops it."""
    a = await api.register()
    reader, writer = await raw_upgrade(courier.settings.port, a.token)
    try:
        assert await open_sockets(api) == 1
        started = time.monotonic()
        data = b""
        while b"\x88" not in data:  # until the server's close frame
            chunk = await asyncio.wait_for(reader.read(4096), 3)
            assert chunk, data
            data += chunk
        assert time.monotonic() - started < 2.5
        assert data[:1] == b"\x89"  # the server pinged first
        close = data[data.index(b"\x88"):]
        assert b"ping timed out" in close, close
    finally:
        writer.close()
        await writer.wait_closed()

    async def gone():
        return await open_sockets(api) == 0

    await eventually(gone)
    # A client that answers pings (Tornado's does) stays connected across many intervals.
    ws = await api.connect(a)
    await asyncio.sleep(1.2)
    ws.send({"type": "ping"})
    assert await ws.next() == {"type": "pong"}
    assert await open_sockets(api) == 1


@pytest.mark.gen_test(timeout=30)
async def test_a_frame_the_client_did_not_mask_closes_1008(api, courier):
    """RFC 6455 section 5.1: a client masks every frame, and a server closes on one that
    is not masked (Tornado took it)."""
    a = await api.register()
    ping = b'{"type":"ping"}'
    reader, writer = await raw_upgrade(courier.settings.port, a.token)
    try:
        writer.write(client_frame(ping, masked=True))  # a masked one is answered
        assert await asyncio.wait_for(reader.readexactly(2 + len(b'{"type":"pong"}')), 5) == \
            b"\x81\x0f" + b'{"type":"pong"}'
        writer.write(client_frame(ping, masked=False))
        close = await asyncio.wait_for(reader.read(64), 5)
        assert close[:1] == b"\x88" and close[2:4] == (1008).to_bytes(2, "big"), close
    finally:
        writer.close()
        await writer.wait_closed()


def masked_frame(first_byte: int, payload: bytes) -> bytes:
    """A client frame with any first byte (FIN, RSV1-3, opcode), masked as a client must."""
    mask = os.urandom(4)
    length = len(payload)
    size = bytes((0x80 | length,)) if length < 126 else bytes((0x80 | 126,)) + length.to_bytes(2, "big")
    return bytes((first_byte,)) + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


PROTOCOL_ERRORS = {
    "reserved data opcode": masked_frame(0x83, b"x"),
    "reserved control opcode": masked_frame(0x8B, b""),
    "RSV1 set (no extension negotiated)": masked_frame(0xC1, b'{"type":"ping"}'),
    "RSV2 set": masked_frame(0xA1, b'{"type":"ping"}'),
    "RSV3 set": masked_frame(0x91, b'{"type":"ping"}'),
    "control frame over 125 bytes": masked_frame(0x89, b"p" * 126),
    "fragmented control frame": masked_frame(0x09, b"part") + masked_frame(0x80, b"rest"),
    "continuation with nothing to continue": masked_frame(0x80, b"x"),
}


# Embedded only: the frame parser is the same in both modes.
@pytest.mark.embedded_only
@pytest.mark.parametrize("frame", PROTOCOL_ERRORS.values(), ids=PROTOCOL_ERRORS.keys())
@pytest.mark.gen_test(timeout=30)
async def test_a_protocol_error_closes_1002_with_a_close_frame(api, courier, frame):
    """RFC 6455 (sections 5.2, 5.4, 5.5, 7.1.7): a frame that breaks the framing rules
    fails the connection with a close frame of 1002 first; Tornado dropped the TCP
    connection without one."""
    a, b = await api.register(), await api.register()
    reader, writer = await raw_upgrade(courier.settings.port, a.token)
    try:
        writer.write(frame)
        data = b""
        while True:  # until the server ends the connection
            try:
                chunk = await asyncio.wait_for(reader.read(4096), 10)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        assert data[:1] == b"\x88" and data[2:4] == (1002).to_bytes(2, "big"), data
    finally:
        writer.close()
    await still_serving(api, b, a)


@pytest.mark.gen_test(timeout=30)
async def test_a_closed_socket_is_freed_without_waiting_for_the_garbage_collector(api):
    """No reference cycle is left behind by a closed socket: the process frees it (its
    handler, request and gateway connection) at once, not at the next collection of the
    oldest generation, which would walk every socket of the process."""
    from entrypoints.ws import SocketHandler

    def handlers() -> int:
        return sum(1 for o in gc.get_objects() if type(o) is SocketHandler)

    a = await api.register()
    gc.collect()
    gc.disable()
    try:
        before = handlers()
        sockets = [await api.connect(a) for _ in range(3)]
        for ws in sockets:
            ws.send({"type": "ping"})
            assert await ws.next() == {"type": "pong"}
        assert handlers() == before + 3
        for ws in sockets:
            ws.close()

        async def all_freed() -> bool:
            return handlers() == before

        await eventually(all_freed, timeout=5)
    finally:
        gc.enable()
