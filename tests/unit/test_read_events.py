"""A read marker's event exactly once (MarkRead, application/announcements.py): the
move and its announcement are stored together, appended at once, and appended by the
relay when the use case could not - never twice, whatever was lost in between."""
from __future__ import annotations

import pytest

from application.conversations import private_conversation
from domain import errors
from domain.events import ReadMarker, read_marker_id
from tests.unit.courier import Courier


async def reads_in_log(courier: Courier, user_id: str) -> list[ReadMarker]:
    return [d.event for d in await courier.inbox.read(user_id, None, 100) if isinstance(d.event, ReadMarker)]


def published_reads(courier: Courier) -> list[str]:
    """The read events the inbox published to the gateways (once per append)."""
    return [n.event.id for n in courier.bus.published if isinstance(n.event, ReadMarker)]


async def chat(courier: Courier, messages: int = 2):
    ann, bob = await courier.users_named("ann", "bob")
    for index in range(messages):
        await courier.send_private(ann.id, {"to_user_id": bob.id, "content": f"m{index}"})
    return ann, bob


@pytest.mark.gen_test
async def test_an_append_that_fails_after_the_marker_moved_is_relayed_once(courier):
    ann, bob = await chat(courier)
    courier.inbox.fail_next = errors.ServiceUnavailable("the log's store is down")
    result = await courier.mark_read.private(bob.id, ann.id, {"seq": 2})
    assert (result.read_seq, result.unread_count) == (2, 0)  # the marker moved all the same
    assert await reads_in_log(courier, bob.id) == await reads_in_log(courier, ann.id) == []
    [stored] = courier.outbox.stored.values()  # stored with the move
    event_id = read_marker_id(bob.id, private_conversation(ann.id, bob.id), 2)
    assert stored.event.id == event_id and stored.recipient_ids == [bob.id, ann.id]
    assert await courier.relay.once() == 0  # too young: still its use case's to append
    assert await courier.relay_due() == 1
    for user in (bob, ann):  # the reader's devices, and the receipt
        assert [(e.id, e.seq, e.user_id) for e in await reads_in_log(courier, user.id)] == [(event_id, 2, bob.id)]
    assert await courier.relay_due() == 0
    assert courier.outbox.stored == {} and published_reads(courier) == [event_id]


@pytest.mark.gen_test
async def test_a_relay_after_a_lost_mark_appends_nothing_new(courier):
    ann, bob = await chat(courier)
    courier.outbox.fail_next_announced = errors.ServiceUnavailable("the database went away")
    await courier.mark_read.private(bob.id, ann.id, {"seq": 1})  # appended; the mark is lost
    assert len(await reads_in_log(courier, bob.id)) == len(await reads_in_log(courier, ann.id)) == 1
    assert len(courier.outbox.stored) == 1
    assert await courier.relay_due() == 1  # relayed: the inbox appends the id once only
    assert len(await reads_in_log(courier, bob.id)) == len(await reads_in_log(courier, ann.id)) == 1
    assert len(published_reads(courier)) == 1  # no gateway was told twice
    assert courier.outbox.stored == {}


@pytest.mark.gen_test
async def test_a_retry_appends_at_once_what_a_failed_append_left_and_the_relay_nothing_more(courier):
    ann, bob = await chat(courier)
    courier.inbox.fail_next = errors.ServiceUnavailable("the log's store is down")
    await courier.mark_read.private(bob.id, ann.id, {"seq": 2})
    assert len(courier.outbox.stored) == 1
    await courier.mark_read.private(bob.id, ann.id, {"seq": 2})  # the client retries before the relay
    assert len(await reads_in_log(courier, bob.id)) == len(await reads_in_log(courier, ann.id)) == 1
    assert courier.outbox.stored == {}  # the retry's append marked the first move's announcement
    assert await courier.relay_due() == 0


@pytest.mark.gen_test
async def test_a_group_read_left_behind_reaches_every_member_through_the_relay(courier):
    owner, ann, bob = await courier.users_named("owner", "ann", "bob")
    group = await courier.groups.create(owner.id, "team", [ann.id, bob.id])
    await courier.send_group(owner.id, group.id, {"content": "hello"})
    courier.inbox.fail_next = errors.ServiceUnavailable("the log's store is down")
    await courier.mark_read.group(ann.id, group.id, {"seq": 1})
    assert await courier.relay_due() == 1
    for user in (owner, ann, bob):
        assert [(e.user_id, e.conversation_id, e.seq) for e in await reads_in_log(courier, user.id)] == [
            (ann.id, group.id, 1)]


@pytest.mark.gen_test
async def test_a_marker_that_does_not_move_stores_nothing(courier):
    ann, bob = await chat(courier, messages=3)
    await courier.mark_read.private(bob.id, ann.id, {"seq": 2})
    courier.outbox.fail_next_announced = errors.ServiceUnavailable("the database went away")
    await courier.mark_read.private(bob.id, ann.id, {"seq": 1})  # lower: no event, nothing to mark
    await courier.mark_read.private(bob.id, ann.id, {"seq": 0})
    assert courier.outbox.stored == {}
    assert courier.outbox.fail_next_announced is not None  # never asked
    assert [e.seq for e in await reads_in_log(courier, bob.id)] == [2]
