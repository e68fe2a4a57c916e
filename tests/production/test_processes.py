"""`courier serve` and `courier worker` as an operator runs them in production mode:
no start without COURIER_JWT_SECRET, and the operations endpoints (/healthz,
/readyz with its redis and database checks, /metrics in Prometheus' text format)."""
from __future__ import annotations

import subprocess

import pytest

from tests.production.support import production_settings, settings_env
from tests.services.courier_command import COURIER_BIN, free_port

pytestmark = [pytest.mark.redis, pytest.mark.mysql]


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("secret_value", [None, ""], ids=["unset", "empty"])
def test_production_refuses_to_start_without_a_jwt_secret(tmp_path, command, secret_value):
    env = settings_env(production_settings("redis://127.0.0.1:6379/0", "mysql+pymysql://root@127.0.0.1/x", ""),
                       COURIER_PORT=free_port())
    del env["COURIER_JWT_SECRET"]
    if secret_value is not None:
        env["COURIER_JWT_SECRET"] = secret_value
    result = subprocess.run([COURIER_BIN, command], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=30)
    stderr = result.stderr.decode()
    assert result.returncode != 0
    assert "COURIER_JWT_SECRET is required in production mode" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert not (tmp_path / "data").exists()  # no embedded secret file was made instead


@pytest.mark.gen_test(timeout=60)
async def test_healthz_readyz_and_metrics_of_a_production_gateway(redis_url, mysql_url, secret, commands, api):
    gateway = commands("serve", production_settings(redis_url, mysql_url, secret)).start()
    await gateway.ready()
    client = api(gateway)
    health = await client.call("GET", "/healthz")
    assert health.status == 200 and health.body == {"status": "ok"}, health
    ready = await client.call("GET", "/readyz")
    assert ready.status == 200, ready
    assert ready.body == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
    a, b = await client.register(), await client.register()
    ws = await client.connect(b)
    sent = await client.send(a, b, "counted")
    assert sent.status == 201
    assert (await ws.next())["id"] == sent.body["id"]
    metrics = await client.call("GET", "/metrics")
    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain; version="), metrics.headers  # the text format
    lines = metrics.body.splitlines()
    assert "# TYPE courier_open_sockets gauge" in lines
    assert "courier_open_sockets 1.0" in lines
    assert "courier_messages_accepted_total 1.0" in lines
    assert "courier_messages_pushed 1.0" in lines
    assert "Courier (production mode) listening" in gateway.output()
