"""The real clock and id generator."""
from __future__ import annotations

import time
import uuid

from application.ports import Clock, IdGenerator


class SystemClock(Clock):
    def now(self) -> float:
        return time.time()


class UuidGenerator(IdGenerator):
    def new_id(self) -> str:
        return str(uuid.uuid4())
