"""Commands packed into the Redis protocol (RESP) by hand, for the one command
that is big: the deliver script of a group message carries two arguments per
member (the inbox key and the member id), 2,000 for a group of 1,000.

redis-py packs argument by argument in Python (encode, length, chunking), which
measured ~3 ms of the gateway per message to a group of 1,000; here each
argument is one bytes formatting, and the arguments that recur (a recipient's
inbox key and id) are packed once and remembered.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable


def bulk(part: bytes | str | int) -> bytes:
    """One argument as a RESP bulk string: $<length>\\r\\n<bytes>\\r\\n."""
    if isinstance(part, str):
        part = part.encode()
    elif isinstance(part, int):
        part = b"%d" % part
    return b"$%d\r\n%s\r\n" % (len(part), part)


def unbulk(packed: bytes) -> bytes:
    """The bytes of one argument packed by bulk()."""
    length, _, rest = packed[1:].partition(b"\r\n")
    return rest[:int(length)]


def bulk_bytes(part: bytes) -> bytes:
    """bulk() of bytes, without asking what it was given (several a send)."""
    return b"$%d\r\n%s\r\n" % (len(part), part)


def command(packed_arguments: Iterable[bytes], count: int) -> bytes:
    """A command from arguments packed with bulk(); `count` is how many there are."""
    return b"*%d\r\n%s" % (count, b"".join(packed_arguments))


class PackedCache:
    """pack(value), remembered for values that recur. Bounded: once full it starts
    again empty (an entry for a user id costs ~200 bytes)."""

    def __init__(self, pack: Callable[[str], bytes], max_entries: int = 100_000):
        self._pack = pack
        self._packed: dict[str, bytes] = {}
        self._max_entries = max_entries

    def __call__(self, value: str) -> bytes:
        packed = self._packed.get(value)
        if packed is None:
            if len(self._packed) >= self._max_entries:
                self._packed.clear()
            packed = self._packed[value] = self._pack(value)
        return packed
