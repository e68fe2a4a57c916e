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


# -- Redis Cluster (issue 19) -------------------------------------------------------------


def test_one_redis_by_default_and_a_cluster_when_the_url_or_the_flag_says_so():
    one = settings.load(environ={"COURIER_REDIS_URL": "redis://127.0.0.1:6379/0"}).redis_address
    assert (one.cluster, one.url) == (False, "redis://127.0.0.1:6379/0")
    assert settings.load(environ={}).redis_address is None  # embedded mode
    by_url = settings.load(environ={"COURIER_REDIS_URL": "redis+cluster://10.0.0.1:7000"})
    assert by_url.mode == settings.PRODUCTION
    assert (by_url.redis_address.cluster, by_url.redis_address.nodes) == (True, (("10.0.0.1", 7000),))
    assert by_url.redis_address.url == "redis://10.0.0.1:7000"  # what redis-py reads
    by_flag = settings.load(environ={"COURIER_REDIS_URL": "redis://10.0.0.1:7000", "COURIER_REDIS_CLUSTER": "1"})
    assert (by_flag.redis_address.cluster, by_flag.redis_address.nodes) == (True, (("10.0.0.1", 7000),))


def test_a_cluster_url_may_list_several_nodes_and_keeps_tls_credentials_and_options():
    loaded = settings.load(environ={
        "COURIER_REDIS_URL": "rediss+cluster://courier:s3cret@node-a:7000,node-b,[::1]:7002/0?ssl_cert_reqs=none"})
    address = loaded.redis_address
    assert address.cluster
    assert address.nodes == (("node-a", 7000), ("node-b", 6379), ("::1", 7002))
    assert address.url == "rediss://courier:s3cret@node-a:7000/0?ssl_cert_reqs=none"


@pytest.mark.parametrize(("environ", "message"), [
    ({"COURIER_REDIS_CLUSTER": "1"}, "redis_cluster needs COURIER_REDIS_URL"),
    ({"COURIER_REDIS_URL": "redis://h", "COURIER_REDIS_CLUSTER": "2"}, "redis_cluster must be 0 or 1, not 2"),
    ({"COURIER_REDIS_URL": "http://h:6379"}, "COURIER_REDIS_URL must start with redis://"),
    ({"COURIER_REDIS_URL": "redis://a:6379,b:6379"}, "only a Redis Cluster takes"),
    ({"COURIER_REDIS_URL": "redis+cluster://a:6379/3"}, "a Redis Cluster has database 0 only"),
    ({"COURIER_REDIS_URL": "redis+cluster://a:port"}, "port that is not a number"),
    ({"COURIER_REDIS_URL": "redis+cluster://a:1,,b:2"}, "an empty host"),
    ({"COURIER_REDIS_URL": "unix:///run/redis.sock", "COURIER_REDIS_CLUSTER": "1"}, "not a unix socket"),
], ids=["flag-without-url", "flag-not-0-or-1", "scheme", "hosts-without-cluster", "database", "port",
        "empty-host", "unix"])
def test_a_malformed_redis_address_is_refused_with_what_is_wrong(environ, message):
    with pytest.raises(settings.SettingsError, match=message):
        settings.load(environ=environ)


def test_a_refused_url_does_not_show_its_password():
    with pytest.raises(settings.SettingsError) as refused:
        settings.load(environ={"COURIER_REDIS_URL": "localhost:s3cret@h"})
    assert "s3cret" not in str(refused.value)


def test_the_bucket_count_is_256_by_default_and_1_to_16384():
    assert settings.load(environ={}).redis_buckets == 256
    for good in ("1", "16384"):
        assert settings.load(environ={"COURIER_REDIS_BUCKETS": good}).redis_buckets == int(good)
    for bad in ("0", "-1", "16385"):
        with pytest.raises(settings.SettingsError, match=f"redis_buckets must be 1..16384, not {bad}"):
            settings.load(environ={"COURIER_REDIS_BUCKETS": bad})
    with pytest.raises(settings.SettingsError, match="COURIER_REDIS_BUCKETS must be a number"):
        settings.load(environ={"COURIER_REDIS_BUCKETS": "many"})


def test_waiting_for_replicas_is_off_by_default_and_bounded():
    loaded = settings.load(environ={})
    assert (loaded.redis_wait_replicas, loaded.redis_wait_timeout_ms) == (0, 1000)
    on = settings.load(environ={"COURIER_REDIS_WAIT_REPLICAS": "1", "COURIER_REDIS_WAIT_TIMEOUT_MS": "250"})
    assert (on.redis_wait_replicas, on.redis_wait_timeout_ms) == (1, 250)
    for name, bad in (("COURIER_REDIS_WAIT_REPLICAS", "-1"), ("COURIER_REDIS_WAIT_REPLICAS", "17"),
                      ("COURIER_REDIS_WAIT_TIMEOUT_MS", "0"), ("COURIER_REDIS_WAIT_TIMEOUT_MS", "60001")):
        with pytest.raises(settings.SettingsError, match=name.removeprefix("COURIER_").lower()):
            settings.load(environ={name: bad})
