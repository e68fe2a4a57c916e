"""Use cases of accounts: register, log in, authenticate a token, look users up."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from application.ports import (
    FailureThrottle,
    IdGenerator,
    IssuedToken,
    PasswordHasher,
    TokenService,
    UserRepository,
)
from domain import errors
from domain.model import (
    User,
    could_be_username,
    normalised_username_key,
    username_key,
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
    users: UserRepository
    hasher: PasswordHasher
    ids: IdGenerator

    async def __call__(self, username, password) -> User:
        username = validate_username(username)
        password = validate_password(password)
        if await self.users.get_by_username(username) is not None:
            raise errors.UsernameTaken()
        user = User(id=self.ids.new_id(), username=username, password_hash=await self.hasher.hash(password))
        await self.users.add(user)  # raises UsernameTaken if a concurrent register won
        return user


@dataclass
class LoggedIn:
    user: User
    token: IssuedToken


@dataclass
class LogIn:
    """Check credentials and issue a token.

    Failed logins are throttled per username (hard: past the limit the password is
    not even checked, so a name cannot be guessed at speed) and per client address
    (soft: past the limit a wrong password answers 429, but a right one still gets
    in, so a thousand users behind one address are never locked out by one of them).
    Successful logins never count."""

    users: UserRepository
    hasher: PasswordHasher
    tokens: TokenService
    failures: FailureThrottle

    async def __call__(self, username, password, client_address: str) -> LoggedIn:
        if not isinstance(username, str) or not isinstance(password, str):
            raise errors.InvalidInput("username and password must be strings")
        named = could_be_username(username)
        # Counted by what the name looks like: "ａｌｉｃｅ" and "𝐚𝐥𝐢𝐜𝐞" log in as alice does
        # (UserRepository.get_by_username), so no spelling gets a count of its own. Only for
        # what could be a name (32 characters): NFKC of a 1 MiB string can take 0.2 s.
        user_key = "login:user:" + (normalised_username_key(username) if named else username_key(username))
        address_key = "login:addr:" + client_address
        wait = await self.failures.blocked_for(user_key)
        if wait > 0:
            raise errors.RateLimited(wait, "too many failed logins for this username")
        user = await self.users.get_by_username(username) if named else None
        ok = await self._verify(user, password)
        if not ok:
            # Asked before this failure is recorded, like the username check above:
            # the limit's N failures answer 401, the one after them 429.
            wait = await self.failures.blocked_for(address_key)
            await self.failures.record_failure(user_key)
            await self.failures.record_failure(address_key)
            if wait > 0:
                raise errors.RateLimited(wait, "too many failed logins from this address")
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


@dataclass
class Authenticate:
    """A bearer token -> the user id it was issued to, and when it expires."""

    tokens: TokenService

    def __call__(self, token: str | None):
        if not token:
            raise errors.InvalidToken("a bearer token is required")
        return self.tokens.verify(token)


@dataclass
class GetUser:
    users: UserRepository

    async def by_id(self, user_id: str) -> User:
        user = await self.users.get(user_id)
        if user is None:
            raise errors.UserNotFound()
        return user

    async def by_username(self, username) -> User:
        if not isinstance(username, str) or not username:
            raise errors.InvalidInput("username is required")
        user = await self.users.get_by_username(username) if could_be_username(username) else None
        if user is None:
            raise errors.UserNotFound()
        return user

    async def require(self, user_id) -> User:
        return await self.by_id(validate_id(user_id, "user_id"))
