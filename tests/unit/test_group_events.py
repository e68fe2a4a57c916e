"""Group change events exactly once (application/group_events.py, announcements.py):
stored with the change, appended at once, and appended by the relay when the use case
could not."""
from __future__ import annotations

import pytest

from domain import errors
from domain.events import GroupChange
from tests.unit.courier import Courier


def changes_in_log(courier: Courier, user_id: str) -> list[str]:
    return [d.event.type for d in courier.inbox._streams.get(user_id, []) if isinstance(d.event, GroupChange)]


@pytest.mark.gen_test
async def test_each_change_is_announced_at_once_and_nothing_is_left_stored(courier):
    alice, bob, carol = await courier.users_named("alice", "bob", "carol")
    group = await courier.groups.create(alice.id, "team", [bob.id])
    await courier.groups.add_member(alice.id, group.id, carol.id)
    await courier.groups.rename(alice.id, group.id, "the team")
    await courier.groups.remove_member(bob.id, group.id, bob.id)
    assert changes_in_log(courier, bob.id) == ["group_updated", "member_added", "group_updated", "member_removed"]
    assert changes_in_log(courier, carol.id) == ["member_added", "group_updated", "member_removed"]
    assert courier.outbox.stored == {}


@pytest.mark.gen_test
async def test_a_change_whose_event_could_not_be_appended_is_relayed_once(courier):
    alice, bob = await courier.users_named("alice", "bob")
    group = await courier.groups.create(alice.id, "team", [])
    courier.inbox.fail_next = errors.ServiceUnavailable("the log's store is down")
    await courier.groups.add_member(alice.id, group.id, bob.id)  # the change is made all the same
    assert (await courier.groups.get(alice.id, group.id)).member_ids == [alice.id, bob.id]
    assert changes_in_log(courier, bob.id) == []
    assert len(courier.outbox.stored) == 1  # stored with the change
    assert await courier.relay_due() == 1
    assert changes_in_log(courier, bob.id) == ["member_added"]
    assert await courier.relay_due() == 0
    assert courier.outbox.stored == {}


@pytest.mark.gen_test
async def test_a_relay_after_an_append_whose_mark_was_lost_appends_nothing(courier):
    alice, bob = await courier.users_named("alice", "bob")
    group = await courier.groups.create(alice.id, "team", [bob.id])
    [announcement] = list(courier.outbox.stored.values()) or [None]
    assert announcement is None  # the creation was announced and marked
    renamed = courier.group_events.renamed(await courier.groups.get(alice.id, group.id), alice.id, "x")
    courier.outbox.store(renamed)
    await courier.inbox.append(renamed.event, renamed.recipient_ids)  # appended, then the process died
    assert await courier.relay_due() == 1  # relayed: the inbox appends it once only
    assert changes_in_log(courier, bob.id) == ["group_updated", "group_updated"]
    assert courier.outbox.stored == {}


@pytest.mark.gen_test
async def test_a_refused_change_stores_no_announcement(courier):
    alice, bob = await courier.users_named("alice", "bob")
    group = await courier.groups.create(alice.id, "team", [bob.id])
    with pytest.raises(errors.AlreadyAMember):
        await courier.groups.add_member(alice.id, group.id, bob.id)
    assert courier.outbox.stored == {}
