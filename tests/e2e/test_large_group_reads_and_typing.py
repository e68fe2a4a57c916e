"""Read markers and typing in large groups (docs/design/large-groups.md, section 10), in
both modes, with COURIER_LARGE_GROUP=3 (receipts then go to groups of at most 2): a read
in a large group goes to the reader's own devices only, even once the group is back down
to two members (it never switches back); GET /groups/{id}/reads still answers; typing in
a large group is answered as before (nothing, or not_a_member) and relayed to nobody."""
from __future__ import annotations

import pytest

from tests.e2e.support import with_settings
from tests.e2e.test_large_groups import club, sent
from tests.e2e.test_read_receipts import read_event, read_group, reads
from tests.e2e.test_typing import pong, typing

pytestmark = with_settings(large_group=3)


@pytest.mark.gen_test(timeout=60)
async def test_a_read_in_a_large_group_goes_to_the_readers_own_devices_only(api, courier):
    owner, bob, carol, dave, gid = await club(api)
    await sent(api, owner, gid, "hello")
    for leaving in (carol, dave):  # two members left: small by its count, large all the same
        r = await api.call("DELETE", f"/api/v1/groups/{gid}/members/{leaving.user_id}", None, leaving.token)
        assert r.status == 204, r
    await courier.settle()
    owners, readers = await api.connect(owner, events=True), await api.connect(bob, events=True)
    assert await read_group(api, bob, gid, 1) == {"read_seq": 1, "unread_count": 0}
    own = await readers.next()
    assert read_event(own, bob, {"type": "group", "group_id": gid}, 1), own
    assert await owners.nothing() and await readers.nothing()
    events, _ = await api.events_all(owner)
    assert [e for e in events if e["type"] == "read"] == []
    assert await reads(api, owner, gid) == {owner.user_id: 1, bob.user_id: 1}  # on demand, as ever


@pytest.mark.gen_test(timeout=60)
async def test_typing_in_a_large_group_is_relayed_to_nobody(api):
    owner, bob, carol, dave, gid = await club(api)
    outsider = await api.register()
    sockets = {who.user_id: await api.connect(who, events=True) for who in (owner, bob, carol, dave, outsider)}
    typer = sockets[bob.user_id]
    typer.send(typing("start", group_id=gid))
    typer.send(typing("stop", group_id=gid))
    await pong(typer)  # no error: answered as in any group
    for who in (owner, carol, dave):
        assert await sockets[who.user_id].nothing(0.3)
    stranger = sockets[outsider.user_id]
    stranger.send(typing("start", group_id=gid))
    refused = await stranger.next()
    assert refused["type"] == "error" and refused["code"] == "not_a_member", refused
