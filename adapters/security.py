"""Password hashing (argon2id) and tokens (JWT, HS256)."""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor, ThreadPoolExecutor

import jwt
from argon2 import PasswordHasher as _Argon2
from argon2 import exceptions as argon2_errors

from application.ports import IssuedToken, PasswordHasher, TokenClaims, TokenService
from domain import errors


class Argon2PasswordHasher(PasswordHasher):
    """argon2id with the settings' parameters. A stored hash carries its own
    parameters, so hashes made with older settings keep verifying.

    Hashing costs ~100 ms of CPU by design; it runs in a small executor of its
    own (argon2 releases the GIL), so the event loop never waits on it."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int, executor: Executor | None = None):
        self._argon2 = _Argon2(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._executor = executor or ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._argon2.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._check, password_hash, password)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash, password)
        except (argon2_errors.VerificationError, argon2_errors.InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._argon2.check_needs_rehash(password_hash)
        except argon2_errors.InvalidHashError:
            return True

    def close(self) -> None:
        self._executor.shutdown(wait=False)


class JwtTokenService(TokenService):
    """HS256 tokens. verify() remembers the claims of up to `cache_size` tokens it has
    checked (keyed by the whole token string, so only a byte-identical token hits):
    decoding costs ~28 us of CPU, paid on every send and socket. The expiry is still
    checked on every call, and nothing else about a token can change (there is no
    revocation), so a hit answers exactly what decoding would."""

    ALGORITHM = "HS256"

    def __init__(self, secret: str, ttl_seconds: int, now=time.time, cache_size: int = 10_000):
        self._secret = secret
        self._ttl = ttl_seconds
        self._now = now
        self._cache_size = cache_size
        self._verified: dict[str, TokenClaims] = {}  # insertion order: the oldest is evicted first

    def issue(self, user_id: str) -> IssuedToken:
        issued_at = int(self._now())
        expires_at = issued_at + self._ttl
        claims = {"sub": user_id, "iat": issued_at, "exp": expires_at}
        token = jwt.encode(claims, self._secret, algorithm=self.ALGORITHM)
        return IssuedToken(token=token, expires_at=expires_at)

    def verify(self, token: str) -> TokenClaims:
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            if len(self._verified) >= self._cache_size:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = claims
        # Expiry is checked against our own clock (tests move it), to the second.
        if claims.expires_at <= self._now():
            raise errors.InvalidToken("the token has expired")
        return claims

    def _decode(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self.ALGORITHM],
                options={"require": ["sub", "exp"], "verify_exp": False},
            )
        except jwt.PyJWTError:
            raise errors.InvalidToken() from None
        expires_at, user_id = claims["exp"], claims["sub"]
        if not isinstance(expires_at, int) or not isinstance(user_id, str):
            raise errors.InvalidToken("")
        return TokenClaims(user_id=user_id, expires_at=expires_at)
