"""COURIER_REUSE_PORT=1: several `courier serve` processes on ONE port (SO_REUSEPORT);
the kernel spreads the connections among them, and every socket gets every push
whichever process accepted its send. Embedded mode refuses the setting."""
from __future__ import annotations

import asyncio

import pytest

from entrypoints.settings import Settings, SettingsError
from tests.production.support import production_settings

pytestmark = [pytest.mark.redis, pytest.mark.mysql]


def test_embedded_mode_refuses_reuse_port():
    with pytest.raises(SettingsError, match="production"):
        Settings(reuse_port=1).check()
    with pytest.raises(SettingsError):
        Settings(reuse_port=2, redis_url="redis://127.0.0.1:6379/0").check()


@pytest.mark.gen_test(timeout=60)
async def test_two_gateways_share_one_port(commands, api, redis_url, mysql_url, secret):
    settings = production_settings(redis_url, mysql_url, secret)
    one = commands("serve", settings, name="gateway-1", COURIER_REUSE_PORT=1)
    two = commands("serve", settings, name="gateway-2", COURIER_REUSE_PORT=1)
    two.port = one.port
    two.env["COURIER_PORT"] = str(one.port)
    worker = commands("worker", settings)
    one.start()
    await one.ready()
    two.start()
    worker.start()
    await asyncio.gather(two.ready(), worker.ready())
    # /healthz on the shared port may be answered by the first gateway while the second
    # is still starting: wait until the second says it listens.
    for _ in range(400):
        if "listening on" in two.output():
            break
        await asyncio.sleep(0.05)

    client = api(one)  # the port of both
    a = await client.register()
    b = await client.register()
    sockets = [await client.connect(b) for _ in range(16)]
    # 16 connections, each placed by the kernel on either process: both got some
    # (all on one has a chance of 2 in 65,536).
    for gateway in (one, two):
        assert f"Client {b.user_id} connected" in gateway.output(), gateway.output()

    for i in range(5):
        sent = await client.send(a, b, f"m{i}")
        assert sent.status == 201, sent
        for ws in sockets:
            frame = await ws.next()
            assert frame["id"] == sent.body["id"]
    for ws in sockets:
        assert await ws.nothing(0.1)
