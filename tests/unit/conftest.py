"""Fixtures of the unit tests: Courier's use cases from the real container, its
ports overridden by in-memory fakes (tests/unit/courier.py)."""
from __future__ import annotations

import pytest

from tests.unit.courier import Courier, build


@pytest.fixture
def courier() -> Courier:
    return build()


@pytest.fixture
def make_courier():
    """For tests that need other settings: make_courier(send_rate=1, ...)."""
    return build
