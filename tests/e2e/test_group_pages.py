"""GET /api/v1/groups is paged like the other lists: `limit` (default 50, at most 200)
and `before` (the previous page's opaque `next_before`), newest joined first. It
answered every group of the caller at once (44 KB for 200 groups put on one victim)."""
from __future__ import annotations

import pytest

from tests.e2e.support import assert_error, with_settings

GROUPS = "/api/v1/groups"


async def pages_of(api, account, limit: int | None = None) -> list[list[dict]]:
    pages, before = [], None
    while True:
        query = "&".join(f"{k}={v}" for k, v in (("limit", limit), ("before", before)) if v is not None)
        r = await api.call("GET", GROUPS + ("?" + query if query else ""), token=account.token)
        assert r.status == 200 and set(r.body) == {"groups", "next_before"}, r
        pages.append(r.body["groups"])
        before = r.body["next_before"]
        if before is None:
            return pages
        assert isinstance(before, str) and before, r


@with_settings(group_changes=0)  # more groups than the default allowance lets one user make at once
@pytest.mark.gen_test(timeout=60)
async def test_groups_come_in_pages_newest_joined_first(api):
    me, other = await api.register(), await api.register()
    made = [await api.create_group(me, f"g{n}", []) for n in range(52)]
    older = await api.create_group(other, "made before I joined", [])
    for _ in range(2):
        await api.create_group(other, "not mine", [])  # groups I am not in are never listed
    joined = await api.call("POST", f"{GROUPS}/{older['group_id']}/members", {"user_id": me.user_id}, other.token)
    assert joined.status == 200, joined
    expected = [joined.body] + made[::-1]  # joined last: listed first, though created before some

    default = await pages_of(api, me)
    assert [len(page) for page in default] == [50, 3]
    assert sum(default, []) == expected
    assert await pages_of(api, me, 20) == [expected[0:20], expected[20:40], expected[40:53]]
    assert await pages_of(api, me, 200) == [expected]
    assert await pages_of(api, me, 53) == [expected]


@with_settings(group_changes=0)
@pytest.mark.gen_test(timeout=60)
async def test_the_order_holds_while_groups_are_joined(api):
    me, other = await api.register(), await api.register()
    made = [await api.create_group(me, f"g{n}", []) for n in range(5)]
    first = await api.call("GET", GROUPS + "?limit=2", token=me.token)
    assert first.body["groups"] == [made[4], made[3]], first
    new = await api.create_group(other, "joined while paging", [me])
    rest = await api.call("GET", f"{GROUPS}?limit=10&before={first.body['next_before']}", token=me.token)
    assert rest.body == {"groups": [made[2], made[1], made[0]], "next_before": None}, rest
    assert (await pages_of(api, me))[0][0] == new


@pytest.mark.gen_test(timeout=30)
async def test_a_bad_limit_or_before_is_a_400(api):
    me = await api.register()
    await api.create_group(me, "one", [])
    await api.create_group(me, "two", [])
    for limit in ("0", "201", "-1", "x", "1.5", "9" * 40):
        assert_error(await api.call("GET", f"{GROUPS}?limit={limit}", token=me.token), 400)
    for before in ("x", "123", "%ff", "%E2%82%AC", "a" * 300, "MTIzOm5vdC1hLXV1aWQ"):
        assert_error(await api.call("GET", f"{GROUPS}?before={before}", token=me.token), 400)
    # An empty before is no before, like the history's.
    r = await api.call("GET", f"{GROUPS}?before=&limit=1", token=me.token)
    assert r.status == 200 and len(r.body["groups"]) == 1 and r.body["next_before"], r
    assert_error(await api.call("GET", f"{GROUPS}?limit=1"), 401)
