"""KnownUsers: users found once are answered from memory; bounded; a password change forgets."""
from __future__ import annotations

import pytest

from adapters.memory.known_users import KnownUsers
from domain.model import User
from tests.fakes.repositories import MemoryUserRepository


class CountingUsers(MemoryUserRepository):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    async def get(self, user_id: str) -> User | None:
        self.gets += 1
        return await super().get(user_id)


def user(n: int) -> User:
    return User(id=f"id-{n}", username=f"user{n}", password_hash=f"hash-{n}")


@pytest.mark.gen_test
async def test_a_user_found_once_is_answered_from_memory():
    inner = CountingUsers()
    users = KnownUsers(inner)
    await inner.add(user(1))  # registered elsewhere (another gateway)
    assert (await users.get("id-1")).username == "user1"
    assert (await users.get("id-1")).username == "user1"
    assert inner.gets == 1


@pytest.mark.gen_test
async def test_a_user_not_found_is_asked_again_and_found_once_registered():
    inner = CountingUsers()
    users = KnownUsers(inner)
    assert await users.get("id-2") is None
    await users.add(user(2))
    assert await users.get("id-2") == user(2)
    assert inner.gets == 1  # the miss only: registering through it asks nothing


@pytest.mark.gen_test
async def test_it_forgets_the_oldest_past_its_bound():
    inner = CountingUsers()
    users = KnownUsers(inner, max_entries=2)
    for n in (1, 2, 3):
        await users.add(user(n))
        await users.get(f"id-{n}")
    inner.gets = 0
    await users.get("id-3")
    await users.get("id-2")
    assert inner.gets == 0
    await users.get("id-1")  # forgotten: asked again
    assert inner.gets == 1


@pytest.mark.gen_test
async def test_a_password_change_is_never_answered_with_the_old_hash():
    users = KnownUsers(MemoryUserRepository())
    await users.add(user(4))
    assert (await users.get("id-4")).password_hash == "hash-4"
    await users.set_password_hash("id-4", "new-hash")
    assert (await users.get("id-4")).password_hash == "new-hash"
    assert (await users.get_by_username("user4")).password_hash == "new-hash"


@pytest.mark.gen_test
async def test_a_user_registered_through_it_is_known_at_once():
    inner = CountingUsers()
    users = KnownUsers(inner)
    await users.add(user(5))
    asked = inner.gets
    assert await users.get("id-5") == user(5)
    assert inner.gets == asked  # no lookup on the first send to a new user
