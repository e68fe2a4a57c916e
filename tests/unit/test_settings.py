"""Settings read from the environment, and the checks that refuse nonsense at start-up."""
from __future__ import annotations

import pytest

from entrypoints import settings


def test_the_connection_timeouts_have_their_defaults_and_are_read_from_the_environment():
    assert (settings.load(environ={}).body_timeout, settings.load(environ={}).idle_timeout) == (30.0, 60.0)
    loaded = settings.load(environ={"COURIER_BODY_TIMEOUT": "2.5", "COURIER_IDLE_TIMEOUT": "15"})
    assert (loaded.body_timeout, loaded.idle_timeout) == (2.5, 15.0)


@pytest.mark.parametrize("name", ["COURIER_BODY_TIMEOUT", "COURIER_IDLE_TIMEOUT"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_timeout_that_is_not_positive_is_refused(name, value):
    with pytest.raises(settings.SettingsError, match="must be positive"):
        settings.load(environ={name: value})
