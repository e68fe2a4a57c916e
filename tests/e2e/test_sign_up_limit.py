"""Sign-ups per client address are limited (COURIER_REGISTRATIONS an hour), before
anything is hashed; 0 turns the limit off. Both modes."""
from __future__ import annotations

import pytest

from tests.e2e.support import assert_error, with_settings


async def sign_up(api, username: str, address: str | None = None):
    headers = {"X-Forwarded-For": address} if address else {}
    return await api.call("POST", "/api/v1/users/register", {"username": username, "password": "password-123"},
                          headers=headers)


@with_settings(registrations=3, trusted_proxies="127.0.0.1")
@pytest.mark.gen_test(timeout=30)
async def test_sign_ups_past_the_limit_answer_429_with_retry_after(api):
    for name in ("sam1", "sam2", "sam3"):
        assert (await sign_up(api, name, "198.51.100.1")).status == 201
    r = await sign_up(api, "sam4", "198.51.100.1")
    assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 3600, r.headers
    assert_error(await api.login("sam4", "password-123"), 401)  # nothing was created
    assert (await sign_up(api, "sam4", "198.51.100.2")).status == 201  # another address


@with_settings(registrations=30)
@pytest.mark.gen_test(timeout=60)
async def test_the_default_allows_thirty_an_hour_from_one_address(api):
    for index in range(30):
        assert (await sign_up(api, f"batch{index}")).status == 201
    assert_error(await sign_up(api, "batch30"), 429, "rate_limited")
