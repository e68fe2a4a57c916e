"""COURIER_GROUP_CHANGES: group creations and member additions per acting user and
minute. 200 POST /groups with one victim in member_ids put the victim in 200 groups
in 0.4 s; past the allowance a change answers 429 rate_limited with Retry-After, and
nothing of it is written."""
from __future__ import annotations

import pytest

from tests.e2e.support import assert_error, with_settings

GROUPS = "/api/v1/groups"


async def group_ids(api, account) -> set[str]:
    r = await api.call("GET", GROUPS + "?limit=200", token=account.token)
    assert r.status == 200, r
    return {g["group_id"] for g in r.body["groups"]}


@with_settings(group_changes=3)  # 3 a minute: one more every 20 s
@pytest.mark.gen_test(timeout=30)
async def test_past_the_allowance_a_change_is_refused_and_writes_nothing(api):
    spammer, victim, friend = await api.register(), await api.register(), await api.register()
    first = await api.create_group(spammer, "one", [victim])
    await api.create_group(spammer, "two", [victim])
    members = f"{GROUPS}/{first['group_id']}/members"
    assert (await api.call("POST", members, {"user_id": friend.user_id}, spammer.token)).status == 200
    victims_groups = await group_ids(api, victim)

    refused = await api.call("POST", GROUPS, {"name": "three", "member_ids": [victim.user_id]}, spammer.token)
    assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 20, refused
    own = await api.create_group(victim, "mine", [])  # every user has an allowance of their own
    outsider = await api.register()
    refused = await api.call("POST", members, {"user_id": outsider.user_id}, spammer.token)
    assert_error(refused, 429, "rate_limited")
    assert "Retry-After" in refused.headers

    assert await group_ids(api, victim) == victims_groups | {own["group_id"]}
    assert await group_ids(api, outsider) == set()
    r = await api.call("GET", f"{GROUPS}/{first['group_id']}", token=spammer.token)
    assert r.body["member_ids"] == [spammer.user_id, victim.user_id, friend.user_id], r
    # Leaving (or removing) is never limited: nobody can be kept in a group.
    left = await api.call("DELETE", f"{members}/{victim.user_id}", token=victim.token)
    assert left.status == 204, left
    removed = await api.call("DELETE", f"{members}/{friend.user_id}", token=spammer.token)
    assert removed.status == 204, removed


@with_settings(group_changes=0)
@pytest.mark.gen_test(timeout=60)
async def test_0_turns_the_limit_off(api):
    creator, member = await api.register(), await api.register()
    for number in range(40):
        await api.create_group(creator, f"g{number}", [member])
    assert len(await group_ids(api, member)) == 40
