"""Failed logins cannot lock anyone out, and per-address rules see the client's real
address: behind a trusted proxy, from X-Forwarded-For or Forwarded; otherwise from
the socket (the headers are ignored). Both modes."""
from __future__ import annotations

import pytest

from tests.e2e.support import assert_error, with_settings

PASSWORD = "password-123"


async def login_from(api, username: str, password: str, address: str | None, header: str = "X-Forwarded-For"):
    headers = {} if address is None else {header: address}
    return await api.call("POST", "/api/v1/users/login", {"username": username, "password": password},
                          headers=headers)


@with_settings(login_failures=3, trusted_proxies="127.0.0.1")
@pytest.mark.gen_test(timeout=60)
async def test_failures_from_other_addresses_never_stop_the_right_password(api):
    await api.register("victim", PASSWORD)
    # An attacker fails ten times for the victim's name, from ten addresses of theirs...
    for index in range(10):
        r = await login_from(api, "victim", "wrong-password", f"198.51.100.{index}")
        assert_error(r, 401, "invalid_credentials")
    # ...and from one of them keeps failing until it is refused there.
    for _ in range(3):
        await login_from(api, "victim", "wrong-password", "198.51.100.99")
    assert_error(await login_from(api, "victim", "wrong-password", "198.51.100.99"), 429, "rate_limited")
    # The victim, from an address that has not failed, gets in (slowed down, not refused).
    r = await login_from(api, "victim", PASSWORD, "203.0.113.7")
    assert r.status == 200 and r.body["username"] == "victim", r
    # The address that failed is refused, even with the right password.
    assert_error(await login_from(api, "victim", PASSWORD, "198.51.100.99"), 429, "rate_limited")


@with_settings(login_failures=3, trusted_proxies="127.0.0.1")
@pytest.mark.gen_test(timeout=30)
async def test_the_rightmost_untrusted_address_is_the_clients(api):
    await api.register("walter", PASSWORD)
    # The client wrote "10.9.9.9" itself; the trusted proxy (127.0.0.1) appended the
    # address it saw: 192.0.2.50. The client cannot escape its throttle by changing
    # what it writes on the left.
    for spoof in ("10.9.9.1", "10.9.9.2", "10.9.9.3"):
        await login_from(api, "walter", "wrong-password", f"{spoof}, 192.0.2.50")
    assert_error(await login_from(api, "walter", PASSWORD, "10.9.9.4, 192.0.2.50"), 429, "rate_limited")
    # RFC 7239's Forwarded says the same thing
    r = await login_from(api, "walter", PASSWORD, 'for="10.9.9.4", for=192.0.2.50', header="Forwarded")
    assert_error(r, 429, "rate_limited")
    r = await login_from(api, "walter", PASSWORD, 'for="[2001:db8::1]:4711"', header="Forwarded")
    assert r.status == 200, r


@with_settings(login_failures=3)
@pytest.mark.gen_test(timeout=30)
async def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(api):
    await api.register("xavier", PASSWORD)
    for index in range(3):
        await login_from(api, "xavier", "wrong-password", f"198.51.100.{index}")
    # Every one of them came from 127.0.0.1, whatever it claimed.
    assert_error(await login_from(api, "xavier", PASSWORD, "203.0.113.1"), 429, "rate_limited")
