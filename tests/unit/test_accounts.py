"""Register, log in (with its throttles), authenticate, look users up."""
from __future__ import annotations

import jwt
import pytest

from adapters.security import JwtTokenService
from domain import errors
from tests.unit.courier import PASSWORD, SECRET, TOKEN_TTL

ADDRESS = "192.0.2.1"
OTHER_ADDRESS = "192.0.2.2"


# register -----------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_register_stores_a_hashed_password(courier):
    user = await courier.register("Alice", PASSWORD, ADDRESS)
    assert user.username == "Alice"
    stored = courier.users.by_id[user.id]
    assert stored.username == "Alice"
    assert stored.password_hash == "hashed:v1:" + PASSWORD
    assert user.public() == {"user_id": user.id, "username": "Alice"}


@pytest.mark.gen_test
async def test_register_gives_every_user_a_new_uuid(courier):
    a, b = await courier.users_named("alice", "bob")
    assert a.id != b.id
    assert len(a.id) == 36


@pytest.mark.gen_test
@pytest.mark.parametrize("taken_as", ["alice", "ALICE", "Alice", "aLiCe"])
async def test_a_username_is_taken_regardless_of_case(courier, taken_as):
    await courier.register("Alice", PASSWORD, ADDRESS)
    with pytest.raises(errors.UsernameTaken):
        await courier.register(taken_as, PASSWORD, ADDRESS)
    assert len(courier.users.by_id) == 1


@pytest.mark.gen_test
async def test_register_validates_before_storing(courier):
    with pytest.raises(errors.InvalidUsername):
        await courier.register("ab", PASSWORD, ADDRESS)
    with pytest.raises(errors.InvalidPassword):
        await courier.register("alice", "short", ADDRESS)
    with pytest.raises(errors.InvalidPassword):
        await courier.register("alice", "x" * 1025, ADDRESS)
    assert courier.users.by_id == {}
    assert await courier.register("a" * 32, "x" * 1024, ADDRESS)


FULLWIDTH, MATH_BOLD, CYRILLIC_A = "ａｌｉｃｅ", "\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e", "\u0430lice"


@pytest.mark.gen_test
@pytest.mark.parametrize("lookalike", [FULLWIDTH, MATH_BOLD, "ＡＬＩＣＥ"])
async def test_a_name_that_looks_like_a_taken_one_is_taken(courier, lookalike):
    await courier.register("alice", PASSWORD, ADDRESS)
    with pytest.raises(errors.UsernameTaken):
        await courier.register(lookalike, PASSWORD, ADDRESS)
    assert len(courier.users.by_id) == 1


@pytest.mark.gen_test
async def test_the_first_of_two_lookalikes_keeps_its_spelling(courier):
    first = await courier.register(MATH_BOLD, PASSWORD, ADDRESS)
    with pytest.raises(errors.UsernameTaken):
        await courier.register("alice", PASSWORD, ADDRESS)
    assert (await courier.get_user.by_username("Alice")).username == MATH_BOLD
    assert (await courier.login("alice", PASSWORD, ADDRESS)).user.id == first.id


@pytest.mark.gen_test
async def test_a_name_that_mixes_scripts_is_invalid_not_taken(courier):
    await courier.register("alice", PASSWORD, ADDRESS)
    with pytest.raises(errors.InvalidUsername, match="mix scripts"):
        await courier.register(CYRILLIC_A, PASSWORD, ADDRESS)
    assert len(courier.users.by_id) == 1


# login ----------------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_login_issues_a_token_for_the_user(courier):
    alice = await courier.user("alice")
    logged_in = await courier.login("alice", PASSWORD, ADDRESS)
    assert logged_in.user.id == alice.id
    assert logged_in.token.expires_at == int(courier.clock.now()) + TOKEN_TTL
    assert (await courier.authenticate(logged_in.token.token)).user_id == alice.id


@pytest.mark.gen_test
async def test_login_ignores_the_case_of_the_username(courier):
    alice = await courier.user("Alice")
    assert (await courier.login("aLICE", PASSWORD, ADDRESS)).user.id == alice.id


@pytest.mark.gen_test
async def test_unknown_user_and_wrong_password_get_the_same_answer(courier):
    await courier.user("alice")
    with pytest.raises(errors.InvalidCredentials) as unknown:
        await courier.login("nobody", PASSWORD, ADDRESS)
    with pytest.raises(errors.InvalidCredentials) as wrong:
        await courier.login("alice", "wrong password", ADDRESS)
    assert type(unknown.value) is type(wrong.value)
    assert unknown.value.message == wrong.value.message
    assert unknown.value.code == wrong.value.code == "invalid_credentials"


@pytest.mark.gen_test
async def test_an_unknown_user_still_costs_a_password_verification(courier):
    # otherwise timing would tell which usernames exist
    with pytest.raises(errors.InvalidCredentials):
        await courier.login("nobody", PASSWORD, ADDRESS)
    assert len(courier.hasher.verified) == 1


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("username", "password"), [("alice", "x" * 1025), ("a" * 33, PASSWORD), ("alice", ""), ("al", PASSWORD)]
)
async def test_impossible_credentials_are_just_invalid(courier, username, password):
    await courier.user("alice")
    with pytest.raises(errors.InvalidCredentials):
        await courier.login(username, password, ADDRESS)


@pytest.mark.gen_test
async def test_an_over_long_password_is_never_hashed(courier):
    # argon2 on megabytes of password would be a cheap way to burn the server's CPU
    await courier.user("alice")
    with pytest.raises(errors.InvalidCredentials):
        await courier.login("alice", "x" * 1_000_000, ADDRESS)
    assert courier.hasher.verified == []


@pytest.mark.gen_test
@pytest.mark.parametrize(("username", "password"), [(None, PASSWORD), ("alice", None), (["alice"], PASSWORD)])
async def test_non_string_credentials_are_invalid_input(courier, username, password):
    with pytest.raises(errors.InvalidInput):
        await courier.login(username, password, ADDRESS)


@pytest.mark.gen_test
async def test_login_rehashes_a_password_hashed_with_old_parameters(courier):
    alice = await courier.user("alice")
    courier.hasher.version = "v2"  # the settings' parameters changed
    await courier.login("alice", PASSWORD, ADDRESS)
    assert courier.users.by_id[alice.id].password_hash == "hashed:v2:" + PASSWORD
    await courier.login("alice", PASSWORD, ADDRESS)  # the new hash verifies


@pytest.mark.gen_test
async def test_login_leaves_a_current_hash_alone(courier):
    alice = await courier.user("alice")
    before = courier.users.by_id[alice.id].password_hash
    await courier.login("alice", PASSWORD, ADDRESS)
    assert courier.users.by_id[alice.id].password_hash == before


@pytest.mark.gen_test
async def test_a_failed_login_does_not_rehash(courier):
    alice = await courier.user("alice")
    courier.hasher.version = "v2"
    with pytest.raises(errors.InvalidCredentials):
        await courier.login("alice", "wrong password", ADDRESS)
    assert courier.users.by_id[alice.id].password_hash == "hashed:v1:" + PASSWORD


# sign-up limit -------------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_sign_ups_are_limited_per_address_before_any_hashing(make_courier):
    courier = make_courier(registrations=3)
    for name in ("alice", "bob", "carol"):
        await courier.register(name, PASSWORD, ADDRESS)
    with pytest.raises(errors.RateLimited) as raised:
        await courier.register("dave", PASSWORD, ADDRESS)
    assert 0 < raised.value.retry_after <= 3600
    assert "dave" not in {u.username for u in courier.users.by_id.values()}
    # another address has its own allowance
    assert await courier.register("dave", PASSWORD, OTHER_ADDRESS)
    # the bucket refills: 3 an hour, one every 20 minutes
    courier.clock.advance(20 * 60)
    assert await courier.register("erin", PASSWORD, ADDRESS)


@pytest.mark.gen_test
async def test_invalid_sign_ups_do_not_use_up_the_allowance(make_courier):
    courier = make_courier(registrations=1)
    with pytest.raises(errors.InvalidUsername):
        await courier.register("ab", PASSWORD, ADDRESS)
    assert await courier.register("alice", PASSWORD, ADDRESS)


@pytest.mark.gen_test
async def test_a_sign_up_limit_of_zero_turns_it_off(make_courier):
    courier = make_courier(registrations=0)
    for index in range(50):
        await courier.register(f"user{index}", PASSWORD, ADDRESS)


# login throttles ---------------------------------------------------------------------------
async def fail_logins(courier, username, times, address=ADDRESS):
    for _ in range(times):
        with pytest.raises(errors.InvalidCredentials):
            await courier.login(username, "wrong password", address)


@pytest.mark.gen_test
async def test_a_username_and_address_pair_is_blocked_after_n_failures_even_with_the_right_password(make_courier):
    courier = make_courier(login_failures=3)
    await courier.user("alice")
    await fail_logins(courier, "alice", 3)
    verifications = len(courier.hasher.verified)
    with pytest.raises(errors.RateLimited) as raised:
        await courier.login("alice", PASSWORD, ADDRESS)
    assert 0 < raised.value.retry_after <= 60
    assert len(courier.hasher.verified) == verifications  # the password is not even checked


@pytest.mark.gen_test
async def test_failures_from_other_addresses_never_lock_a_user_out(make_courier):
    # Anyone could otherwise lock anyone out by failing on purpose.
    courier = make_courier(login_failures=3)
    await courier.user("alice")
    for index in range(30):
        await fail_logins(courier, "alice", 1, f"10.0.0.{index}")
    logged_in = await courier.login("alice", PASSWORD, "10.0.1.1")
    assert logged_in.user.username == "alice"


@pytest.mark.gen_test
async def test_lookalike_spellings_count_as_the_name_they_look_like(make_courier):
    # Each spelling logs in as alice: with counts of their own, they would multiply her limits.
    courier = make_courier(login_failures=3)
    await courier.user("alice")
    for spelling in [FULLWIDTH, MATH_BOLD, "ＡＬＩＣＥ"]:
        await fail_logins(courier, spelling, 1)
    with pytest.raises(errors.RateLimited):
        await courier.login("alice", PASSWORD, ADDRESS)  # the pair is blocked
    assert courier.slept == []
    assert await courier.login("alice", PASSWORD, OTHER_ADDRESS)  # the name is slowed down, not refused
    assert courier.slept == [courier.login.slowdown]


@pytest.mark.gen_test
async def test_a_username_failing_from_many_addresses_is_slowed_down_not_refused(make_courier):
    courier = make_courier(login_failures=3)
    await courier.user("alice")
    for index in range(2):
        await fail_logins(courier, "alice", 1, f"10.0.0.{index}")
    assert courier.slept == []  # under the limit: no wait
    await fail_logins(courier, "alice", 1, "10.0.0.2")
    await courier.login("alice", PASSWORD, "10.0.1.1")
    assert courier.slept == [courier.login.slowdown]
    assert 0 < courier.login.slowdown <= 5  # "at most a few seconds"


@pytest.mark.gen_test
async def test_the_pair_block_ignores_the_case_of_the_username(make_courier):
    courier = make_courier(login_failures=2)
    await courier.user("alice")
    await fail_logins(courier, "alice", 1)
    await fail_logins(courier, "ALICE", 1)
    with pytest.raises(errors.RateLimited):
        await courier.login("Alice", PASSWORD, ADDRESS)


@pytest.mark.gen_test
async def test_the_pair_block_ends_when_the_window_has_passed(make_courier):
    courier = make_courier(login_failures=3)
    await courier.user("alice")
    await fail_logins(courier, "alice", 3)
    with pytest.raises(errors.RateLimited) as raised:
        await courier.login("alice", PASSWORD, ADDRESS)
    courier.clock.advance(raised.value.retry_after - 0.5)
    with pytest.raises(errors.RateLimited):
        await courier.login("alice", PASSWORD, ADDRESS)
    courier.clock.advance(0.5)
    assert (await courier.login("alice", PASSWORD, ADDRESS)).user.username == "alice"


@pytest.mark.gen_test
async def test_the_pair_window_slides(make_courier):
    courier = make_courier(login_failures=3)
    await courier.user("alice")
    await fail_logins(courier, "alice", 2)
    courier.clock.advance(59)
    await fail_logins(courier, "alice", 1)  # 3 failures within 60 s: blocked
    with pytest.raises(errors.RateLimited):
        await courier.login("alice", PASSWORD, ADDRESS)
    courier.clock.advance(1)  # the first two leave the window
    await courier.login("alice", PASSWORD, ADDRESS)


@pytest.mark.gen_test
async def test_one_blocked_pair_does_not_block_another_username(make_courier):
    courier = make_courier(login_failures=2)
    await courier.users_named("alice", "bob")
    await fail_logins(courier, "alice", 2)
    with pytest.raises(errors.RateLimited):
        await courier.login("alice", PASSWORD, ADDRESS)
    assert await courier.login("bob", PASSWORD, ADDRESS)


@pytest.mark.gen_test
async def test_an_address_is_blocked_after_its_own_limit_of_failures_before_any_hashing(make_courier):
    courier = make_courier(login_failures=10, address_login_failures=3)
    await courier.users_named("alice", "bob", "carol")
    # three failures, each on another username: 401 each time, the limit not yet passed
    await fail_logins(courier, "alice", 1)
    await fail_logins(courier, "bob", 1)
    await fail_logins(courier, "nobody", 1)
    verifications = len(courier.hasher.verified)
    with pytest.raises(errors.RateLimited) as raised:
        await courier.login("carol", PASSWORD, ADDRESS)
    assert 0 < raised.value.retry_after <= 60
    assert len(courier.hasher.verified) == verifications
    # another address is not affected
    assert await courier.login("carol", PASSWORD, OTHER_ADDRESS)


@pytest.mark.gen_test
async def test_the_address_block_ends_with_the_window(make_courier):
    courier = make_courier(address_login_failures=2)
    await courier.users_named("alice", "bob", "carol")
    await fail_logins(courier, "alice", 1)
    await fail_logins(courier, "bob", 1)
    with pytest.raises(errors.RateLimited):
        await courier.login("carol", PASSWORD, ADDRESS)
    courier.clock.advance(61)
    assert await courier.login("carol", PASSWORD, ADDRESS)


@pytest.mark.gen_test
async def test_impossible_usernames_share_one_pair_key(make_courier):
    # a key per spelling would let a client grow the throttle's memory at will
    courier = make_courier(login_failures=2)
    await fail_logins(courier, "x" * 40, 1)
    await fail_logins(courier, "y" * 5000, 1)
    with pytest.raises(errors.RateLimited):
        await courier.login("z" * 50, PASSWORD, ADDRESS)


@pytest.mark.gen_test
async def test_successful_logins_never_count_as_failures(make_courier):
    courier = make_courier(login_failures=2)
    await courier.user("alice")
    for _ in range(10):
        await courier.login("alice", PASSWORD, ADDRESS)
    await fail_logins(courier, "alice", 2)  # still two 401s before any 429
    with pytest.raises(errors.RateLimited):
        await courier.login("alice", PASSWORD, ADDRESS)


@pytest.mark.gen_test
async def test_a_limit_of_zero_turns_the_throttle_off(make_courier):
    courier = make_courier(login_failures=0, address_login_failures=0)
    await courier.user("alice")
    await fail_logins(courier, "alice", 30)
    assert await courier.login("alice", PASSWORD, ADDRESS)
    assert courier.slept == []


# authenticate ---------------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_authenticate_a_valid_token(courier):
    alice = await courier.user("alice")
    issued = (await courier.login("alice", PASSWORD, ADDRESS)).token
    claims = await courier.authenticate(issued.token)
    assert claims.user_id == alice.id
    assert claims.expires_at == issued.expires_at
    assert claims.token_id and claims.issued_at == pytest.approx(courier.clock.now(), abs=0.001)


@pytest.mark.gen_test
@pytest.mark.parametrize("token", [None, ""])
async def test_authenticate_without_a_token(courier, token):
    with pytest.raises(errors.InvalidToken):
        await courier.authenticate(token)


@pytest.mark.gen_test
@pytest.mark.parametrize("token", ["garbage", "a.b.c", "Bearer x"])
async def test_authenticate_a_malformed_token(courier, token):
    with pytest.raises(errors.InvalidToken):
        await courier.authenticate(token)


@pytest.mark.gen_test
async def test_authenticate_a_forged_token(courier):
    alice = await courier.user("alice")
    other = JwtTokenService("another secret, also 32 bytes long", TOKEN_TTL, now=courier.clock.now)
    forged = other.issue(alice.id).token
    with pytest.raises(errors.InvalidToken):
        await courier.authenticate(forged)


@pytest.mark.gen_test
async def test_authenticate_a_token_signed_with_none(courier):
    alice = await courier.user("alice")
    token = jwt.encode({"sub": alice.id, "exp": int(courier.clock.now()) + 60}, key=None, algorithm="none")
    with pytest.raises(errors.InvalidToken):
        await courier.authenticate(token)


@pytest.mark.gen_test
async def test_authenticate_a_token_without_expiry(courier):
    alice = await courier.user("alice")
    token = jwt.encode({"sub": alice.id}, SECRET, algorithm="HS256")
    with pytest.raises(errors.InvalidToken):
        await courier.authenticate(token)


@pytest.mark.gen_test
async def test_a_token_expires_to_the_second(courier):
    alice = await courier.user("alice")
    issued = courier.tokens.issue(alice.id)
    courier.clock.advance(TOKEN_TTL - 1)
    assert (await courier.authenticate(issued.token)).user_id == alice.id
    courier.clock.advance(1)
    with pytest.raises(errors.InvalidToken) as raised:
        await courier.authenticate(issued.token)
    assert "expired" in raised.value.message


@pytest.mark.gen_test
async def test_a_token_of_a_user_that_never_existed_is_refused(courier):
    issued = courier.tokens.issue("00000000-0000-4000-8000-000000000000")  # signed with the right secret
    with pytest.raises(errors.InvalidToken) as raised:
        await courier.authenticate(issued.token)
    assert "does not exist" in raised.value.message


@pytest.mark.gen_test
async def test_a_token_of_a_removed_user_is_refused_once_the_check_is_stale(courier):
    alice = await courier.user("alice")
    token = (await courier.login("alice", PASSWORD, ADDRESS)).token.token
    assert (await courier.authenticate(token)).user_id == alice.id
    del courier.users.by_id[alice.id]  # removed from the store
    courier.clock.advance(31)  # past the account check's recheck (30 s in the fakes)
    with pytest.raises(errors.InvalidToken):
        await courier.authenticate(token)


@pytest.mark.gen_test
async def test_a_token_from_before_tokens_had_ids_is_still_accepted_and_named(courier):
    alice = await courier.user("alice")
    old = jwt.encode({"sub": alice.id, "iat": int(courier.clock.now()), "exp": int(courier.clock.now()) + 60},
                     SECRET, algorithm="HS256")
    claims = await courier.authenticate(old)
    assert len(claims.token_id) == 32  # its own hash names it, for revoking


# log out ------------------------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_logging_out_revokes_that_token_only(courier):
    await courier.user("alice")
    first = (await courier.login("alice", PASSWORD, ADDRESS)).token.token
    second = (await courier.login("alice", PASSWORD, ADDRESS)).token.token
    await courier.log_out.this_token(await courier.authenticate(first))
    with pytest.raises(errors.InvalidToken) as raised:
        await courier.authenticate(first)
    assert "revoked" in raised.value.message
    assert await courier.authenticate(second)


@pytest.mark.gen_test
async def test_logging_out_everywhere_revokes_every_token_issued_before(courier):
    alice = await courier.user("alice")
    old = [(await courier.login("alice", PASSWORD, ADDRESS)).token.token for _ in range(3)]
    courier.clock.advance(0.002)
    await courier.log_out.everywhere(alice.id)
    courier.clock.advance(0.002)
    new = (await courier.login("alice", PASSWORD, ADDRESS)).token.token
    for token in old:
        with pytest.raises(errors.InvalidToken):
            await courier.authenticate(token)
    assert (await courier.authenticate(new)).user_id == alice.id


@pytest.mark.gen_test
async def test_a_token_issued_in_the_same_second_after_logging_out_everywhere_survives(courier):
    # Tokens carry their issue time to the millisecond, not the second.
    alice = await courier.user("alice")
    courier.clock.time = 1_700_000_000.2
    await courier.log_out.everywhere(alice.id)
    courier.clock.time = 1_700_000_000.7
    token = (await courier.login("alice", PASSWORD, ADDRESS)).token.token
    assert await courier.authenticate(token)


@pytest.mark.gen_test
async def test_problems_answers_for_many_tokens_at_once(courier):
    alice, bob = await courier.users_named("alice", "bob")
    tokens = [courier.tokens.issue(user_id) for user_id in (alice.id, bob.id, alice.id)]
    claims = [courier.tokens.verify(t.token) for t in tokens]
    await courier.log_out.this_token(claims[2])
    del courier.users.by_id[bob.id]
    courier.clock.advance(31)
    problems = await courier.authenticate.problems(claims)
    assert problems[0] is None
    assert "does not exist" in problems[1]
    assert "revoked" in problems[2]


# look users up ----------------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_get_user_by_id_and_by_username(courier):
    alice = await courier.user("Alice")
    assert (await courier.get_user.by_id(alice.id)).username == "Alice"
    assert (await courier.get_user.require(alice.id)).id == alice.id
    assert (await courier.get_user.by_username("alice")).id == alice.id
    assert (await courier.get_user.by_username("ＡＬＩＣＥ")).id == alice.id  # fullwidth: the name it looks like


@pytest.mark.gen_test
async def test_login_with_a_lookalike_spelling_is_the_user_it_looks_like(courier):
    alice = await courier.user("Alice")
    for spelling in (FULLWIDTH, "ＡＬＩＣＥ", MATH_BOLD):
        logged_in = await courier.login(spelling, PASSWORD, ADDRESS)
        assert logged_in.user.id == alice.id and logged_in.user.username == "Alice"
    with pytest.raises(errors.InvalidCredentials):  # another script is another name
        await courier.login(CYRILLIC_A, PASSWORD, ADDRESS)


@pytest.mark.gen_test
async def test_get_user_errors(courier):
    with pytest.raises(errors.UserNotFound):
        await courier.get_user.by_username("nobody")
    with pytest.raises(errors.UserNotFound):
        await courier.get_user.by_username("x" * 40)
    with pytest.raises(errors.InvalidInput):
        await courier.get_user.by_username("")
    with pytest.raises(errors.InvalidInput):
        await courier.get_user.require("not-a-uuid")
    with pytest.raises(errors.UserNotFound):
        await courier.get_user.require("00000000-0000-4000-8000-000000000000")
