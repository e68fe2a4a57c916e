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


@pytest.mark.parametrize("receipts", ["200", "300"])
def test_receipts_at_or_past_the_large_group_threshold_are_refused(receipts):
    """A large group sends no read receipts (docs/design/large-groups.md, section 10)."""
    with pytest.raises(settings.SettingsError, match="receipts_max_group .* must be less than large_group"):
        settings.load(environ={"COURIER_LARGE_GROUP": "200", "COURIER_RECEIPTS_MAX_GROUP": receipts})


def test_receipts_below_the_threshold_or_large_groups_off_are_accepted():
    assert settings.load(environ={"COURIER_LARGE_GROUP": "200"}).receipts_max_group == 100
    assert settings.load(environ={"COURIER_LARGE_GROUP": "200", "COURIER_RECEIPTS_MAX_GROUP": "199"}).large_group == 200
    off = {"COURIER_LARGE_GROUP": "0", "COURIER_RECEIPTS_MAX_GROUP": "5000"}
    assert settings.load(environ=off).receipts_max_group == 5000  # off: no threshold


def test_large_groups_are_on_by_default_past_200_members_with_receipts_below():
    defaults = settings.load(environ={})
    assert (defaults.large_group, defaults.receipts_max_group) == (200, 100)


def test_the_embedded_mode_on_a_server_database_runs_without_large_groups():
    """Its large groups' streams live in the SQLite database (adapters/sql/group_streams.py)."""
    mysql = "mysql+pymysql://root@127.0.0.1/courier"
    assert settings.load(environ={"COURIER_DATABASE_URL": mysql}).large_group == 0
    with pytest.raises(settings.SettingsError, match="need its SQLite database"):
        settings.load(environ={"COURIER_DATABASE_URL": mysql, "COURIER_LARGE_GROUP": "200"})
    production = {"COURIER_DATABASE_URL": mysql, "COURIER_REDIS_URL": "redis://127.0.0.1:6379/0"}
    assert settings.load(environ=production).large_group == 200
