"""Read receipts against fakes (MarkRead's rules, GroupReads): who gets the reader's
`read` event besides the reader's own devices - the other user of a private chat, the
other members of a group of at most COURIER_RECEIPTS_MAX_GROUP members, nobody when the
reader turned receipts off - and once per marker."""
from __future__ import annotations

import pytest

from domain.events import ReadMarker
from tests.unit.courier import Courier


async def reads_in_log(courier: Courier, user_id: str) -> list[tuple[str, str, int]]:
    """(reader, conversation id as the reader names it, seq) of each read event in the log."""
    return [(d.event.user_id, d.event.conversation_id, d.event.seq)
            for d in await courier.inbox.read(user_id, None, 100) if isinstance(d.event, ReadMarker)]


async def group_with_a_message(courier: Courier, members: int):
    people = await courier.users_named(*(f"member{index}" for index in range(members)))
    owner, *others = people
    group = await courier.groups.create(owner.id, "team", [person.id for person in others])
    await courier.send_group(owner.id, group.id, {"content": "hello"})
    return group, people


async def receipts(courier: Courier, user_id: str, on: bool) -> None:
    await courier.container.user_settings().update(user_id, {"send_read_receipts": on})


@pytest.mark.gen_test
async def test_a_private_read_goes_to_the_other_user_and_nobody_else(courier):
    ann, bob, cid = await courier.users_named("ann", "bob", "cid")
    await courier.send_private(ann.id, {"to_user_id": bob.id, "content": "hi"})
    await courier.mark_read.private(bob.id, ann.id, {"seq": 1})
    assert await reads_in_log(courier, bob.id) == [(bob.id, ann.id, 1)]  # the reader's own devices
    assert await reads_in_log(courier, ann.id) == [(bob.id, ann.id, 1)]  # the receipt: the same event
    assert await reads_in_log(courier, cid.id) == []


@pytest.mark.gen_test
async def test_a_group_at_the_limit_gets_receipts_to_every_other_member(make_courier):
    courier = make_courier(receipts_max_group=3)
    group, (owner, reader, other) = await group_with_a_message(courier, 3)
    outsider = await courier.user("outsider")
    await courier.mark_read.group(reader.id, group.id, {"seq": 1})
    for member in (owner, reader, other):  # the reader's once, not twice (it is a member too)
        assert await reads_in_log(courier, member.id) == [(reader.id, group.id, 1)]
    assert await reads_in_log(courier, outsider.id) == []


@pytest.mark.gen_test
async def test_a_group_above_the_limit_keeps_the_marker_to_the_readers_own_log(make_courier):
    courier = make_courier(receipts_max_group=3)
    group, (owner, reader, *others) = await group_with_a_message(courier, 4)
    await courier.mark_read.group(reader.id, group.id, {"seq": 1})
    assert await reads_in_log(courier, reader.id) == [(reader.id, group.id, 1)]
    for member in (owner, *others):
        assert await reads_in_log(courier, member.id) == []
    # The markers are there on demand all the same (GET /groups/{id}/reads).
    answer = await courier.container.group_reads()(owner.id, group.id)
    assert [(m.user_id, m.read_seq) for m in answer] == [(owner.id, 1), (reader.id, 1), (others[0].id, 0),
                                                         (others[1].id, 0)]


@pytest.mark.gen_test
async def test_a_reader_with_receipts_off_tells_only_its_own_devices(courier):
    group, (owner, reader, other) = await group_with_a_message(courier, 3)
    await courier.send_private(owner.id, {"to_user_id": reader.id, "content": "hi"})
    await receipts(courier, reader.id, False)
    await courier.mark_read.private(reader.id, owner.id, {"seq": 1})
    await courier.mark_read.group(reader.id, group.id, {"seq": 1})
    assert await reads_in_log(courier, reader.id) == [(reader.id, owner.id, 1), (reader.id, group.id, 1)]
    assert await reads_in_log(courier, owner.id) == await reads_in_log(courier, other.id) == []
    # Nobody else sees its marker on demand either; the reader sees its own.
    by_owner = await courier.container.group_reads()(owner.id, group.id)
    assert [(m.user_id, m.read_seq) for m in by_owner] == [(owner.id, 1), (reader.id, None), (other.id, 0)]
    by_reader = await courier.container.group_reads()(reader.id, group.id)
    assert [(m.user_id, m.read_seq) for m in by_reader] == [(owner.id, 1), (reader.id, 1), (other.id, 0)]
    # Turned on again: the next move is a receipt again (read at each move, never cached).
    await courier.send_private(owner.id, {"to_user_id": reader.id, "content": "again"})
    await receipts(courier, reader.id, True)
    await courier.mark_read.private(reader.id, owner.id, {"seq": 2})
    assert await reads_in_log(courier, owner.id) == [(reader.id, owner.id, 2)]


@pytest.mark.gen_test
async def test_the_read_event_is_appended_once_per_marker(courier):
    ann, bob = await courier.users_named("ann", "bob")
    for text in ("a", "b", "c"):
        await courier.send_private(ann.id, {"to_user_id": bob.id, "content": text})
    await courier.mark_read.private(bob.id, ann.id, {"seq": 2})
    await courier.mark_read.private(bob.id, ann.id, {"seq": 2})  # a retry
    await courier.mark_read.private(bob.id, ann.id, {"seq": 1})  # lower: the marker stays
    await courier.mark_read.private(bob.id, ann.id, {"seq": 0})
    assert await reads_in_log(courier, bob.id) == await reads_in_log(courier, ann.id) == [(bob.id, ann.id, 2)]
    await courier.mark_read.private(bob.id, ann.id, {"seq": 3})  # a new marker: a new event
    assert await reads_in_log(courier, ann.id) == [(bob.id, ann.id, 2), (bob.id, ann.id, 3)]
    first, second = [d.event.id for d in await courier.inbox.read(ann.id, None, 100)
                     if isinstance(d.event, ReadMarker)]
    assert first != second
