"""COURIER_OPS_PORT: /readyz and /metrics on a port of their own (on COURIER_OPS_HOST,
127.0.0.1 by default), and a 404 - the contract's JSON error - for them on the public
port, which keeps /healthz. Unset, all three stay on the public port (the other e2e
tests read /metrics there)."""
from __future__ import annotations

import socket

import pytest
import tornado.httpclient

from entrypoints.settings import PRODUCTION, Settings, SettingsError
from tests.e2e.support import assert_error
from tests.services.courier_command import free_port


def free_port_on(host: str) -> int:
    """A port free on `host` and on 127.0.0.1 too: the test below says nothing listens on
    127.0.0.1 at the ops port, which must not be another server of the run's (a node of the
    session's Redis Cluster, or its bus port, listens on 127.0.0.1 all along: one answered
    a CI run's probe with a reset)."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if host == "127.0.0.1" or _free_on_loopback(port):
            return port


def _free_on_loopback(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def settings_overrides(request) -> dict:
    host = getattr(request, "param", None)
    return {"ops_port": free_port_on(host or "127.0.0.1"), **({"ops_host": host} if host else {})}


async def fetch(url: str, headers: dict | None = None) -> tornado.httpclient.HTTPResponse:
    client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    try:
        return await client.fetch(url, raise_error=False, headers=headers, request_timeout=10)
    finally:
        client.close()


@pytest.mark.gen_test(timeout=30)
async def test_readyz_and_metrics_move_to_the_ops_port(api, courier):
    ops = f"http://127.0.0.1:{courier.settings.ops_port}"
    for path in ("/readyz", "/metrics"):
        assert_error(await api.call("GET", path), 404, "not_found")
    assert (await api.call("GET", "/healthz")).status == 200

    ready = await fetch(ops + "/readyz")
    assert ready.code == 200 and b'"status":"ready"' in ready.body, ready
    if courier.mode == PRODUCTION:
        assert b'"redis":"ok"' in ready.body
    a, b = await api.register(), await api.register()
    assert (await api.send(a, b, "counted")).status == 201
    metrics = await fetch(ops + "/metrics", headers={"Origin": "https://elsewhere.example"})
    assert metrics.code == 200 and metrics.headers["Content-Type"].startswith("text/plain"), metrics
    assert b"courier_messages_accepted_total 1.0" in metrics.body
    assert "Access-Control-Allow-Origin" not in metrics.headers  # no other site's page may read it
    assert (await fetch(ops + "/healthz")).code == 200
    # The ops port serves nothing else.
    for path in ("/api/v1/users/me", "/", "/static/app.js"):
        other = await fetch(ops + path)
        assert other.code == 404 and other.headers["Content-Type"].startswith("application/json"), (path, other)


@pytest.mark.parametrize("settings_overrides", ["127.0.0.2"], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_the_ops_port_listens_on_ops_host_only(api, courier):
    port = courier.settings.ops_port
    assert (await fetch(f"http://127.0.0.2:{port}/metrics")).code == 200
    with pytest.raises(ConnectionRefusedError):  # nothing listens on 127.0.0.1
        await fetch(f"http://127.0.0.1:{port}/metrics")
    assert_error(await api.call("GET", "/metrics"), 404)


def test_the_ops_port_is_not_the_public_port():
    port = free_port()
    with pytest.raises(SettingsError):
        Settings(port=port, ops_port=port).check()
    with pytest.raises(SettingsError):
        Settings(ops_port=70000).check()
    Settings(port=8080, ops_port=9100).check()
