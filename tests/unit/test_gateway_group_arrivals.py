"""Local members entering a large group together (docs/design/large-groups.md, section
25): at a switch, or a join of many, the gateway reads the members' intervals and the
stream once for all of them, instead of a replay per connection, and every connection
still gets each entry after its join exactly once, in stream order, with what came live
meanwhile held and released after. Over the fakes of test_gateway_large_groups."""
from __future__ import annotations

import pytest

from application.connection import Connection
from application.ports import JOIN, MemberChange
from application.vector_connection import VectorConnection
from domain import errors
from domain.events import MEMBER_REMOVED
from domain.model import GROUP
from tests.unit.test_gateway_large_groups import BOB, CAROL, DAVE, world

MEMBERS = [f"user{n}" for n in range(40)]


def group_reads(w, group_id: str) -> list:
    return [read for read in w.streams.reads if read[0] == group_id]


@pytest.mark.gen_test
async def test_a_switch_reads_the_intervals_and_the_stream_once_for_every_local_member():
    w = world()
    sockets = [await w.attach(user_id) for user_id in MEMBERS]
    w.streams.switch("G", [*MEMBERS, DAVE])
    # Posted before the gateway follows the group: only the stream has them.
    early = [w.post("G"), w.post("G")]
    await w.gateway.settled()
    live = w.post("G")
    expected = [message.id for message in [*early, live]]
    for conn, channel in sockets:
        assert isinstance(conn, VectorConnection)
        assert channel.ids == expected
    assert w.streams.interval_reads == [("G", tuple(MEMBERS))]
    assert len(group_reads(w, "G")) == 1
    assert w.bus.followed == {"G"}


@pytest.mark.gen_test
async def test_entries_that_come_live_during_the_read_are_held_and_sent_once_in_order():
    w = world()
    sockets = [await w.attach(user_id, events=True) for user_id in MEMBERS[:5]]
    intervals = w.streams.intervals
    during = []

    async def then_posts(group_id, user_ids):
        during.append(w.post("G"))  # followed by now: pushed live, held, and in the read
        found = await intervals(group_id, user_ids)
        during.append(w.post("G"))  # after the intervals: live and held only
        return found

    w.streams.intervals = then_posts  # type: ignore[method-assign]
    w.streams.switch("G", [*MEMBERS[:5], DAVE])
    before = w.post("G")
    await w.gateway.settled()
    after = w.post("G")
    for _, channel in sockets:
        assert channel.ids == [m.id for m in [before, *during, after]]
        assert all(m["type"] == GROUP for m in channel.messages)


@pytest.mark.gen_test
async def test_a_member_who_left_before_the_read_gets_only_what_came_before_its_leave():
    w = world()
    _, bobs = await w.attach(BOB, events=True)
    carol, carols = await w.attach(CAROL)
    w.streams.switch("G", [BOB, CAROL, DAVE])
    inside = w.post("G")
    w.streams.leave("G", CAROL, by_user_id=CAROL)  # not followed yet: the gateway never sees it
    outside = w.post("G")
    await w.gateway.settled()
    later = w.post("G")
    assert carols.ids == [inside.id]
    assert [m["type"] for m in bobs.messages] == [GROUP, MEMBER_REMOVED, GROUP, GROUP]
    assert bobs.ids[2:] == [outside.id, later.id]
    found = w.gateway._by_group.get("G")
    assert found is not None and carol not in found[1]  # out of the index: nothing of G is pushed to it


@pytest.mark.gen_test
async def test_when_the_store_fails_each_connection_replays_on_its_own():
    w = world()
    sockets = [await w.attach(user_id) for user_id in MEMBERS[:5]]

    async def unavailable(group_id, user_ids):
        raise errors.ServiceUnavailable("redis is unavailable (intervals)")

    w.streams.intervals = unavailable  # type: ignore[method-assign]
    w.streams.switch("G", [*MEMBERS[:5], DAVE])
    early = w.post("G")
    await w.gateway.settled()
    live = w.post("G")
    for _, channel in sockets:
        assert channel.ids == [early.id, live.id]
    assert len(group_reads(w, "G")) == 5  # one replay each


@pytest.mark.gen_test
async def test_a_join_of_many_on_a_followed_group_is_one_read_too():
    w = world()
    w.streams.switch("G", [CAROL, DAVE])
    await w.attach(CAROL)  # G is followed here
    sockets = [await w.attach(user_id) for user_id in MEMBERS]
    assert all(type(conn) is Connection for conn, _ in sockets)
    await w.streams.apply(MemberChange(JOIN, "G", "bulk", 1, tuple(MEMBERS)))  # a bulk join: no record
    after_join = w.post("G")
    await w.gateway.settled()
    live = w.post("G")
    for _, channel in sockets:
        assert channel.ids == [after_join.id, live.id]
    assert w.streams.interval_reads == [("G", tuple(MEMBERS))]
    assert len(group_reads(w, "G")) == 1
