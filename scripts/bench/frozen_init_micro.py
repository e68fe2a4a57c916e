"""frozen_init_micro.py VARIANT N: builds N Messages (or their stand-ins) one way, for
callgrind to count (docs/perf-notes.md, twenty-fifth round): run it for N and 3N under
`valgrind --tool=callgrind` and divide the difference of the totals by 2N.

Variants: `dataclass` (a frozen dataclass with __slots__ and its generated __init__, one
object.__setattr__ per field: Message before that round), `dataclass-kw` (the same, by
keyword), `message` (domain.model.Message: the fields written into the instance's dict),
`message-kw` (by keyword), `tuple` (the loop alone, a tuple of the values: subtract it)."""
from __future__ import annotations

import sys
from dataclasses import dataclass

from domain.model import PRIVATE, Message


@dataclass(slots=True, frozen=True)
class SlottedMessage:
    type: str
    id: str
    from_user_id: str
    content: str
    created_at: int
    to_user_id: str | None = None
    group_id: str | None = None
    client_msg_id: str | None = None
    seq: int | None = None
    edited_at: int | None = None
    deleted_at: int | None = None


VALUES = (PRIVATE, "0f3c2a9e-6c1b-4f61-9d0a-3b1e2f4a5c6d", "sender", "hello", 1_700_000_000, "recipient", None, None,
          5, None, None)


def main() -> None:
    variant, n = sys.argv[1], int(sys.argv[2])
    t, i, f, c, at, to, g, k, s, e, d = VALUES
    if variant == "dataclass":
        for _ in range(n):
            SlottedMessage(t, i, f, c, at, to, g, k, s, e, d)
    elif variant == "dataclass-kw":
        for _ in range(n):
            SlottedMessage(type=t, id=i, from_user_id=f, content=c, created_at=at, to_user_id=to, seq=s)
    elif variant == "message":
        for _ in range(n):
            Message(t, i, f, c, at, to, g, k, s, e, d)
    elif variant == "message-kw":
        for _ in range(n):
            Message(type=t, id=i, from_user_id=f, content=c, created_at=at, to_user_id=to, seq=s)
    elif variant == "tuple":
        for _ in range(n):
            (t, i, f, c, at, to, g, k, s, e, d)  # noqa: B018 - the loop's own cost
    else:
        raise SystemExit(f"unknown variant {variant!r}")


if __name__ == "__main__":
    main()
