"""CachedGroups: groups read once are answered from memory; a change is never missed."""
from __future__ import annotations

import asyncio

import pytest

from adapters.memory.cached_groups import CachedGroups
from domain.model import Group
from tests.fakes.repositories import MemoryGroupRepository


class CountingGroups(MemoryGroupRepository):
    """Answers copies (as SQL does) and counts reads; a read can be held at a gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.gate: asyncio.Event | None = None

    async def get(self, group_id: str) -> Group | None:
        self.gets += 1
        group = self.by_id.get(group_id)
        snapshot = None if group is None else Group(group.id, group.name, group.owner_id, list(group.member_ids))
        if self.gate is not None:
            await self.gate.wait()
        return snapshot


def group(group_id: str = "g1", members: int = 3) -> Group:
    return Group(id=group_id, name=group_id, owner_id="u0", member_ids=[f"u{i}" for i in range(members)])


async def holding_g1(inner: CountingGroups) -> CachedGroups:
    """A cache in front of `inner` that holds group g1 (u0, u1, u2), read once."""
    groups = CachedGroups(inner)
    await groups.add(group())
    await groups.get("g1")
    return groups


@pytest.mark.gen_test
async def test_a_group_read_once_is_answered_from_memory_as_a_copy():
    inner = CountingGroups()
    groups = CachedGroups(inner)
    await groups.add(group())
    first = await groups.get("g1")
    first.member_ids.append("someone")  # a caller changing what it was given
    second = await groups.get("g1")
    assert second.member_ids == ["u0", "u1", "u2"] and inner.gets == 1
    assert await groups.get("nope") is None and await groups.get("nope") is None
    assert inner.gets == 3  # a group not found is asked again


@pytest.mark.gen_test
async def test_adding_and_removing_members_is_seen_at_once():
    groups = await holding_g1(CountingGroups())
    await groups.add_member("g1", "u9")
    assert (await groups.get("g1")).member_ids == ["u0", "u1", "u2", "u9"]
    await groups.remove_member("g1", "u0", "u1")
    found = await groups.get("g1")
    assert found.member_ids == ["u1", "u2", "u9"] and found.owner_id == "u1"


@pytest.mark.gen_test
async def test_a_read_racing_a_change_does_not_put_the_old_members_back():
    inner = CountingGroups()
    groups = CachedGroups(inner)
    await groups.add(group())
    inner.gate = asyncio.Event()
    slow_read = asyncio.ensure_future(groups.get("g1"))  # reads the three members, then waits
    await asyncio.sleep(0)
    inner.gate.set()
    await groups.remove_member("g1", "u2", None)  # completes while the read is still pending
    assert (await slow_read).member_ids == ["u0", "u1", "u2"]  # its own answer is what it read
    inner.gate = None
    assert (await groups.get("g1")).member_ids == ["u0", "u1"]


class LostAnswer(CountingGroups):
    """The store takes the write, then the answer is lost (the database went away)."""

    async def add_member(self, group_id: str, user_id: str, announce=None, invited=False) -> None:
        await super().add_member(group_id, user_id, announce, invited)
        raise ConnectionError("lost the answer")


@pytest.mark.gen_test
async def test_a_failed_change_drops_the_entry():
    groups = await holding_g1(LostAnswer())
    with pytest.raises(ConnectionError):
        await groups.add_member("g1", "u9")
    assert (await groups.get("g1")).member_ids == ["u0", "u1", "u2", "u9"]


@pytest.mark.gen_test
async def test_bounded_by_the_members_held():
    inner = CountingGroups()
    groups = CachedGroups(inner, max_members=10)
    for n in range(4):
        await groups.add(group(f"g{n}", members=4))
        await groups.get(f"g{n}")
    reads = inner.gets
    await groups.get("g3")
    await groups.get("g2")
    assert inner.gets == reads  # the two newest are held (8 members)
    await groups.get("g0")
    assert inner.gets == reads + 1  # the oldest had been dropped
