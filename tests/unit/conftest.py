"""Fixtures of the unit tests: Courier's use cases wired to in-memory fakes
(see fakes.build, the one place the wiring lives)."""
from __future__ import annotations

import pytest

from tests.unit.fakes import Courier, build


@pytest.fixture
def courier() -> Courier:
    return build()


@pytest.fixture
def make_courier():
    """For tests that need other settings: make_courier(send_rate=1, ...)."""
    return build
