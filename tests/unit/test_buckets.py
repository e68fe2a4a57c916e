"""User buckets (adapters/redis/buckets.py): the tags cover the slots evenly, and the
layout's values are pinned - a change would move every key of a deployment."""
import pytest
from redis.crc import key_slot

from adapters.redis.buckets import DEFAULT_BUCKETS, SLOTS, Buckets


def slot(key: str) -> int:
    return key_slot(key.encode())


@pytest.mark.parametrize("count", [1, 3, 16, DEFAULT_BUCKETS, 1000, SLOTS])
def test_each_bucket_tag_is_in_its_own_range_of_slots(count):
    buckets = Buckets(count)
    tags = [buckets.tag(i) for i in range(count)]
    assert len(set(tags)) == count
    for i, tag in enumerate(tags):
        assert i * SLOTS // count <= slot(tag) < (i + 1) * SLOTS // count + 1
        assert slot(tag) * count // SLOTS == i


def test_the_default_buckets_spread_evenly_over_three_masters():
    # redis-cli --cluster create splits the slots in three nearly equal ranges.
    buckets = Buckets()
    per_master = [0, 0, 0]
    for i in range(buckets.count):
        per_master[min(slot(buckets.tag(i)) // 5462, 2)] += 1
    assert max(per_master) - min(per_master) <= 2


def test_the_layout_is_pinned():
    buckets = Buckets()
    assert [buckets.tag(0), buckets.tag(1), buckets.tag(255)] == ["{t205}", "{t29}", "{t255}"]
    assert buckets.of("7400a271-4f6d-4726-aaa7-28015adc2cf5") == 28
    assert buckets.tag_of("7400a271-4f6d-4726-aaa7-28015adc2cf5") == "{t433}"
    assert Buckets(SLOTS).tag(SLOTS - 1) == "{t11021}"


def test_every_key_of_a_bucket_is_in_one_slot():
    buckets = Buckets()
    user = "51bc7a3d-dc2b-4871-bbbe-515a411195c3"
    tag = buckets.tag_of(user)
    keys = [f"{tag}:log:{user}", f"{tag}:last-id", f"{tag}:persist", f"{tag}:rate:{user}:send"]
    assert len({slot(key) for key in keys}) == 1


@pytest.mark.parametrize("count", [0, -1, SLOTS + 1])
def test_a_number_of_buckets_outside_the_slots_is_refused(count):
    with pytest.raises(ValueError, match="buckets"):
        Buckets(count)
