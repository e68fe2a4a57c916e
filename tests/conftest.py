"""Fixtures of the backing services (MariaDB, Redis), shared by tests/integration,
tests/e2e and tests/production. Registered here, once, so a session-wide fixture
(the claimed Redis database, the migrated MySQL database, the local Redis Cluster) is
made once per run."""

# redis first: mysql imports it
pytest_plugins = ["tests.services.redis", "tests.services.mysql", "tests.services.redis_cluster",
                  "tests.services.cluster_gateways"]
