"""`courier seed-channel` (entrypoints/seed.py): a channel of N new members, made through
the use cases, that the running server then serves as any channel, in both modes: the
owner and the members log in with the seeded password, the owner's post reaches a
member's socket and pull, and a member may not post."""
from __future__ import annotations

import asyncio
import json
import os

import pytest

from tests.e2e.client import Account
from tests.e2e.support import assert_error, with_settings
from tests.services.courier_command import COURIER_BIN, FAST_ENV

pytestmark = with_settings(large_group=3)

MEMBERS = 1500  # two batches of add_members


async def seed(courier, *args: str) -> tuple[int, str, str]:
    settings = courier.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env.update(FAST_ENV, COURIER_DATA_DIR=settings.data_dir, COURIER_DATABASE_URL=settings.database_url,
               COURIER_REDIS_URL=settings.redis_url, COURIER_JWT_SECRET=settings.jwt_secret,
               COURIER_LARGE_GROUP=str(settings.large_group),
               COURIER_RECEIPTS_MAX_GROUP=str(settings.receipts_max_group))
    process = await asyncio.create_subprocess_exec(COURIER_BIN, "seed-channel", *args, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


async def logged_in(api, username: str, password: str) -> Account:
    r = await api.login(username, password)
    assert r.status == 200, r
    return Account(r.body["user_id"], username, password, r.body["token"])


@pytest.mark.gen_test(timeout=90)
async def test_a_seeded_channel_is_served_like_any_other(courier, api):
    code, out, err = await seed(courier, "--members", str(MEMBERS), "--prefix", "sc-", "--password", "seeded-pw")
    assert code == 0, err
    seeded = json.loads(out)
    assert (seeded["members"], seeded["owner"], seeded["prefix"]) == (MEMBERS, "sc-owner", "sc-")
    owner = await logged_in(api, "sc-owner", "seeded-pw")
    assert owner.user_id == seeded["owner_id"]
    gid = seeded["group_id"]
    got = await api.call("GET", f"/api/v1/groups/{gid}", None, owner.token)
    assert got.status == 200 and (got.body["kind"], got.body["member_count"]) == ("channel", MEMBERS), got
    first = await logged_in(api, "sc-000001", "seeded-pw")
    last = await logged_in(api, f"sc-{MEMBERS - 1:06d}", "seeded-pw")
    socket = await api.connect(first)
    post = await api.send_group(owner, gid, "to everyone")
    assert post.status == 201, post
    assert (await socket.next())["id"] == post.body["id"]
    pulled, _ = await api.pull_all(last)
    assert [m["id"] for m in pulled if m.get("group_id") == gid] == [post.body["id"]]
    assert_error(await api.send_group(last, gid, "me too"), 403, "not_allowed")
    # The same names again: refused, nothing half-made is reported as made.
    code, out, err = await seed(courier, "--members", "2", "--prefix", "sc-")
    assert code == 1 and out == "" and "taken" in err, (code, out, err)


@pytest.mark.gen_test(timeout=30)
async def test_refused_without_large_groups_or_members(courier):
    courier.settings.large_group = 0
    code, _, err = await seed(courier, "--members", "3")
    assert code == 2 and "COURIER_LARGE_GROUP" in err, err
    courier.settings.large_group = 3
    code, _, err = await seed(courier, "--members", "0")
    assert code == 2 and "--members" in err, err
