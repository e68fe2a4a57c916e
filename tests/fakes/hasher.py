"""A password hasher that costs nothing, with something to look at."""
from __future__ import annotations

from application.ports import PasswordHasher


class FakePasswordHasher(PasswordHasher):
    """'hashed:' + password; `rehash` makes needs_rehash() say yes for every
    hash that does not carry the current `version`."""

    def __init__(self) -> None:
        self.version = "v1"
        self.verified: list[tuple[str, str]] = []  # (hash, password) of every verify call

    async def hash(self, password: str) -> str:
        return f"hashed:{self.version}:{password}"

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append((password_hash, password))
        return password_hash.split(":", 2)[2:] == [password]

    def needs_rehash(self, password_hash: str) -> bool:
        return not password_hash.startswith(f"hashed:{self.version}:")
