"""Use cases of accounts: register, log in, authenticate a token, look users up."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from application.ports import (
    AccountCheck,
    Clock,
    FailureThrottle,
    IdGenerator,
    IssuedToken,
    PasswordHasher,
    RateLimiter,
    TokenClaims,
    TokenRevocations,
    TokenService,
    UserRepository,
)
from domain import errors
from domain.model import (
    User,
    could_be_username,
    normalised_username_key,
    validate_id,
    validate_password,
    validate_username,
)

log = logging.getLogger("courier.accounts")

# Hashing this on an unknown username makes a failed login cost the same time
# whether or not the user exists, so timing does not reveal who has an account.
_DUMMY_PASSWORD = "courier-timing-equaliser"


@dataclass
class RegisterUser:
    """Create an account. Sign-ups are limited per client address (`limiter`, a token
    bucket per address: COURIER_REGISTRATIONS an hour), checked before anything is
    looked up or hashed, so a flood of sign-ups costs no hashing."""

    users: UserRepository
    hasher: PasswordHasher
    ids: IdGenerator
    limiter: RateLimiter

    async def __call__(self, username: Any, password: Any, client_address: str) -> User:
        username = validate_username(username)
        password = validate_password(password)
        wait = await self.limiter.take("register:" + client_address)
        if wait > 0:
            raise errors.RateLimited(wait, "too many sign-ups from this address; try again later")
        if await self.users.get_by_username(username) is not None:
            raise errors.UsernameTaken()
        user = User(id=self.ids.new_id(), username=username, password_hash=await self.hasher.hash(password))
        await self.users.add(user)  # raises UsernameTaken if a concurrent register won
        return user


@dataclass
class LoggedIn:
    user: User
    token: IssuedToken


# Every name that no user could have registered shares one throttle key (such a name
# finds nobody anyway, and a key must not grow with what a client sends).
_IMPOSSIBLE_NAME = "-"


@dataclass
class LogIn:
    """Check credentials and issue a token.

    Failed logins are counted three ways, in windows of a minute:
    - per (username, client address), by `failures`: past its limit that address gets
      429 for that username, before the password is even checked;
    - per client address, by `address_failures` (a higher limit: many people may share
      an address): past it the address gets 429 for every username, also before any
      hashing;
    - per username, from every address, by `failures`: past the limit each attempt for
      that username waits `slowdown` seconds before its password is checked - never a
      refusal, so nobody can lock a user out by failing from addresses of their own.
    Successful logins never count. Every 429 is answered before any hashing."""

    users: UserRepository
    hasher: PasswordHasher
    tokens: TokenService
    failures: FailureThrottle
    address_failures: FailureThrottle
    slowdown: float = 2.0
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep

    async def __call__(self, username: Any, password: Any, client_address: str) -> LoggedIn:
        if not isinstance(username, str) or not isinstance(password, str):
            raise errors.InvalidInput("username and password must be strings")
        possible = could_be_username(username)
        # Counted by what the name looks like: "ａｌｉｃｅ" and "𝐚𝐥𝐢𝐜𝐞" log in as alice does
        # (UserRepository.get_by_username), so no spelling gets a count of its own. Only for
        # what could be a name (32 characters): NFKC of a 1 MiB string can take 0.2 s.
        name_key = normalised_username_key(username) if possible else _IMPOSSIBLE_NAME
        pair_key = f"login:pair:{name_key}:{client_address}"
        address_key = "login:addr:" + client_address
        user_key = "login:user:" + name_key
        wait = max(await self.failures.blocked_for(pair_key), await self.address_failures.blocked_for(address_key))
        if wait > 0:
            raise errors.RateLimited(wait, "too many failed logins from this address")
        if possible and await self.failures.blocked_for(user_key) > 0:
            await self.sleep(self.slowdown)  # guessed at from many places: slower, never refused
        user = await self.users.get_by_username(username) if possible else None
        verified = await self._verify(user, password)  # a dummy hash when there is no user
        if user is None or not verified:
            await self.failures.record_failure(pair_key)
            await self.address_failures.record_failure(address_key)
            if possible:
                await self.failures.record_failure(user_key)
            raise errors.InvalidCredentials()
        if self.hasher.needs_rehash(user.password_hash):
            # The settings' argon2 parameters changed: upgrade the stored hash now
            # that we have the password; the old one kept verifying meanwhile.
            user.password_hash = await self.hasher.hash(password)
            await self.users.set_password_hash(user.id, user.password_hash)
        return LoggedIn(user=user, token=self.tokens.issue(user.id))

    async def _verify(self, user: User | None, password: str) -> bool:
        if len(password) > 1024:
            return False
        if user is None:
            await self.hasher.verify(await self._dummy_hash(), password)
            return False
        return await self.hasher.verify(user.password_hash, password)

    _dummy: str | None = field(default=None, init=False, repr=False)

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hasher.hash(_DUMMY_PASSWORD)
        return self._dummy


_REVOKED = "the token has been revoked"
_NO_USER = "the token's user does not exist"


@dataclass
class Authenticate:
    """A bearer token -> its claims (the user id, expiry, which token), once the token
    is known to be good: signed by us, not expired, not revoked (logged out), and its
    user still exists (a user removed, or a database reset, leaves signed tokens behind)."""

    tokens: TokenService
    revocations: TokenRevocations
    accounts: AccountCheck

    async def __call__(self, token: str | None) -> TokenClaims:
        if not token:
            raise errors.InvalidToken("a bearer token is required")
        claims = self.tokens.verify(token)
        # Every request comes here: the answers at hand first, without a coroutine each.
        revoked = self.revocations.known(claims)
        if revoked is None:
            revoked = (await self.revocations.revoked((claims,)))[0]
        if revoked:
            raise errors.InvalidToken(_REVOKED)
        user_id = claims.user_id
        if not self.accounts.known_to_exist(user_id) and user_id not in await self.accounts.existing((user_id,)):
            raise errors.InvalidToken(_NO_USER)
        return claims

    async def problems(self, claims: Sequence[TokenClaims]) -> list[str | None]:
        """Why each of these (already verified) tokens is no longer good, None where it
        still is: what the open sockets are checked with, all together."""
        if not claims:
            return []
        revoked = await self.revocations.revoked(claims)
        existing = await self.accounts.existing(list({c.user_id for c in claims}))
        return [_REVOKED if gone else None if c.user_id in existing else _NO_USER
                for c, gone in zip(claims, revoked, strict=True)]


@dataclass
class LogOut:
    """End one token (log out of this device) or every token of the user (everywhere)."""

    revocations: TokenRevocations
    clock: Clock
    token_ttl: int

    async def this_token(self, claims: TokenClaims) -> None:
        await self.revocations.revoke(claims)

    async def everywhere(self, user_id: str) -> None:
        now = self.clock.now()
        await self.revocations.revoke_all(user_id, issued_before=now, until=now + self.token_ttl)


@dataclass
class GetUser:
    users: UserRepository

    async def by_id(self, user_id: str) -> User:
        user = await self.users.get(user_id)
        if user is None:
            raise errors.UserNotFound()
        return user

    async def by_username(self, username: Any) -> User:
        if not isinstance(username, str) or not username:
            raise errors.InvalidInput("username is required")
        user = await self.users.get_by_username(username) if could_be_username(username) else None
        if user is None:
            raise errors.UserNotFound()
        return user

    async def require(self, user_id: Any) -> User:
        return await self.by_id(validate_id(user_id, "user_id"))
