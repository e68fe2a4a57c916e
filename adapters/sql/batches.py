"""Long id lists cut into IN (...) lists every driver takes."""
from __future__ import annotations

from collections.abc import Iterator

IN_CHUNK = 500  # ids per IN (...) list: well under every driver's parameter limit


def chunks(items: list, size: int = IN_CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
