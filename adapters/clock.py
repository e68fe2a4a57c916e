"""The real clock and id generator, and controllable ones for tests."""
from __future__ import annotations

import time
import uuid

from application.ports import Clock, IdGenerator


class SystemClock(Clock):
    def now(self) -> float:
        return time.time()


class FakeClock(Clock):
    def __init__(self, start: float = 1_700_000_000.0):
        self.time = start

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


class UuidGenerator(IdGenerator):
    def new_id(self) -> str:
        return str(uuid.uuid4())
