"""RecentlyCheckedAccounts: whether users exist, asked of the store at most once per
`recheck` seconds per user, and what it answers while the store is down."""
from __future__ import annotations

import pytest

from adapters.memory.checked_accounts import RecentlyCheckedAccounts
from domain import errors
from domain.model import User
from tests.fakes.clock import FakeClock
from tests.fakes.repositories import MemoryUserRepository

ALICE, BOB, CAROL = (f"00000000-0000-4000-8000-00000000000{c}" for c in "abc")


class CountingUsers(MemoryUserRepository):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[str]] = []
        self.down = False

    async def existing(self, user_ids):
        if self.down:
            raise errors.ServiceUnavailable("the database is unavailable")
        self.asked.append(list(user_ids))
        return await super().existing(user_ids)


@pytest.fixture
def users():
    repository = CountingUsers()
    for user_id, name in ((ALICE, "alice"), (BOB, "bob")):
        repository.by_id[user_id] = User(user_id, name, "x")
    return repository


@pytest.mark.gen_test
async def test_a_user_found_is_not_asked_about_again_until_stale(users):
    clock = FakeClock()
    accounts = RecentlyCheckedAccounts(users, recheck=30, now=clock.now)
    assert not accounts.known_to_exist(ALICE)  # not asked yet
    assert await accounts.existing([ALICE, CAROL]) == {ALICE}
    assert accounts.known_to_exist(ALICE) and not accounts.known_to_exist(CAROL)
    assert await accounts.existing([ALICE]) == {ALICE}
    assert users.asked == [[ALICE, CAROL]]
    del users.by_id[ALICE]
    clock.advance(29)
    assert await accounts.existing([ALICE]) == {ALICE}  # still remembered
    clock.advance(1)
    assert not accounts.known_to_exist(ALICE)  # stale: to be asked again
    assert await accounts.existing([ALICE]) == set()  # asked again: gone
    assert await accounts.existing([CAROL]) == set()  # not found is never remembered
    assert users.asked[-1] == [CAROL]


@pytest.mark.gen_test
async def test_while_the_store_is_down_users_found_before_still_exist(users):
    clock = FakeClock()
    accounts = RecentlyCheckedAccounts(users, recheck=30, now=clock.now)
    await accounts.existing([ALICE])
    clock.advance(60)
    users.down = True
    assert await accounts.existing([ALICE]) == {ALICE}
    with pytest.raises(errors.ServiceUnavailable):
        await accounts.existing([ALICE, BOB])  # bob was never found: no answer


@pytest.mark.gen_test
async def test_it_is_bounded(users):
    clock = FakeClock()
    accounts = RecentlyCheckedAccounts(users, recheck=30, now=clock.now, max_entries=1)
    await accounts.existing([ALICE])
    await accounts.existing([BOB])
    await accounts.existing([ALICE])
    assert users.asked == [[ALICE], [BOB], [ALICE]]


@pytest.mark.gen_test
async def test_users_asked_about_at_once_are_one_question(users):
    import asyncio

    accounts = RecentlyCheckedAccounts(users, recheck=30, now=FakeClock().now)
    found = await asyncio.gather(*(accounts.existing([user_id]) for user_id in (ALICE, BOB, CAROL, ALICE)))
    assert found == [{ALICE}, {BOB}, set(), {ALICE}]
    assert users.asked == [[ALICE, BOB, CAROL]]
