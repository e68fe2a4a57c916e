"""Production: what issue 13 asks to hold across gateways - a user's socket cap counts
the sockets on every gateway (Redis), and a token revoked through one gateway is
refused by the others and its sockets there close with 4001 (announced on pub/sub).
Two gateways in this process, on the claimed Redis database and the run's MariaDB."""
from __future__ import annotations

import pytest

from tests.e2e.support import assert_error, connect_once_admitted, eventually
from tests.production.support import TOPOLOGIES, across_topologies, production_settings

pytestmark = [pytest.mark.redis, pytest.mark.mysql]


@pytest.fixture(params=TOPOLOGIES)
def redis_url(request, redis_url):
    """One Redis, or the local cluster with COURIER_TEST_CLUSTER=1."""
    return across_topologies(request, redis_url)


async def two_gateways(gateways, redis_url, mysql_url, secret, **overrides):
    one = await gateways(production_settings(redis_url, mysql_url, secret, **overrides)).start()
    two = await gateways(production_settings(redis_url, mysql_url, secret, **overrides)).start()
    return one, two


@pytest.mark.gen_test(timeout=60)
async def test_the_socket_cap_of_a_user_counts_every_gateway(gateways, api, redis_url, mysql_url, secret):
    one, two = await two_gateways(gateways, redis_url, mysql_url, secret, ws_max_per_user=3)
    api1, api2 = api(one), api(two)
    alice = await api1.register()
    on_one = [await api1.connect(alice), await api1.connect(alice)]
    await api2.connect(alice)
    assert_error(await api2.refused(account=alice), 429, "rate_limited")
    assert_error(await api1.refused(account=alice), 429, "rate_limited")
    on_one[0].close()
    assert await connect_once_admitted(api2, alice)
    assert_error(await api1.refused(account=alice), 429, "rate_limited")


@pytest.mark.gen_test(timeout=60)
async def test_a_stopped_gateway_gives_its_users_sockets_back(gateways, api, redis_url, mysql_url, secret):
    one, two = await two_gateways(gateways, redis_url, mysql_url, secret, ws_max_per_user=2)
    api1, api2 = api(one), api(two)
    alice = await api1.register()
    await api1.connect(alice)
    await api1.connect(alice)
    assert_error(await api2.refused(account=alice), 429, "rate_limited")
    await one.stop()
    await api2.connect(alice)
    await api2.connect(alice)


@pytest.mark.gen_test(timeout=60)
async def test_a_logout_through_one_gateway_ends_the_session_on_the_other(gateways, api, redis_url, mysql_url,
                                                                         secret):
    one, two = await two_gateways(gateways, redis_url, mysql_url, secret)
    api1, api2 = api(one), api(two)
    alice = await api1.register()
    ws_two = await api2.connect(alice)
    assert (await api2.call("GET", "/api/v1/users/me", token=alice.token)).status == 200  # remembered there
    assert (await api1.call("POST", "/api/v1/users/logout", token=alice.token)).status == 204
    code, _ = await ws_two.closed(timeout=10)
    assert code == 4001

    async def refused_on_two():
        return (await api2.call("GET", "/api/v1/users/me", token=alice.token)).status == 401

    assert await eventually(refused_on_two, timeout=2)


@pytest.mark.gen_test(timeout=60)
async def test_logout_all_through_one_gateway_ends_every_session_on_both(gateways, api, redis_url, mysql_url,
                                                                        secret):
    one, two = await two_gateways(gateways, redis_url, mysql_url, secret)
    api1, api2 = api(one), api(two)
    alice = await api1.register()
    other = (await api2.login(alice.username, alice.password)).body["token"]
    sockets = [await api1.connect(alice), await api2.connect(alice), await api2.connect(token=other)]
    assert (await api2.call("POST", "/api/v1/users/logout-all", token=other)).status == 204
    for ws in sockets:
        code, _ = await ws.closed(timeout=10)
        assert code == 4001
    for client in (api1, api2):
        for token in (alice.token, other):
            async def refused(client=client, token=token):
                return (await client.call("GET", "/api/v1/users/me", token=token)).status == 401

            assert await eventually(refused, timeout=2)
