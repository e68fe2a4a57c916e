"""Accounts over HTTP: register, log in, who am I, find a user, the failed-login throttle."""
from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import pytest

from tests.e2e.support import assert_error, expired_token, is_uuid, with_settings

REGISTER, LOGIN = "/api/v1/users/register", "/api/v1/users/login"
PASSWORD = "correct horse battery"


@pytest.mark.gen_test(timeout=30)
async def test_register_answers_201_with_the_user(api):
    r = await api.call("POST", REGISTER, {"username": "alice", "password": PASSWORD})
    assert r.status == 201, r
    assert set(r.body) == {"user_id", "username"}
    assert is_uuid(r.body["user_id"])
    assert r.body["username"] == "alice"


@pytest.mark.gen_test(timeout=30)
async def test_a_taken_username_answers_409_regardless_of_case(api):
    first = await api.call("POST", REGISTER, {"username": "Alice.B-c_1", "password": PASSWORD})
    assert first.status == 201, first
    for name in ("Alice.B-c_1", "alice.b-c_1", "ALICE.B-C_1"):
        r = await api.call("POST", REGISTER, {"username": name, "password": "another-password"})
        assert_error(r, 409, "username_taken")
    # The name keeps its spelling, and the account is still the first one.
    login = await api.login("alice.b-c_1", PASSWORD)
    assert login.status == 200, login
    assert login.body["user_id"] == first.body["user_id"]
    assert login.body["username"] == "Alice.B-c_1"


@pytest.mark.gen_test(timeout=30)
async def test_username_rules(api):
    for name in ("abc", "a" * 32, "A.b-c_9", "Zoë_ünï"):
        r = await api.call("POST", REGISTER, {"username": name, "password": PASSWORD})
        assert r.status == 201, (name, r)
        assert r.body["username"] == name
    for name in ("ab", "a" * 33, "", "with space", "slash/name", "semi;colon", "at@sign", "tab\tname",
                 "new\nline", 12345, None, ["abc"], {"x": 1}):
        r = await api.call("POST", REGISTER, {"username": name, "password": PASSWORD})
        assert_error(r, 400)
        assert r.body["error"]["code"] == "invalid_username", (name, r)
    r = await api.call("POST", REGISTER, {"password": PASSWORD})
    assert_error(r, 400, "invalid_username")


MATH_BOLD_ALICE = "\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e"


@pytest.mark.gen_test(timeout=30)
async def test_a_name_that_looks_like_a_taken_one_answers_409(api):
    """Fullwidth, mathematical and mixed compatibility forms are the name they look like."""
    alice = await api.register("alice", PASSWORD)
    for name in ("ａｌｉｃｅ", MATH_BOLD_ALICE, "ＡＬＩＣＥ", "Ａlice", "ａlice"):
        r = await api.call("POST", REGISTER, {"username": name, "password": "another-password"})
        assert_error(r, 409, "username_taken")
    # Typed with those letters (a fullwidth input mode), the name still logs alice in, and finds her.
    for spelling in ("ＡＬＩＣＥ", MATH_BOLD_ALICE):
        login = await api.login(spelling, PASSWORD)
        assert login.status == 200 and (login.body["user_id"], login.body["username"]) == (alice.user_id, "alice")
        found = await api.call("GET", "/api/v1/users?username=" + quote(spelling), token=alice.token)
        assert found.status == 200 and found.body == {"user_id": alice.user_id, "username": "alice"}, found


@pytest.mark.gen_test(timeout=30)
async def test_a_name_that_mixes_scripts_answers_400_saying_why(api):
    await api.register("alice", PASSWORD)
    for name, scripts in (("\u0430lice", "Cyrillic and Latin"), ("alphaα", "Latin and Greek"),
                          ("pаypal", "Latin and Cyrillic"), ("김たろう", "Hangul and Hiragana")):
        r = await api.call("POST", REGISTER, {"username": name, "password": PASSWORD})
        assert_error(r, 400, "invalid_username")
        assert f"mix scripts ({scripts})" in r.body["error"]["message"], r
    # One script, Japanese (Han + kana, with or without Latin), digits and punctuation are fine.
    for name in ("москва", "山田たろう", "tanaka田中", "ヤマダ_タロー", "bob_2.0-x"):
        r = await api.call("POST", REGISTER, {"username": name, "password": PASSWORD})
        assert r.status == 201 and r.body["username"] == name, (name, r)
    assert_error(await api.login("\u0430lice", PASSWORD), 401, "invalid_credentials")  # nobody's name


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_registrations_of_lookalikes_make_one_account(api):
    replies = await asyncio.gather(*(
        api.call("POST", REGISTER, {"username": name, "password": PASSWORD})
        for name in ("racer", "ｒａｃｅｒ", "\U0001d42b\U0001d41a\U0001d41c\U0001d41e\U0001d42b", "ＲＡＣＥＲ", "Racer")
    ))
    assert sorted(r.status for r in replies) == [201, 409, 409, 409, 409], replies
    for r in replies:
        if r.status == 409:
            assert_error(r, 409, "username_taken")


@pytest.mark.gen_test(timeout=30)
async def test_password_rules(api):
    for i, password in enumerate(("12345678", "p" * 1024, "   spaces   ", "пароль-密码-🔑")):
        r = await api.call("POST", REGISTER, {"username": f"user{i}", "password": password})
        assert r.status == 201, r
        login = await api.login(f"user{i}", password)
        assert login.status == 200, login
    for i, password in enumerate(("1234567", "p" * 1025, "", 12345678, None, ["password-123"])):
        r = await api.call("POST", REGISTER, {"username": f"bad{i}", "password": password})
        assert_error(r, 400, "invalid_password")
    # A refused registration leaves no account behind.
    assert (await api.call("POST", REGISTER, {"username": "bad0", "password": PASSWORD})).status == 201


@pytest.mark.gen_test(timeout=30)
async def test_login_answers_a_token(api):
    user = await api.call("POST", REGISTER, {"username": "bob", "password": PASSWORD})
    before = int(time.time())
    r = await api.login("bob", PASSWORD)
    assert r.status == 200, r
    assert set(r.body) == {"token", "user_id", "username", "expires_at"}
    assert r.body["user_id"] == user.body["user_id"]
    assert r.body["username"] == "bob"
    assert isinstance(r.body["token"], str) and r.body["token"]
    assert isinstance(r.body["expires_at"], int)
    assert before + 86400 <= r.body["expires_at"] <= int(time.time()) + 86400
    me = await api.call("GET", "/api/v1/users/me", token=r.body["token"])
    assert me.status == 200, me
    assert me.body == {"user_id": user.body["user_id"], "username": "bob"}


@pytest.mark.gen_test(timeout=30)
async def test_unknown_user_and_wrong_password_get_the_same_401(api):
    await api.register("carol", PASSWORD)
    wrong = await api.login("carol", PASSWORD + "x")
    unknown = await api.login("nobody-here", PASSWORD)
    assert_error(wrong, 401)
    assert_error(unknown, 401)
    assert wrong.body == unknown.body
    assert {k: v for k, v in wrong.headers.items() if k.lower() in ("content-type", "www-authenticate")} == {
        k: v for k, v in unknown.headers.items() if k.lower() in ("content-type", "www-authenticate")}


@pytest.mark.gen_test(timeout=30)
async def test_login_with_malformed_input_is_400(api):
    for body in ({"username": "x"}, {"password": PASSWORD}, {"username": 1, "password": PASSWORD},
                 {"username": "carol", "password": None}):
        assert_error(await api.call("POST", LOGIN, body), 400)
    assert_error(await api.call("POST", LOGIN, raw=b"{not json"), 400)


@pytest.mark.gen_test(timeout=30)
async def test_users_me_needs_a_valid_token(api):
    assert_error(await api.call("GET", "/api/v1/users/me"), 401, "invalid_token")
    assert_error(await api.call("GET", "/api/v1/users/me", token="not.a.token"), 401, "invalid_token")
    account = await api.register()
    r = await api.call("GET", "/api/v1/users/me", headers={"Authorization": "Basic " + account.token})
    assert_error(r, 401, "invalid_token")
    tampered = account.token[:-2] + ("AA" if not account.token.endswith("AA") else "BB")
    assert_error(await api.call("GET", "/api/v1/users/me", token=tampered), 401, "invalid_token")


@pytest.mark.gen_test(timeout=30)
async def test_an_expired_token_is_401_everywhere(api, courier):
    a = await api.register()
    token = expired_token(courier, a.user_id)
    for method, path in (("GET", "/api/v1/users/me"), ("GET", "/api/v1/messages"), ("GET", "/api/v1/groups")):
        assert_error(await api.call(method, path, token=token), 401, "invalid_token")
    assert_error(await api.call("POST", "/api/v1/messages", {"to_user_id": a.user_id, "content": "x"}, token), 401)


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_registrations_of_one_name_make_one_account(api):
    replies = await asyncio.gather(*(
        api.call("POST", REGISTER, {"username": name, "password": PASSWORD})
        for name in ("Racer", "racer", "RACER", "rAcEr", "Racer", "racer")
    ))
    assert sorted(r.status for r in replies) == [201, 409, 409, 409, 409, 409], replies
    for r in replies:
        if r.status == 409:
            assert_error(r, 409, "username_taken")
    winner = next(r for r in replies if r.status == 201)
    login = await api.login("racer", PASSWORD)
    assert login.status == 200 and login.body["user_id"] == winner.body["user_id"]


@pytest.mark.gen_test(timeout=30)
async def test_find_a_user_by_username(api):
    me = await api.register()
    dave = await api.register("Dave_99")
    r = await api.call("GET", "/api/v1/users?username=Dave_99", token=me.token)
    assert r.status == 200, r
    assert r.body == {"user_id": dave.user_id, "username": "Dave_99"}
    r = await api.call("GET", "/api/v1/users?username=dave_99", token=me.token)
    assert r.status == 200 and r.body == {"user_id": dave.user_id, "username": "Dave_99"}, r
    assert_error(await api.call("GET", "/api/v1/users?username=nobody", token=me.token), 404, "user_not_found")
    assert_error(await api.call("GET", "/api/v1/users?username=" + "x" * 500, token=me.token), 404)
    assert_error(await api.call("GET", "/api/v1/users?username=Dave_99"), 401)
    assert_error(await api.call("GET", "/api/v1/users", token=me.token), 400)


@with_settings(login_failures=3)
@pytest.mark.gen_test(timeout=30)
async def test_failed_logins_are_throttled_per_username_and_address(api):
    await api.register("erin", PASSWORD)
    for _ in range(3):
        assert_error(await api.login("erin", "wrong-password"), 401, "invalid_credentials")
    r = await api.login("erin", "wrong-password")
    assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 60, r.headers
    # Past the limit even the right password waits, from this address: a name cannot be
    # guessed at speed from one place.
    r = await api.login("ERIN", PASSWORD)
    assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # Another spelling (MySQL's comparison ignores trailing spaces: "erin " found erin
    # there, with a throttle of its own) is nobody's name: 401, and no way around the 429.
    assert_error(await api.login("erin ", PASSWORD), 401, "invalid_credentials")


@with_settings(login_failures=3, login_address_failures=3)
@pytest.mark.gen_test(timeout=30)
async def test_failed_logins_are_throttled_per_address_whatever_the_username(api):
    await api.register("frank", PASSWORD)
    for name in ("ghost1", "ghost2", "ghost3"):
        assert_error(await api.login(name, PASSWORD), 401, "invalid_credentials")
    r = await api.login("ghost4", PASSWORD)
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    assert_error(await api.login("frank", PASSWORD), 429, "rate_limited")


@with_settings(login_failures=3)
@pytest.mark.gen_test(timeout=30)
async def test_successful_logins_are_never_throttled(api):
    await api.register("grace", PASSWORD)
    for _ in range(12):
        r = await api.login("grace", PASSWORD)
        assert r.status == 200, r
    # And they do not count as failures: three wrong ones still answer 401.
    for _ in range(3):
        assert_error(await api.login("grace", "nope-nope-nope"), 401, "invalid_credentials")
