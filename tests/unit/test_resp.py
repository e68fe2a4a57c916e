"""The hand-packed deliver command is byte for byte what redis-py would send."""
from __future__ import annotations

from redis.asyncio.connection import Connection

from adapters.redis import resp


def test_a_packed_command_equals_redis_pys():
    arguments = ["EVALSHA", "abc123", 2, "stream:private:é", b"\x00raw\r\n", "", 10_000, b'"user"']
    ours = resp.command(map(resp.bulk, arguments), len(arguments))
    theirs = b"".join(Connection().pack_command(*arguments))
    assert ours == theirs


def test_the_cache_packs_each_value_once_and_stays_bounded():
    calls = []

    def pack(value: str) -> bytes:
        calls.append(value)
        return resp.bulk(value)

    cache = resp.PackedCache(pack, max_entries=3)
    assert [cache(v) for v in ("a", "b", "a", "c")] == [resp.bulk(v) for v in ("a", "b", "a", "c")]
    assert calls == ["a", "b", "c"]
    cache("d")  # full: starts again empty
    assert len(cache._packed) == 1
