"""A clock the tests move by hand."""
from __future__ import annotations

from application.ports import Clock


class FakeClock(Clock):
    def __init__(self, start: float = 1_700_000_000.0):
        self.time = start

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds
