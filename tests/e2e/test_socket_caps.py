"""One user, or one client address, cannot take every socket: past
COURIER_WS_MAX_PER_USER / COURIER_WS_MAX_PER_ADDRESS open sockets the upgrade answers
429 (the contract's JSON body, Retry-After) before it is accepted; a socket that
closes frees its place. Both modes (production counts a user's sockets in Redis, over
every gateway: tests/production/test_socket_caps_gateways.py)."""
from __future__ import annotations

import asyncio

import pytest
from dependency_injector import providers

from adapters.memory.connection_counter import MemoryConnectionCounter
from entrypoints.container import Container
from entrypoints.server import CourierServer
from tests.e2e.client import Api
from tests.e2e.conftest import embedded_settings
from tests.e2e.support import assert_error, connect_once_admitted, eventually, with_settings
from tests.services.urls import LoopbackUrls


@with_settings(ws_max_per_user=3)
@pytest.mark.gen_test(timeout=30)
async def test_a_user_past_the_cap_is_refused_429_until_a_socket_closes(api):
    alice, bob = await api.register(), await api.register()
    sockets = [await api.connect(alice) for _ in range(3)]
    refused = await api.refused(account=alice)
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    # another user is not affected, and the open ones still work
    ws_bob = await api.connect(bob)
    sent = await api.send(bob, alice, "to every device")
    for ws in sockets:
        assert (await ws.next())["id"] == sent.body["id"]
    sockets[0].close()
    assert await connect_once_admitted(api, alice)
    assert await ws_bob.nothing(0.1)


@with_settings(ws_max_per_address=3, trusted_proxies="127.0.0.1")
@pytest.mark.gen_test(timeout=30)
async def test_an_address_past_the_cap_is_refused_429(api):
    users = [await api.register() for _ in range(4)]
    here = {"X-Forwarded-For": "198.51.100.7"}
    for account in users[:3]:
        await api.connect(account, headers=here)
    assert_error(await api.refused(account=users[3], headers=here), 429, "rate_limited")
    assert await api.connect(users[3], headers={"X-Forwarded-For": "198.51.100.8"})


@with_settings(ws_max_per_user=0, ws_max_per_address=0)
@pytest.mark.gen_test(timeout=60)
async def test_zero_turns_the_caps_off(api):
    alice = await api.register()
    sockets = [await api.connect(alice) for _ in range(30)]
    assert len(sockets) == 30


@with_settings(ws_max_per_user=2)
@pytest.mark.gen_test(timeout=30)
async def test_refused_upgrades_and_closed_sockets_take_no_place(api):
    alice = await api.register()
    for _ in range(3):  # refused before being counted
        assert_error(await api.refused(account=alice, cursor="not-a-cursor"), 400)
    for _ in range(10):  # each closes before the next opens: the count goes back each time
        ws = await api.connect(alice)
        ws.close()
        await ws.closed()

        async def both_fit():
            try:
                first = await api.connect(alice)
            except Exception:
                return False
            first.close()
            await first.closed()
            return True

        assert await eventually(both_fit)
    await api.connect(alice)
    await api.connect(alice)
    assert_error(await api.refused(account=alice), 429, "rate_limited")


class _LateRelease(MemoryConnectionCounter):
    """Gives a place back a while after it is asked to, as a count in Redis may."""

    def __init__(self, limit: int):
        super().__init__(limit)
        self.released = 0

    async def release(self, key: str) -> None:
        await asyncio.sleep(0.5)
        await super().release(key)
        self.released += 1


class _Served(LoopbackUrls):
    def __init__(self, server: CourierServer):
        self.server = server

    @property
    def port(self) -> int | None:
        return self.server.port


@pytest.mark.gen_test(timeout=30)
async def test_a_stop_waits_for_its_closed_sockets_to_give_their_places_back(tmp_path):
    """A stopping server closes its sockets, which give their places back in tasks of their
    own; it waits for them before it closes the container. (In production a release still
    running then reconnected the closed Redis client, whose connections no one closed: their
    ResourceWarnings, when collected, failed unrelated tests on the cluster.)"""
    settings = embedded_settings(tmp_path)
    container = Container(settings=settings)
    counter = _LateRelease(settings.ws_max_per_address)
    container.sockets_per_address.override(providers.Object(counter))
    server = CourierServer(settings, container)
    await server.start()
    api = Api(_Served(server))
    try:
        alice = await api.register()
        for _ in range(2):
            await api.connect(alice)
        assert counter.open_for("127.0.0.1") == 2
    finally:
        await server.stop()
        api.close()
    assert counter.released == 2 and counter.open_for("127.0.0.1") == 0
