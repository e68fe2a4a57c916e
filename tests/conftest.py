"""Fixtures of the backing services (MariaDB, Redis), shared by tests/integration,
tests/e2e and tests/production. Registered here, once, so a session-wide fixture
(the claimed Redis database, the migrated MySQL database) is made once per run."""

pytest_plugins = ["tests.services.redis", "tests.services.mysql"]  # redis first: mysql imports it
