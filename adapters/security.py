"""Password hashing (argon2id) and tokens (JWT, HS256)."""
from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
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

    Hashing costs tens of milliseconds of CPU by design; it runs on `threads` threads
    of its own (argon2 releases the GIL), so the event loop never waits on it. The
    work is bounded: at most `queue` hashes wait for a thread, and one more is refused
    at once with Overloaded (503 with Retry-After) instead of queueing behind the others
    - a flood of wrong logins would otherwise make every login wait seconds."""

    RETRY_AFTER = 1.0  # seconds: a queue this short empties in well under that

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int, threads: int = 2, queue: int = 8,
                 executor: Executor | None = None):
        self._argon2 = _Argon2(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._executor = executor or ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        self._capacity = threads + queue
        self._taken = 0  # hashes running or waiting: only the event loop's thread changes it

    async def hash(self, password: str) -> str:
        return await self._run(self._argon2.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(self._check, password_hash, password)

    async def _run(self, fn, *args):
        if self._taken >= self._capacity:
            raise errors.Overloaded(self.RETRY_AFTER, "too many passwords are being checked; retry in a moment")
        self._taken += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._taken -= 1

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
    checked on every call, and nothing else about a signed token can change, so a hit
    answers exactly what decoding would. (Whether the token was revoked since, or its
    user removed, is the Authenticate use case's question, not the signature's.)"""

    ALGORITHM = "HS256"

    def __init__(self, secret: str, ttl_seconds: int, now=time.time, cache_size: int = 10_000):
        self._secret = secret
        self._ttl = ttl_seconds
        self._now = now
        self._cache_size = cache_size
        self._verified: dict[str, TokenClaims] = {}  # insertion order: the oldest is evicted first

    def issue(self, user_id: str) -> IssuedToken:
        now = self._now()
        # iat to the millisecond, rounded down (a NumericDate may have a fraction, RFC
        # 7519 section 2): logging out everywhere refuses the tokens issued before a
        # moment, and a token issued in the same second just after it must survive.
        issued_at = math.floor(now * 1000) / 1000
        expires_at = int(now) + self._ttl
        claims = {"sub": user_id, "iat": issued_at, "exp": expires_at, "jti": secrets.token_urlsafe(12)}
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
            # iat is not checked against this machine's clock: a gateway whose clock is
            # a little behind the one that issued the token would refuse it as "not yet
            # valid". exp is checked by verify(), on the injected clock.
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self.ALGORITHM],
                options={"require": ["sub", "exp"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise errors.InvalidToken() from None
        expires_at, user_id = claims["exp"], claims["sub"]
        issued_at, token_id = claims.get("iat", 0), claims.get("jti")
        if not isinstance(expires_at, int) or not isinstance(user_id, str):
            raise errors.InvalidToken("")
        if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
            raise errors.InvalidToken("")
        if not isinstance(token_id, str) or not token_id:
            # Tokens issued before tokens carried an id: the token itself names it.
            token_id = hashlib.sha256(token.encode()).hexdigest()[:32]
        return TokenClaims(user_id=user_id, expires_at=expires_at, token_id=token_id, issued_at=float(issued_at))
